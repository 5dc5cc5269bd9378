"""Limits a client can rely on: safe retries, rate limits, active-run limits, token budgets, usage, request
size limits, CORS, and no secret in logs or in the log.

Stacks of their own: `limits` (defaults; debug logs; a secret OPENAI_API_KEY that the offline model ignores),
`rated` (5 requests/s, burst 5), `busy` (one active run per project; CORS for https://app.example) and
`budgets` (fresh projects, so no gateway has a cached view of their budgets).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from tests.infra import Infra
from threadlog.stack import Stack

from .runs_helpers import ENDED, ModelLog, fetch, marker, wait_ended, wait_for
from .tenancy_helpers import (
    check_error_body,
    count_events,
    create_key,
    events_of_requests,
    sdk,
    sdk_error,
    send,
    threadlog_cli,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
POLL = {"poll_interval_ms": 50}
MODEL = "threadlog-offline"
SLOW_MODEL = "threadlog-offline+delay100"  # 100 ms a token: `say 50 words` takes about 5 s
INSTRUCTIONS = "You are a terse test assistant."
OPENAI_SECRET = "sk-threadlog-test-" + secrets.token_hex(16)
# Every API key handed out in this module: none may show up in a log file or an event.
ISSUED_KEYS: list[str] = []


def start(infra: Infra, name: str, env: dict[str, str]) -> Stack:
    stack = infra.new_stack(name, extra_env={"THREADLOG_POLL_AFTER_MS": "50", **env})
    stack.start()
    ISSUED_KEYS.append(stack.api_key)
    return stack


@pytest.fixture(scope="module")
def limits_stack(infra: Infra) -> Iterator[Stack]:
    stack = start(infra, "limits", {"THREADLOG_LOG_LEVEL": "DEBUG", "OPENAI_API_KEY": OPENAI_SECRET})
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def rated_stack(infra: Infra) -> Iterator[Stack]:
    stack = start(infra, "rated", {"THREADLOG_RATE_LIMIT_PER_S": "5", "THREADLOG_RATE_LIMIT_BURST": "5"})
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def busy_stack(infra: Infra) -> Iterator[Stack]:
    stack = start(infra, "busy", {"THREADLOG_MAX_ACTIVE_RUNS": "1", "THREADLOG_CORS_ORIGINS": "https://app.example"})
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def budgets_stack(infra: Infra) -> Iterator[Stack]:
    stack = start(infra, "budgets", {})
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def client(limits_stack: Stack) -> openai.OpenAI:
    return sdk(limits_stack, limits_stack.api_key)


def project_key(stack: Stack, project: str) -> str:
    key = create_key(stack, project)
    ISSUED_KEYS.append(key)
    return key


def new_assistant(client: openai.OpenAI) -> str:
    return client.beta.assistants.create(model=MODEL, instructions=INSTRUCTIONS).id


def thread_events(stack: Stack, thread_id: str) -> int:
    return count_events(stack, "stream_id = $1", thread_id)


# --- (a) idempotency ------------------------------------------------------------------------------------------


def concurrently(n: int, call: Any) -> list[Any]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: call(), range(n)))


def check_one_answer(replies: list[Any]) -> tuple[dict[str, Any], str]:
    """All replies carry the same body; exactly one was carried out. Returns the body and its request id."""
    assert {r.http_response.status_code for r in replies} == {200}
    assert len({r.http_response.content for r in replies}) == 1, [r.http_response.content for r in replies]
    originals = [r for r in replies if r.headers.get("idempotent-replayed") != "true"]
    assert len(originals) == 1, [dict(r.headers) for r in replies]
    return json.loads(replies[0].http_response.content), originals[0].headers["x-request-id"]


def test_idempotent_message_create(limits_stack: Stack, client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    key = f"idem-msg-{uuid.uuid4()}"
    text = marker("once")
    create = client.beta.threads.messages.with_raw_response.create

    headers = {"Idempotency-Key": key}
    replies = concurrently(5, lambda: create(thread.id, role="user", content=text, extra_headers=headers))
    body, request_id = check_one_answer(replies)
    assert body["object"] == "thread.message" and body["content"][0]["text"]["value"] == text
    assert [m.id for m in client.beta.threads.messages.list(thread.id).data] == [body["id"]]
    # One set of events: the message's, all carrying the first request's id; the others appended nothing.
    assert events_of_requests(limits_stack, [request_id]) == [("thread.message.created", thread.id)]
    others = [r.headers["x-request-id"] for r in replies if r.headers.get("idempotent-replayed") == "true"]
    assert len(others) == 4 and events_of_requests(limits_stack, others) == []
    assert count_events(limits_stack, "stream_id = $1 AND event_type = 'thread.message.created'", thread.id) == 1

    # A later retry gets the same answer, marked as replayed.
    again = create(thread.id, role="user", content=text, extra_headers={"Idempotency-Key": key})
    assert again.http_response.content == replies[0].http_response.content
    assert again.headers["idempotent-replayed"] == "true"

    # The same key with another request is refused, not retryable, and appends nothing.
    before = thread_events(limits_stack, thread.id)
    for call in (lambda: create(thread.id, role="user", content=text + "!", extra_headers={"Idempotency-Key": key}),
                 lambda: client.beta.threads.with_raw_response.create(extra_headers={"Idempotency-Key": key})):
        with pytest.raises(openai.UnprocessableEntityError) as e:
            call()
        assert e.value.status_code == 422 and e.value.response.headers["x-should-retry"] == "false"
        error = sdk_error(e.value)
        assert error["code"] == "idempotency_key_reused" and error["type"] == "invalid_request_error"
    assert thread_events(limits_stack, thread.id) == before
    assert [m.id for m in client.beta.threads.messages.list(thread.id).data] == [body["id"]]


def test_idempotent_run_create(limits_stack: Stack, client: openai.OpenAI) -> None:
    assistant_id = new_assistant(client)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    key = f"idem-run-{uuid.uuid4()}"
    create = client.beta.threads.runs.with_raw_response.create

    replies = concurrently(5, lambda: create(thread.id, assistant_id=assistant_id, metadata={"n": "1"},
                                             extra_headers={"Idempotency-Key": key}))
    body, request_id = check_one_answer(replies)
    assert body["object"] == "thread.run" and body["status"] == "queued"
    assert [r.id for r in client.beta.threads.runs.list(thread.id).data] == [body["id"]]
    assert events_of_requests(limits_stack, [request_id]) == [("thread.run.created", thread.id)]
    assert count_events(limits_stack, "stream_id = $1 AND event_type = 'thread.run.created'", thread.id) == 1
    assert wait_ended(client, thread.id, body["id"], 10).status == "completed"

    again = create(thread.id, assistant_id=assistant_id, metadata={"n": "1"}, extra_headers={"Idempotency-Key": key})
    assert again.http_response.content == replies[0].http_response.content
    assert again.headers["idempotent-replayed"] == "true"
    before = thread_events(limits_stack, thread.id)
    with pytest.raises(openai.UnprocessableEntityError) as e:
        create(thread.id, assistant_id=assistant_id, metadata={"n": "2"}, extra_headers={"Idempotency-Key": key})
    assert e.value.response.headers["x-should-retry"] == "false"
    assert sdk_error(e.value)["code"] == "idempotency_key_reused"
    assert thread_events(limits_stack, thread.id) == before
    assert [r.id for r in client.beta.threads.runs.list(thread.id).data] == [body["id"]]


# --- (b) rate limits ------------------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(rated_stack: Stack) -> None:
    key = rated_stack.api_key
    events_before = count_events(rated_stack, "event_type = 'thread.created'")
    replies = [send(rated_stack, "POST", "/threads", key=key, body=b"{}") for _ in range(15)]
    statuses = [r.status for r in replies]
    assert statuses[:5] == [200] * 5, statuses  # the burst
    assert set(statuses) == {200, 429}, statuses
    limited = [r for r in replies if r.status == 429]
    assert len(limited) >= 3, statuses  # 15 requests at once, 5 a second: most are refused
    for reply in limited:
        error = check_error_body(reply.json())
        assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
        assert int(reply.headers["retry-after"]) >= 1
        assert 0 < int(reply.headers["retry-after-ms"]) <= 1000
    # Refused requests did nothing.
    assert count_events(rated_stack, "event_type = 'thread.created'") == events_before + statuses.count(200)

    # The limit is per key: another project's key is not slowed down by this one.
    other = project_key(rated_stack, "proj_other")
    assert send(rated_stack, "GET", "/assistants", key=other).status == 200


def test_sdk_retries_after_the_advertised_delay(rated_stack: Stack) -> None:
    key = rated_stack.api_key
    seen: list[tuple[str, float, int, str | None]] = []  # (what, when, status, retry-after-ms)

    def on_request(_request: Any) -> None:
        seen.append(("request", time.monotonic(), 0, None))

    def on_response(response: Any) -> None:
        seen.append(("response", time.monotonic(), response.status_code, response.headers.get("retry-after-ms")))

    hooks = {"request": [on_request], "response": [on_response]}
    no_retries = sdk(rated_stack, key, max_retries=0)
    for _ in range(30):  # each request takes a token: the bucket (5/s) runs dry within a few
        try:
            no_retries.beta.assistants.list()
        except openai.RateLimitError as e:
            assert sdk_error(e)["code"] == "rate_limit_exceeded"
            break
    else:
        raise AssertionError("30 requests at once were never rate limited")

    retrying = openai.OpenAI(base_url=rated_stack.base_url, api_key=key, max_retries=2,
                             http_client=openai.DefaultHttpxClient(event_hooks=hooks))
    for _ in range(30):
        seen.clear()
        raw = retrying.beta.assistants.with_raw_response.list()
        assert raw.http_response.status_code == 200 and raw.parse().object == "list"
        if raw.retries_taken:
            break
    else:
        raise AssertionError("the SDK was never rate limited")
    # It waited what retry-after-ms said (not less; nor retry-after's whole second), then succeeded.
    kinds = [(w, status) for w, _, status, _ in seen]
    assert kinds[:3] == [("request", 0), ("response", 429), ("request", 0)] and kinds[-1] == ("response", 200)
    advertised_s = int(seen[1][3] or 0) / 1000
    waited_s = seen[2][1] - seen[1][1]
    assert 0 < advertised_s <= 0.2 and advertised_s * 0.95 <= waited_s < 0.9, (advertised_s, waited_s)


# --- (c) active runs per project ------------------------------------------------------------------------------


def test_active_run_limit(busy_stack: Stack) -> None:
    client = sdk(busy_stack, busy_stack.api_key)
    assistant_id = new_assistant(client)
    slow = client.beta.threads.create(messages=[{"role": "user", "content": "say 50 words"}])
    other = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    first = client.beta.threads.runs.create(thread_id=slow.id, assistant_id=assistant_id, model=SLOW_MODEL)
    before = thread_events(busy_stack, other.id)
    with pytest.raises(openai.RateLimitError) as e:
        client.beta.threads.runs.create(thread_id=other.id, assistant_id=assistant_id)
    error = sdk_error(e.value)
    assert error["code"] == "too_many_active_runs" and "1" in error["message"]
    assert e.value.response.headers.get("retry-after") is not None
    with pytest.raises(openai.RateLimitError):  # create-thread-and-run counts too
        client.beta.threads.create_and_run(assistant_id=assistant_id)
    assert client.beta.threads.runs.list(other.id).data == []
    assert thread_events(busy_stack, other.id) == before

    client.beta.threads.runs.cancel(first.id, thread_id=slow.id)
    assert wait_ended(client, slow.id, first.id, 10).status == "cancelled"
    second = client.beta.threads.runs.create_and_poll(thread_id=other.id, assistant_id=assistant_id, **POLL)
    assert second.status == "completed"


# --- (d) token budgets and usage ------------------------------------------------------------------------------


def one_run(client: openai.OpenAI, assistant_id: str, text: str, thread_id: str | None = None) -> Any:
    if thread_id is None:
        thread_id = client.beta.threads.create(messages=[{"role": "user", "content": text}]).id
    else:
        client.beta.threads.messages.create(thread_id, role="user", content=text)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id, **POLL)
    assert run.status == "completed", run.last_error
    assert run.usage is not None
    return run


def usage(stack: Stack, key: str, **params: Any) -> dict[str, Any]:
    reply = send(stack, "GET", "/usage", key=key, params=[(k, str(v)) for k, v in params.items()])
    assert reply.status == 200, reply.body
    return reply.json()  # type: ignore[no-any-return]


def as_ints(bucket: dict[str, Any]) -> dict[str, int]:
    return {k: int(bucket[k]) for k in ("runs", "prompt_tokens", "completion_tokens", "total_tokens")}


def expect_refused(client: openai.OpenAI, model_log: ModelLog, thread_id: str, assistant_id: str) -> str:
    """The run is refused for its budget, before any model call. Returns the refusal message."""
    model_log.clear()
    try:
        run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    except openai.RateLimitError as e:
        assert e.response.headers["x-should-retry"] == "false"
        error = sdk_error(e)
        assert error["type"] == "insufficient_quota" and error["code"] == "insufficient_quota"
        assert all(r.status in ENDED for r in client.beta.threads.runs.list(thread_id).data)  # none was created
        message = error["message"]
    else:  # the other acceptable answer: the run is created, then fails without calling the model
        ended = wait_ended(client, thread_id, run.id, 10)
        assert ended.status == "failed" and ended.last_error is not None, ended
        message = ended.last_error.message
    time.sleep(0.3)  # a model call, had one been made, would have been logged by now
    assert model_log.chats() == []
    assert "budget" in message
    return message


def test_project_and_thread_budgets(budgets_stack: Stack) -> None:
    stack = budgets_stack
    model_log = ModelLog(stack)
    prompt = "say 20 words"
    # What one run costs, read from the usage endpoint (the offline model is deterministic).
    calib_key = project_key(stack, "proj_calib")
    calib = sdk(stack, calib_key)
    one_run(calib, new_assistant(calib), prompt)
    spent = int(usage(stack, calib_key)["total"]["total_tokens"])
    assert spent > 20

    # A project budget just above one run: the first run fits, the next is refused before the model is called.
    threadlog_cli(stack, "budgets", "set", "--project", "proj_default", "--tokens", str(spent + 1), "--period", "day")
    client = sdk(stack, stack.api_key)
    assistant_id = new_assistant(client)
    run = one_run(client, assistant_id, prompt)
    assert run.usage.total_tokens == spent
    assert int(usage(stack, stack.api_key)["total"]["total_tokens"]) == spent
    thread = client.beta.threads.create(messages=[{"role": "user", "content": prompt}])
    message = expect_refused(client, model_log, thread.id, assistant_id)
    assert "project" in message and str(spent + 1) in message
    assert usage(stack, stack.api_key)["budgets"] == [{"scope": "project", "period": "day", "tokens": spent + 1}]

    # A per-thread budget: the thread that spent it is refused; another thread of the project is not.
    thread_key = project_key(stack, "proj_threads")
    threadlog_cli(stack, "budgets", "set", "--project", "proj_threads", "--tokens", str(spent + 1), "--per-thread")
    per_thread = sdk(stack, thread_key)
    assistant_id = new_assistant(per_thread)
    first = one_run(per_thread, assistant_id, prompt)
    per_thread.beta.threads.messages.create(first.thread_id, role="user", content="hi")
    message = expect_refused(per_thread, model_log, first.thread_id, assistant_id)
    assert "thread" in message
    assert one_run(per_thread, assistant_id, prompt).usage.total_tokens == spent


def test_usage_totals_and_groups(limits_stack: Stack) -> None:
    key = project_key(limits_stack, "proj_usage")
    client = sdk(limits_stack, key)
    asst_1, asst_2 = new_assistant(client), new_assistant(client)
    runs = [one_run(client, asst_1, "say 3 words")]
    runs.append(one_run(client, asst_2, "say 7 words", thread_id=runs[0].thread_id))
    split = int(time.time()) + 1
    wait_for("the next second", lambda: time.time() >= split + 0.05, 2)
    runs.append(one_run(client, asst_1, "say 11 words"))

    def total(selected: list[Any]) -> dict[str, int]:
        return {"runs": len(selected), "prompt_tokens": sum(r.usage.prompt_tokens for r in selected),
                "completion_tokens": sum(r.usage.completion_tokens for r in selected),
                "total_tokens": sum(r.usage.total_tokens for r in selected)}

    def grouped(by: str, key_of: Any) -> dict[str, dict[str, int]]:
        out: dict[str, list[Any]] = {}
        for r in runs:
            out.setdefault(key_of(r), []).append(r)
        return {k: total(v) for k, v in out.items()}

    body = usage(limits_stack, key)
    assert body["object"] == "usage" and body["data"] == [] and body["budgets"] == []
    assert as_ints(body["total"]) == total(runs)
    for by, key_of in (("thread", lambda r: r.thread_id), ("assistant", lambda r: r.assistant_id),
                       ("day", lambda r: dt.datetime.fromtimestamp(r.completed_at, dt.UTC).strftime("%Y-%m-%d"))):
        body = usage(limits_stack, key, group_by=by)
        assert as_ints(body["total"]) == total(runs)
        assert all(b["object"] == "usage.bucket" and b["group_by"] == by and b["project_id"] == "proj_usage"
                   for b in body["data"])
        assert {b["key"]: as_ints(b) for b in body["data"]} == grouped(by, key_of), by

    assert as_ints(usage(limits_stack, key, start_time=split)["total"]) == total(runs[2:])
    assert as_ints(usage(limits_stack, key, end_time=split)["total"]) == total(runs[:2])
    assert as_ints(usage(limits_stack, key, start_time=split, end_time=split)["total"]) == total([])
    later = usage(limits_stack, key, group_by="thread", start_time=split)
    assert [b["key"] for b in later["data"]] == [runs[2].thread_id]
    assert as_ints(usage(limits_stack, key, start_time=int(time.time()) + 3600)["total"]) == total([])
    for bad in ({"group_by": "model"}, {"start_time": "yesterday"}, {"end_time": "1.5"}):
        reply = send(limits_stack, "GET", "/usage", key=key, params=list(bad.items()))
        assert reply.status == 400 and check_error_body(reply.json())["param"] == next(iter(bad))


def test_usage_token_counts_are_integers(limits_stack: Stack, client: openai.OpenAI) -> None:
    one_run(client, new_assistant(client), "say 2 words")
    body = usage(limits_stack, limits_stack.api_key, group_by="thread")
    for bucket in [body["total"], *body["data"]]:
        for k in ("runs", "prompt_tokens", "completion_tokens", "total_tokens"):
            assert isinstance(bucket[k], int), (k, bucket[k])


# --- (e) request limits ---------------------------------------------------------------------------------------


def test_body_and_content_limits(limits_stack: Stack, client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    before = thread_events(limits_stack, thread.id)
    threads_before = count_events(limits_stack, "event_type = 'thread.created'")
    huge = json.dumps({"role": "user", "content": "x" * (1024 * 1024)}).encode()
    for path in ("/threads", f"/threads/{thread.id}/messages", "/assistants"):
        reply = send(limits_stack, "POST", path, key=client.api_key, body=huge)
        assert reply.status == 413, (path, reply.status)
        assert check_error_body(reply.json())["type"] == "invalid_request_error"

    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.messages.create(thread.id, role="user", content="x" * 256_001)
    error = sdk_error(e.value)
    assert error["param"] == "content" and error["code"] == "string_above_max_length"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.create(thread.id, role="user", content=[
            {"type": "text", "text": "x" * 128_001}, {"type": "text", "text": "y" * 128_000}])
    assert thread_events(limits_stack, thread.id) == before
    assert count_events(limits_stack, "event_type = 'thread.created'") == threads_before
    # The limit itself is allowed.
    client.beta.threads.messages.create(thread.id, role="user", content="x" * 256_000)


@pytest.mark.parametrize(("metadata", "param"), [
    ({f"k{i}": "v" for i in range(17)}, "metadata"),
    ({"k" * 65: "v"}, None),
    ({"k": "v" * 513}, "metadata.k"),
    ({"k": 1}, None),
    ({"k": {"nested": "v"}}, None),
])
def test_metadata_limits(limits_stack: Stack, client: openai.OpenAI, metadata: dict[str, Any],
                         param: str | None) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    [message] = client.beta.threads.messages.list(thread.id).data
    assistant_id = new_assistant(client)
    before = count_events(limits_stack)
    calls = [
        lambda: client.beta.threads.create(metadata=metadata),
        lambda: client.beta.threads.update(thread.id, metadata=metadata),
        lambda: client.beta.threads.messages.create(thread.id, role="user", content="x", metadata=metadata),
        lambda: client.beta.threads.messages.update(message.id, thread_id=thread.id, metadata=metadata),
        lambda: client.beta.assistants.create(model=MODEL, metadata=metadata),
        lambda: client.beta.assistants.update(assistant_id, metadata=metadata),
        lambda: client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id, metadata=metadata),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(openai.BadRequestError) as e:
            call()
        error = sdk_error(e.value)
        assert error["type"] == "invalid_request_error", i
        if param is not None:
            assert error["param"] in (param, f"messages[0].{param}", f"{param}"), (i, error)
    assert count_events(limits_stack) == before
    # At the limits, accepted.
    ok = {f"k{i:02d}" + "k" * 61: "v" * 512 for i in range(16)}
    assert client.beta.threads.update(thread.id, metadata=ok).metadata == ok


def test_list_limit_bounds(limits_stack: Stack, client: openai.OpenAI) -> None:
    assistant_id = new_assistant(client)
    run = one_run(client, assistant_id, "hi")
    paths = ["/threads", "/assistants", f"/threads/{run.thread_id}/messages", f"/threads/{run.thread_id}/runs",
             f"/threads/{run.thread_id}/runs/{run.id}/steps", f"/threads/{run.thread_id}/history"]
    for path in paths:
        for limit in ("0", "101", "-1", "ten", "1e2"):
            reply = send(limits_stack, "GET", path, key=client.api_key, params=[("limit", limit)])
            assert reply.status == 400, (path, limit, reply.status)
            assert check_error_body(reply.json())["param"] == "limit"
        for limit in ("1", "100"):
            assert send(limits_stack, "GET", path, key=client.api_key, params=[("limit", limit)]).status == 200
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.list(run.thread_id, limit=101)


# --- (f) CORS -------------------------------------------------------------------------------------------------


def preflight(stack: Stack, origin: str) -> Any:
    return send(stack, "OPTIONS", "/threads", key=None, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})


def test_cors_off_by_default(limits_stack: Stack) -> None:
    reply = send(limits_stack, "GET", "/threads", key=limits_stack.api_key, headers={"Origin": "https://app.example"})
    assert reply.status == 200 and "access-control-allow-origin" not in reply.headers
    reply = preflight(limits_stack, "https://app.example")
    assert reply.status != 204 and "access-control-allow-origin" not in reply.headers


def test_cors_for_configured_origins_only(busy_stack: Stack) -> None:
    reply = preflight(busy_stack, "https://app.example")
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in reply.headers["access-control-allow-methods"]
    assert "authorization" in reply.headers["access-control-allow-headers"].lower()
    assert "origin" in reply.headers.get("vary", "").lower()
    actual = send(busy_stack, "GET", "/threads", key=busy_stack.api_key, headers={"Origin": "https://app.example"})
    assert actual.status == 200 and actual.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-request-id" in actual.headers["access-control-expose-headers"]

    for other in ("https://evil.example", "https://app.example.evil", "null"):
        reply = preflight(busy_stack, other)
        assert reply.status != 204 and "access-control-allow-origin" not in reply.headers, other
        actual = send(busy_stack, "GET", "/threads", key=busy_stack.api_key, headers={"Origin": other})
        assert "access-control-allow-origin" not in actual.headers, other


# --- (g) no secret in logs or events (last: after the module's other tests) ------------------------------------


def test_no_secret_in_logs_or_events(limits_stack: Stack, rated_stack: Stack, busy_stack: Stack,
                                     budgets_stack: Stack) -> None:
    # Failed lookups of keys must not be logged either.
    for stack in (limits_stack, rated_stack, busy_stack, budgets_stack):
        send(stack, "GET", "/threads", key=stack.api_key + "-typo")
    secrets_ = [*ISSUED_KEYS, OPENAI_SECRET]
    assert len(ISSUED_KEYS) >= 4  # the four stacks' keys, plus the projects' keys the other tests made
    for stack in (limits_stack, rated_stack, busy_stack, budgets_stack):
        logs = sorted(stack.log_dir.glob("*.log"))
        assert logs, stack.log_dir
        for path in logs:
            text = path.read_text(errors="replace")
            for secret in secrets_:
                assert secret not in text, f"{path} contains a secret ({secret[:6]}…)"
                assert secret[4:-4] not in text, f"{path} contains most of a secret ({secret[:6]}…)"
        rows = fetch(stack.env["DATABASE_URL"], "SELECT count(*) FROM events")
        assert rows[0][0] > 0
        for secret in secrets_:
            assert count_events(stack, "position($1 in convert_from(payload, 'UTF8')) > 0", secret) == 0
            assert count_events(stack, "position($1 in convert_from(payload, 'UTF8')) > 0", secret[4:-4]) == 0
    # The debug logs were really written (the check above is not vacuous).
    assert (limits_stack.log_dir / "gateway.log").stat().st_size > 0
