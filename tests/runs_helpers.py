"""Helpers shared by the run tests: the offline model's request log, polling with deadlines, raw bodies."""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
import openai
import pytest
from openai.types.beta.threads import Run

from threadlog.stack import Stack

from . import openapi
from .rawhttp import Http

T = TypeVar("T")
# Statuses after which a run never changes again (requires_action is not one: it waits for the client).
ENDED = frozenset({"completed", "incomplete", "failed", "cancelled", "expired"})


def raw_json(response: Any) -> Any:
    return response.http_response.json()


def marker(prefix: str = "m") -> str:
    """A word unique to one test, put in a user message so the model's request log can be searched by it."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def sdk(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=stack.api_key, max_retries=0)


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float, interval_s: float = 0.05) -> T:
    """Call `check` until it returns something truthy; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def wait_ended(client: openai.OpenAI, thread_id: str, run_id: str, timeout_s: float) -> Run:
    """Poll the run until it reaches an end status (past requires_action too), within `timeout_s`."""
    last: list[Run] = []

    def ended() -> Run | None:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        last[:] = [run]
        return run if run.status in ENDED else None

    try:
        return wait_for(f"run {run_id} to end", ended, timeout_s)
    except AssertionError as e:
        raise AssertionError(f"{e}; last status {last[0].status if last else None}") from None


def message_text(message: Any) -> str:
    return "".join(block.text.value for block in message.content if block.type == "text")


def words(n: int) -> str:
    """The offline model's deterministic reply to `say <n> words`."""
    return " ".join(f"word{i}" for i in range(1, n + 1))


class ModelLog:
    """The offline model's record of the chat-completion requests it received."""

    def __init__(self, stack: Stack) -> None:
        assert stack.local_model is not None and stack.local_model.probe_port is not None
        self.http = Http(f"http://127.0.0.1:{stack.local_model.probe_port}")

    def chats(self) -> list[dict[str, Any]]:
        response = self.http.get("/_local/requests")
        assert response.status_code == 200, response.text
        return [r for r in response.json()["data"]
                if r["method"] == "POST" and r["path"] == "/v1/chat/completions"]

    def with_text(self, text: str) -> list[dict[str, Any]]:
        """Requests whose messages (any role) contain `text`, oldest first."""
        return [r for r in self.chats() if text in _all_text(r.get("body"))]

    def clear(self) -> None:
        assert self.http.request("DELETE", "/_local/requests").status_code == 200


def _all_text(body: Any) -> str:
    if not isinstance(body, dict):
        return str(body)
    parts: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """Run one query against a stack's database (for what the API does not show: leases, the log)."""

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def validate(body: Any, schema_name: str) -> None:
    """openapi.validate, but reading OpenAPI 3.0's `nullable: true` (which RunObject uses) as JSON Schema does.

    tests/openapi.py hands the spec to a Draft 2020-12 validator, which ignores `nullable`, so every null that
    the spec allows on a run (expires_at, failed_at, last_error, ...) would be reported as an error.
    """
    if not openapi.SPEC_PATH.exists():
        pytest.skip(f"OpenAI's OpenAPI spec is not at {openapi.SPEC_PATH}")
    errors = sorted(_validator(schema_name).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{schema_name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


@functools.cache
def _components() -> Any:
    return _nullable(openapi._spec()["components"])


@functools.cache
def _validator(schema_name: str) -> Any:
    import jsonschema

    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": _components()}
    return jsonschema.Draft202012Validator(schema)


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
    all_of = node.get("allOf")
    if isinstance(all_of, list) and {"nullable": True} in all_of:  # allOf: [$ref, {nullable: true}]
        out["allOf"] = [_nullable(v) for v in all_of if v != {"nullable": True}]
        return {"anyOf": [out, {"type": "null"}]}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out
