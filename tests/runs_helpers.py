"""Helpers shared by the run tests: the offline model's request log, polling with deadlines, raw bodies."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
import openai
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
    """OpenAI's schema check (tests/openapi.py reads OpenAPI 3.0's `nullable` as JSON Schema does)."""
    openapi.validate(body, schema_name)
