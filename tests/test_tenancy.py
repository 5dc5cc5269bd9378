"""Projects are isolated: a key sees its own project's objects only, and another project's ids are 404s.

One stack of its own with three projects' keys: A (`proj_default`, the stack's key), B (`threadlog keys create
--project proj_b`) and an admin key (`--admin`), which reads across projects and leaves an `admin.read` event
in the log for every GET.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from tests.infra import Infra
from threadlog.stack import Stack

from .runs_helpers import fetch, marker
from .tenancy_helpers import (
    check_error_body,
    count_events,
    create_key,
    db,
    events_of_requests,
    sdk,
    sdk_error,
    send,
    threadlog_cli,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
POLL = {"poll_interval_ms": 50}
MODEL = "threadlog-offline"
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather in a city",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
REVOKE_WITHIN_S = 11.0  # the gateways' key cache lives 10 s


class Revocation(threading.Thread):
    """Uses a just-revoked key every 0.2 s, in the background while the other tests run, until it is refused."""

    def __init__(self, client: openai.OpenAI, revoked_at: float) -> None:
        super().__init__(daemon=True)
        self.client, self.revoked_at = client, revoked_at
        self.refused_after_s: float | None = None
        self.error: dict[str, Any] | None = None

    def run(self) -> None:
        while time.monotonic() - self.revoked_at < REVOKE_WITHIN_S + 5:
            try:
                self.client.beta.assistants.list()
            except openai.AuthenticationError as e:
                self.refused_after_s = time.monotonic() - self.revoked_at
                self.error = e.response.json()
                return
            time.sleep(0.2)


@dataclass
class World:
    stack: Stack
    key_a: str
    key_b: str
    key_admin: str
    key_revoked: str
    revocation: Revocation
    secret: str  # a word only B's messages contain
    asst_a: str
    thread_a: str
    asst_b: str
    thread_b: str  # messages and a completed run
    message_b: str
    run_b: str
    step_b: str
    thread_b2: str  # a run waiting in requires_action
    run_b2: str
    step_b2: str
    call_b2: str


@pytest.fixture(scope="module")
def world(infra: Infra) -> Iterator[World]:
    stack = infra.new_stack("tenancy")
    stack.start()
    try:
        yield build_world(stack)
    finally:
        stack.stop()


def build_world(stack: Stack) -> World:
    key_b = create_key(stack, "proj_b")
    key_admin = create_key(stack, "proj_default", admin=True)
    key_revoked = create_key(stack, "proj_b")
    a, b = sdk(stack, stack.api_key), sdk(stack, key_b)

    # The key to revoke works, and is in the gateway's cache, before it is revoked.
    assert sdk(stack, key_revoked).beta.assistants.list().data == []
    [line] = [x for x in threadlog_cli(stack, "keys", "list", "--project", "proj_b").stdout.splitlines()
              if x.split("\t")[2] == "…" + key_revoked[-4:]]
    out = threadlog_cli(stack, "keys", "revoke", line.split("\t")[0])
    revoked_at = time.monotonic()
    assert out.stdout.startswith("revoked key_")
    revocation = Revocation(sdk(stack, key_revoked), revoked_at)
    revocation.start()

    secret = marker("secretB")
    asst_b = b.beta.assistants.create(model=MODEL, name="b-assistant", instructions="B's own", tools=[WEATHER_TOOL],
                                      metadata={"owner": "b"})
    thread_b = b.beta.threads.create(metadata={"owner": "b"}, messages=[
        {"role": "user", "content": f"{secret} hello"}, {"role": "assistant", "content": f"{secret} hi there"}])
    run_b = b.beta.threads.runs.create_and_poll(thread_id=thread_b.id, assistant_id=asst_b.id, **POLL)
    assert run_b.status == "completed", run_b.last_error
    [step_b] = b.beta.threads.runs.steps.list(run_b.id, thread_id=thread_b.id).data
    message_b = b.beta.threads.messages.list(thread_b.id, order="asc").data[0].id

    call_text = f'{secret} call get_weather {{"city": "Oslo"}}'
    thread_b2 = b.beta.threads.create(messages=[{"role": "user", "content": call_text}])
    run_b2 = b.beta.threads.runs.create_and_poll(thread_id=thread_b2.id, assistant_id=asst_b.id, **POLL)
    assert run_b2.status == "requires_action" and run_b2.required_action is not None
    [call] = run_b2.required_action.submit_tool_outputs.tool_calls
    [step_b2] = b.beta.threads.runs.steps.list(run_b2.id, thread_id=thread_b2.id).data

    asst_a = a.beta.assistants.create(model=MODEL, name="a-assistant")
    thread_a = a.beta.threads.create(messages=[{"role": "user", "content": "A's own"}])
    run_a = a.beta.threads.runs.create_and_poll(thread_id=thread_a.id, assistant_id=asst_a.id, **POLL)
    assert run_a.status == "completed", run_a.last_error
    return World(stack, stack.api_key, key_b, key_admin, key_revoked, revocation, secret, asst_a.id, thread_a.id,
                 asst_b.id, thread_b.id, message_b, run_b.id, step_b.id, thread_b2.id, run_b2.id, step_b2.id, call.id)


def snapshot(client: openai.OpenAI, w: World) -> dict[str, Any]:
    """Everything B has, as B's key sees it."""
    beta = client.beta
    out: dict[str, Any] = {"assistant": beta.assistants.retrieve(w.asst_b).model_dump()}
    for thread_id, run_id in ((w.thread_b, w.run_b), (w.thread_b2, w.run_b2)):
        out[thread_id] = {
            "thread": beta.threads.retrieve(thread_id).model_dump(),
            "messages": [m.model_dump() for m in beta.threads.messages.list(thread_id, order="asc").data],
            "runs": [r.model_dump() for r in beta.threads.runs.list(thread_id, order="asc").data],
            "steps": [s.model_dump() for s in beta.threads.runs.steps.list(run_id, thread_id=thread_id).data],
        }
    return out


