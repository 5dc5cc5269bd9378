"""Helpers for the tenancy, limits and fuzz tests: the `threadlog` CLI, the log's events, error shapes."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import openai

from threadlog.stack import Stack

from . import openapi
from .runs_helpers import fetch

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def threadlog_cli(stack: Stack, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`threadlog ARGS…` against the stack's database, as an operator would run it."""
    env = {k: v for k, v in stack.env.items() if k != "THREADLOG_API_KEY"}
    result = subprocess.run([sys.executable, "-m", "threadlog", *args], env=env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, f"threadlog {' '.join(args)} failed: {result.stdout}\n{result.stderr}"
    return result


def create_key(stack: Stack, project: str, *, admin: bool = False) -> str:
    """A new key from `threadlog keys create`: its only stdout line."""
    out = threadlog_cli(stack, "keys", "create", "--project", project, *(["--admin"] if admin else []))
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tl-"), out.stdout
    return lines[0]


def sdk(stack: Stack, key: str, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=key, max_retries=max_retries)


def db(stack: Stack) -> str:
    return stack.env["DATABASE_URL"]


def count_events(stack: Stack, where: str = "true", *args: Any) -> int:
    return int(fetch(db(stack), f"SELECT count(*) FROM events WHERE {where}", *args)[0][0])


def events_of_requests(stack: Stack, request_ids: Iterable[str]) -> list[tuple[str, str]]:
    """(event_type, stream_id) of every event whose correlation id is one of these request ids."""
    ids = sorted(set(request_ids))
    if not ids:
        return []
    rows = fetch(db(stack), "SELECT event_type, stream_id FROM events WHERE correlation_id = ANY($1::uuid[])", ids)
    return [(r[0], r[1]) for r in rows]


def check_error_body(body: Any) -> dict[str, Any]:
    """OpenAI's error shape, exactly: {"error": {"message", "type", "param", "code"}}; returns the inner object."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}, body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["type"], str) and error["type"], body
    assert error["param"] is None or isinstance(error["param"], str), body
    assert error["code"] is None or isinstance(error["code"], str), body
    openapi.validate(body, "ErrorResponse")
    return error


def sdk_error(exc: openai.APIStatusError) -> dict[str, Any]:
    return check_error_body(exc.response.json())


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes
    streamed: bool  # a text/event-stream whose body was not read (it may never end)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def request_id(self) -> str:
        return self.headers.get("x-request-id", "")


def send(stack: Stack, method: str, path: str, *, key: str | None, body: bytes | None = None,
         params: list[tuple[str, str]] | None = None, headers: dict[str, str] | None = None,
         timeout_s: float = 30.0) -> Reply:
    """One raw request to /v1 + `path`; an event stream is closed after its headers (it may be endless)."""
    url = "/v1" + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        all_headers["Authorization"] = f"Bearer {key}"
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=timeout_s)
    try:
        conn.request(method, url, body=body, headers=all_headers)
        response = conn.getresponse()
        got = {k.lower(): v for k, v in response.getheaders()}
        if response.status == 200 and got.get("content-type", "").startswith("text/event-stream"):
            return Reply(response.status, got, b"", True)
        return Reply(response.status, got, response.read(), False)
    finally:
        conn.close()