def streams_of_b(w: World) -> list[str]:
    return [w.asst_b, w.thread_b, w.thread_b2]


def test_other_projects_ids_are_404_everywhere(world: World) -> None:
    w = world
    a, b = sdk(w.stack, w.key_a), sdk(w.stack, w.key_b)
    before = snapshot(b, w)
    events_before = count_events(w.stack)
    b_events_before = count_events(w.stack, "stream_id = ANY($1::text[])", streams_of_b(w))
    beta, runs, msgs = a.beta, a.beta.threads.runs, a.beta.threads.messages
    outputs = [{"tool_call_id": w.call_b2, "output": "sunny"}]

    def stream_run() -> None:
        with runs.stream(thread_id=w.thread_b, assistant_id=w.asst_a) as s:
            s.until_done()

    def stream_outputs() -> None:
        with runs.submit_tool_outputs_stream(run_id=w.run_b2, thread_id=w.thread_b2, tool_outputs=outputs) as s:
            s.until_done()

    sdk_calls: list[tuple[str, Callable[[], object]]] = [
        ("retrieve assistant", lambda: beta.assistants.retrieve(w.asst_b)),
        ("update assistant", lambda: beta.assistants.update(w.asst_b, name="stolen")),
        ("delete assistant", lambda: beta.assistants.delete(w.asst_b)),
        ("retrieve thread", lambda: beta.threads.retrieve(w.thread_b)),
        ("update thread", lambda: beta.threads.update(w.thread_b, metadata={"owner": "a"})),
        ("delete thread", lambda: beta.threads.delete(w.thread_b)),
        ("list messages", lambda: msgs.list(w.thread_b)),
        ("create message", lambda: msgs.create(w.thread_b, role="user", content="from A")),
        ("retrieve message", lambda: msgs.retrieve(w.message_b, thread_id=w.thread_b)),
        ("retrieve message via A's thread", lambda: msgs.retrieve(w.message_b, thread_id=w.thread_a)),
        ("update message", lambda: msgs.update(w.message_b, thread_id=w.thread_b, metadata={"x": "y"})),
        ("delete message", lambda: msgs.delete(w.message_b, thread_id=w.thread_b)),
        ("create run on B's thread", lambda: runs.create(thread_id=w.thread_b, assistant_id=w.asst_a)),
        ("create run with B's assistant", lambda: runs.create(thread_id=w.thread_a, assistant_id=w.asst_b)),
        ("create thread and run with B's assistant", lambda: beta.threads.create_and_run(assistant_id=w.asst_b)),
        ("list runs", lambda: runs.list(w.thread_b)),
        ("retrieve run", lambda: runs.retrieve(w.run_b, thread_id=w.thread_b)),
        ("retrieve run via A's thread", lambda: runs.retrieve(w.run_b, thread_id=w.thread_a)),
        ("update run", lambda: runs.update(w.run_b, thread_id=w.thread_b, metadata={"x": "y"})),
        ("cancel run", lambda: runs.cancel(w.run_b2, thread_id=w.thread_b2)),
        ("submit tool outputs", lambda: runs.submit_tool_outputs(w.run_b2, thread_id=w.thread_b2,
                                                                 tool_outputs=outputs)),
        ("list steps", lambda: runs.steps.list(w.run_b, thread_id=w.thread_b)),
        ("retrieve step", lambda: runs.steps.retrieve(w.step_b, thread_id=w.thread_b, run_id=w.run_b)),
        ("retrieve tool step", lambda: runs.steps.retrieve(w.step_b2, thread_id=w.thread_b2, run_id=w.run_b2)),
        ("stream a new run", stream_run),
        ("stream tool outputs", stream_outputs),
    ]
    request_ids: list[str] = []
    for name, call in sdk_calls:
        with pytest.raises(openai.APIStatusError) as e:
            call()
        assert e.value.status_code == 404, f"{name}: {e.value.status_code} {e.value.response.text}"
        error = sdk_error(e.value)
        assert error["type"] == "invalid_request_error", name
        assert w.secret not in e.value.response.text and "b-assistant" not in e.value.response.text, name
        request_ids.append(e.value.response.headers.get("x-request-id", ""))

    t, r = w.thread_b, w.run_b
    raw_calls: list[tuple[str, str, dict[str, str] | None, bytes | None]] = [
        ("GET", f"/threads/{t}/events", None, None),
        ("GET", f"/threads/{t}/events", {"after": "1.0"}, None),
        ("GET", f"/threads/{t}/runs/{r}/stream", None, None),
        ("GET", f"/threads/{t}/history", None, None),
        ("GET", f"/threads/{t}/messages", {"as_of_position": "1000000000"}, None),
        ("GET", f"/threads/{t}/messages", {"as_of": str(time.time() + 60)}, None),
        ("POST", f"/threads/{t}/erase", None, b"{}"),
    ]
    for method, path, params, body in raw_calls:
        reply = send(w.stack, method, path, key=w.key_a, body=body,
                     params=list(params.items()) if params else None, headers={"Accept": "text/event-stream"})
        assert reply.status == 404 and not reply.streamed, f"{method} {path}: {reply.status} {reply.body[:300]!r}"
        check_error_body(reply.json())
        assert w.secret.encode() not in reply.body
        request_ids.append(reply.request_id)

    # Nothing of A's attempts reached the log, and B's objects are exactly as they were. (Error responses
    # carry no x-request-id today, see test_fuzz.py; the total count below covers that.)
    assert events_of_requests(w.stack, [i for i in request_ids if i]) == []
    assert count_events(w.stack, "stream_id = ANY($1::text[])", streams_of_b(w)) == b_events_before
    assert count_events(w.stack) == events_before
    assert snapshot(b, w) == before


def test_conversations_and_responses_surfaces_are_isolated_too(world: World) -> None:
    """The Responses-style surface reaches the same streams (`conv_X` is `thread_X`): the same isolation holds."""
    w = world
    from shared.wire_responses import to_conversation_id

    created = send(w.stack, "POST", "/responses", key=w.key_b,
                   body=json.dumps({"model": MODEL, "input": f"{w.secret} hello"}).encode())
    assert created.status == 200, created.body
    resp_b, conv_b = created.json()["id"], to_conversation_id(w.thread_b)
    b = sdk(w.stack, w.key_b)
    before = snapshot(b, w)
    own_before = send(w.stack, "GET", f"/responses/{resp_b}", key=w.key_b).json()
    events_before = count_events(w.stack)
    item = json.dumps({"items": [{"type": "message", "role": "user", "content": "from A"}]}).encode()
    calls: list[tuple[str, str, bytes | None]] = [
        ("GET", f"/conversations/{conv_b}", None),
        ("POST", f"/conversations/{conv_b}", b'{"metadata": {"owner": "a"}}'),
        ("DELETE", f"/conversations/{conv_b}", None),
        ("GET", f"/conversations/{conv_b}/items", None),
        ("POST", f"/conversations/{conv_b}/items", item),
        ("GET", f"/conversations/{conv_b}/items/{w.message_b}", None),
        ("DELETE", f"/conversations/{conv_b}/items/{w.message_b}", None),
        ("GET", f"/responses/{resp_b}", None),
        ("GET", f"/responses/{resp_b}/input_items", None),
        ("POST", f"/responses/{resp_b}/cancel", b"{}"),
        ("DELETE", f"/responses/{resp_b}", None),
        ("POST", "/responses", json.dumps({"model": MODEL, "input": "x", "conversation": conv_b}).encode()),
    ]
    for method, path, body in calls:
        reply = send(w.stack, method, path, key=w.key_a, body=body)
        assert reply.status == 404, f"{method} {path}: {reply.status} {reply.body[:300]!r}"
        check_error_body(reply.json())
        assert w.secret.encode() not in reply.body
    # Chaining on B's response answers exactly as chaining on a response that does not exist.
    chained = [send(w.stack, "POST", "/responses", key=w.key_a, body=json.dumps(
        {"model": MODEL, "input": "x", "previous_response_id": rid}).encode()) for rid in (resp_b, "resp_doesnotexist")]
    assert chained[0].status == chained[1].status and chained[0].status >= 400
    assert check_error_body(chained[0].json())["code"] == check_error_body(chained[1].json())["code"]
    listed = send(w.stack, "GET", "/conversations", key=w.key_a, params=[("limit", "100")]).json()
    assert conv_b not in {c["id"] for c in listed["data"]}

    assert count_events(w.stack) == events_before
    assert snapshot(b, w) == before
    assert send(w.stack, "GET", f"/responses/{resp_b}", key=w.key_b).json() == own_before


def test_lists_and_usage_show_only_own_project(world: World) -> None:
    w = world
    a, b = sdk(w.stack, w.key_a), sdk(w.stack, w.key_b)
    assert [x.id for x in a.beta.assistants.list(limit=100).data] == [w.asst_a]
    assert [x.id for x in b.beta.assistants.list(limit=100).data] == [w.asst_b]
    threads_a = send(w.stack, "GET", "/threads", key=w.key_a, params=[("limit", "100")]).json()
    assert [x["id"] for x in threads_a["data"]] == [w.thread_a]
    threads_b = send(w.stack, "GET", "/threads", key=w.key_b, params=[("limit", "100")]).json()
    assert {x["id"] for x in threads_b["data"]} == {w.thread_b, w.thread_b2}
    # A cursor naming B's thread leads nowhere for A (it is not a way to probe B's list).
    after_b = send(w.stack, "GET", "/threads", key=w.key_a, params=[("after", w.thread_b), ("order", "asc")])
    assert after_b.status in (200, 404) and w.thread_b not in after_b.body.decode()
    # A's metadata filter cannot match B's threads either.
    owner_b = send(w.stack, "GET", "/threads", key=w.key_a, params=[("metadata[owner]", "b")]).json()
    assert owner_b["data"] == []

    usage_a = send(w.stack, "GET", "/usage", key=w.key_a, params=[("group_by", "thread")]).json()
    assert int(usage_a["total"]["runs"]) == 1
    assert [(x["key"], x["project_id"]) for x in usage_a["data"]] == [(w.thread_a, "proj_default")]
    usage_b = send(w.stack, "GET", "/usage", key=w.key_b, params=[("group_by", "assistant")]).json()
    assert w.asst_b in {x["key"] for x in usage_b["data"]} and w.asst_a not in {x["key"] for x in usage_b["data"]}
    assert {x["project_id"] for x in usage_b["data"]} == {"proj_b"}


def test_missing_and_wrong_keys(world: World) -> None:
    w = world
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        reply = send(w.stack, "GET", "/threads", key=None, headers=headers)
        assert reply.status == 401, headers
        assert check_error_body(reply.json())["code"] in ("missing_api_key", "invalid_api_key")
    assert send(w.stack, "GET", "/threads", key=None).json()["error"]["code"] == "missing_api_key"
    for key in ("tl-wrong", w.key_a + "x", w.key_a[:-1], ""):
        with pytest.raises(openai.AuthenticationError) as e:
            sdk(w.stack, key or "x").beta.threads.retrieve(w.thread_a)
        assert sdk_error(e.value)["code"] == "invalid_api_key"
    # A wrong key is refused before anything else: even a write with a malformed body.
    reply = send(w.stack, "POST", "/threads", key="tl-wrong", body=b"{not json")
    assert reply.status == 401


def test_admin_key_reads_across_projects_and_is_audited(world: World) -> None:
    w = world
    admin, b = sdk(w.stack, w.key_admin), sdk(w.stack, w.key_b)
    audits_before = count_events(w.stack, "event_type = 'admin.read'")
    gets_before = fetch(db(w.stack), "SELECT max(position) FROM events")[0][0]

    beta = admin.beta
    assert beta.threads.retrieve(w.thread_b) == b.beta.threads.retrieve(w.thread_b)
    assert beta.threads.messages.list(w.thread_b).data == b.beta.threads.messages.list(w.thread_b).data
    assert beta.threads.messages.retrieve(w.message_b, thread_id=w.thread_b).id == w.message_b
    assert beta.threads.runs.list(w.thread_b).data == b.beta.threads.runs.list(w.thread_b).data
    assert beta.threads.runs.retrieve(w.run_b2, thread_id=w.thread_b2).status == "requires_action"
    assert [s.id for s in beta.threads.runs.steps.list(w.run_b, thread_id=w.thread_b).data] == [w.step_b]
    assert beta.assistants.retrieve(w.asst_b).name == "b-assistant"
    assert {w.asst_a, w.asst_b} <= {x.id for x in beta.assistants.list(limit=100).data}
    threads = send(w.stack, "GET", "/threads", key=w.key_admin, params=[("limit", "100")])
    assert {w.thread_a, w.thread_b, w.thread_b2} <= {x["id"] for x in threads.json()["data"]}
    usage = send(w.stack, "GET", "/usage", key=w.key_admin, params=[("group_by", "thread")]).json()
    buckets = {(x["key"], x["project_id"]) for x in usage["data"]}
    assert {(w.thread_a, "proj_default"), (w.thread_b, "proj_b")} <= buckets
    with pytest.raises(openai.NotFoundError):  # an audited read of nothing is still audited
        beta.threads.retrieve("thread_doesnotexist")
    paths = [f"/v1/threads/{w.thread_b}", f"/v1/threads/{w.thread_b}/messages",
             f"/v1/threads/{w.thread_b}/messages/{w.message_b}", f"/v1/threads/{w.thread_b}/runs",
             f"/v1/threads/{w.thread_b2}/runs/{w.run_b2}", f"/v1/threads/{w.thread_b}/runs/{w.run_b}/steps",
             f"/v1/assistants/{w.asst_b}", "/v1/assistants", "/v1/threads", "/v1/usage",
             "/v1/threads/thread_doesnotexist"]

    assert count_events(w.stack, "event_type = 'admin.read'") == audits_before + len(paths)
    rows = fetch(db(w.stack), "SELECT convert_from(payload, 'UTF8')::json->>'path', tenant_id FROM events"
                 " WHERE event_type = 'admin.read' AND position > $1 ORDER BY position", gets_before)
    assert [r[0] for r in rows] == paths
    assert {r[1] for r in rows} == {"proj_default"}  # recorded under the admin key's own project

    # Project keys' reads are not audited (and B's own reads are not admin reads).
    b.beta.threads.retrieve(w.thread_b)
    assert count_events(w.stack, "event_type = 'admin.read'") == audits_before + len(paths)


def test_keys_are_never_shown_or_stored(world: World) -> None:
    w = world
    keys = [w.key_a, w.key_b, w.key_admin, w.key_revoked]
    listing = threadlog_cli(w.stack, "keys", "list")
    text = listing.stdout + listing.stderr
    assert len(listing.stdout.strip().splitlines()) == 4
    for key in keys:
        assert key not in text
        assert key[4:-4] not in text  # not even most of it
        assert "…" + key[-4:] in text  # only the hint
    assert "admin" in text and "revoked" in text
    rows = fetch(db(w.stack), "SELECT row_to_json(k)::text, key_hash, key_hint FROM api_keys k")
    assert len(rows) == 4
    stored = "\n".join(r[0] for r in rows)
    for key in keys:
        assert key not in stored and key[4:-4] not in stored
        for row in rows:
            assert key.encode() not in bytes(row[1])
            assert len(row[2]) <= 4
    # Nor does any event (the audit log included) carry a key.
    for key in keys:
        assert count_events(w.stack, "position($1 in convert_from(payload, 'UTF8')) > 0", key) == 0


def test_run_admission_does_not_reveal_other_projects(world: World) -> None:
    w = world
    a = sdk(w.stack, w.key_a)
    threadlog_cli(w.stack, "budgets", "set", "--project", "proj_b", "--tokens", "1")
    try:
        # A fresh lookup of B's budgets happens at most 5 s (shared/budgets.py CACHE_S) after it was set.
        def answer() -> openai.APIStatusError | None:
            try:
                a.beta.threads.runs.create(thread_id=w.thread_b, assistant_id=w.asst_a)
            except openai.APIStatusError as e:
                return e if e.status_code != 404 else None
            raise AssertionError("A created a run on B's thread")

        leaked = None
        deadline = time.monotonic() + 6
        while leaked is None and time.monotonic() < deadline:
            leaked = answer()
            time.sleep(0.2)
        assert leaked is None, f"{leaked.status_code}: {leaked.response.text}"
    finally:
        threadlog_cli(w.stack, "budgets", "clear", "--project", "proj_b")


def test_revoked_key_stops_working_within_the_cache_ttl(world: World) -> None:
    w = world
    w.revocation.join(timeout=REVOKE_WITHIN_S + 6)
    assert w.revocation.refused_after_s is not None, "the revoked key still worked"
    assert w.revocation.refused_after_s <= REVOKE_WITHIN_S, w.revocation.refused_after_s
    assert w.revocation.error is not None and check_error_body(w.revocation.error)["code"] == "invalid_api_key"
    # Refused for good; the project's other keys still work.
    with pytest.raises(openai.AuthenticationError):
        sdk(w.stack, w.key_revoked).beta.threads.retrieve(w.thread_b)
    assert sdk(w.stack, w.key_b).beta.threads.retrieve(w.thread_b).id == w.thread_b
