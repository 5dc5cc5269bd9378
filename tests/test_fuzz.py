"""Malformed input on every endpoint: never a 5xx, every error in OpenAI's shape, and a refused request writes
nothing to the log.

The endpoints come from the gateway's own route tables (`services.gateway.routes.*.routes`), so a new route is
fuzzed as soon as it exists. Each gets hypothesis-generated bodies (wrong types, missing and unknown fields,
huge numbers, nested junk, invalid JSON bytes), query parameters (limit, order, after, metadata[…], …) and ids
(valid ones of a stack of its own, other kinds', unknown and garbage), sent with a valid key.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
import re
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import services.gateway.routes as route_modules
from tests.infra import Infra
from threadlog.stack import Stack

from .runs_helpers import wait_ended
from .tenancy_helpers import Reply, check_error_body, sdk, send

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
MAX_EXAMPLES = 15
MODEL = "threadlog-offline"
TOOL: Any = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def api_routes() -> list[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for module in pkgutil.iter_modules(route_modules.__path__):
        table = getattr(importlib.import_module(f"{route_modules.__name__}.{module.name}"), "routes", None)
        for route in table or []:
            found.add((route.method, route.path))  # type: ignore[attr-defined]
    return sorted(found, key=lambda r: (r[1], r[0]))


ROUTES = api_routes()
PARAM = re.compile(r"\{(\w+)\}")


def test_route_tables_are_found() -> None:
    """The fuzz below covers the API: every resource's routes are in the list (guards an empty parametrize)."""
    paths = {path for _, path in ROUTES}
    for expected in ("/v1/assistants/{assistant_id}", "/v1/threads", "/v1/threads/runs", "/v1/usage",
                     "/v1/threads/{thread_id}/messages/{message_id}", "/v1/threads/{thread_id}/erase",
                     "/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}", "/v1/threads/{thread_id}/events",
                     "/v1/threads/{thread_id}/runs/{run_id}/stream", "/v1/threads/{thread_id}/history"):
        assert expected in paths
    assert len(ROUTES) >= 30


# --- a stack of its own, with objects of every kind ----------------------------------------------------------


class Db:
    """One connection kept open, for a cheap query around every example."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(asyncpg.connect(url))

    def value(self, query: str, *args: Any) -> Any:
        return self.loop.run_until_complete(self.conn.fetchval(query, *args))

    def row(self, query: str, *args: Any) -> Any:
        return self.loop.run_until_complete(self.conn.fetchrow(query, *args))

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


@dataclass
class Fuzz:
    stack: Stack
    db: Db
    ids: dict[str, str]  # path parameter -> a valid id, for routes that need an existing run
    every_id: list[str]
    refused_request_ids: list[str] = field(default_factory=list)
    succeeded: set[uuid.UUID] = field(default_factory=set)  # correlation ids of requests answered 2xx
    position: int = 0  # the log's position up to which events were looked at


@pytest.fixture(scope="module")
def fuzz(infra: Infra) -> Iterator[Fuzz]:
    # No rate limit (the fuzz is a burst); a short read-your-writes bound (the last test may stop the projector).
    stack = infra.new_stack("fuzz", extra_env={"THREADLOG_RATE_LIMIT_PER_S": "0",
                                               "THREADLOG_CONSISTENCY_WAIT_MS": "1500"})
    stack.start()
    db = Db(stack.env["DATABASE_URL"])
    try:
        client = sdk(stack, stack.api_key)
        assistant = client.beta.assistants.create(model=MODEL, tools=[TOOL])
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                       poll_interval_ms=50)
        assert wait_ended(client, thread.id, run.id, 10).status == "completed"
        [step] = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
        [message] = client.beta.threads.messages.list(thread.id, order="asc", limit=1).data
        ids = {"assistant_id": assistant.id, "thread_id": thread.id, "run_id": run.id, "step_id": step.id,
               "message_id": message.id}
        ids.update(other_api_ids(stack))
        world = Fuzz(stack, db, ids, sorted(set(ids.values())))
        world.succeeded.update(appended_since(world))
        yield world
    finally:
        db.close()
        stack.stop()


def other_api_ids(stack: Stack) -> dict[str, str]:
    """Valid ids of the Responses-style resources, where this gateway serves them (best effort)."""
    out: dict[str, str] = {}
    conversation = send(stack, "POST", "/conversations", key=stack.api_key, body=json.dumps(
        {"items": [{"type": "message", "role": "user", "content": "hello"}]}).encode())
    if conversation.status == 200:
        out["conversation_id"] = conversation.json()["id"]
        items = send(stack, "GET", f"/conversations/{out['conversation_id']}/items", key=stack.api_key)
        if items.status == 200 and items.json().get("data"):
            out["item_id"] = items.json()["data"][0]["id"]
    response = send(stack, "POST", "/responses", key=stack.api_key,
                    body=json.dumps({"model": MODEL, "input": "hello"}).encode())
    if response.status == 200:
        out["response_id"] = response.json()["id"]
    return out


@pytest.fixture
def fresh(fuzz: Fuzz) -> dict[str, str]:
    """Objects a destructive route may delete, erase or lock: new for each route, so others keep theirs."""
    client = sdk(fuzz.stack, fuzz.stack.api_key)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    [message] = client.beta.threads.messages.list(thread.id).data
    objects = {"assistant_id": client.beta.assistants.create(model=MODEL, tools=[TOOL]).id, "thread_id": thread.id,
               "message_id": message.id}
    fuzz.succeeded.update(appended_since(fuzz))  # these requests' events are no refused request's
    return objects


# --- strategies ----------------------------------------------------------------------------------------------

FIELDS = ["role", "content", "metadata", "messages", "tool_resources", "attachments", "assistant_id", "model",
          "instructions", "additional_instructions", "additional_messages", "tools", "tool_choice", "stream",
          "temperature", "top_p", "max_prompt_tokens", "max_completion_tokens", "truncation_strategy",
          "response_format", "parallel_tool_calls", "tool_outputs", "tool_call_id", "output", "name",
          "description", "thread", "type", "text", "image_url", "url", "detail", "function", "parameters",
          "reasoning_effort", "last_messages", "input", "items", "conversation", "previous_response_id",
          "background", "store", "include", "id", "object", "file_ids", "code_interpreter"]
WORDS = ["user", "assistant", "system", "auto", "none", "required", "function", "text", "image_url",
         "image_file", "last_messages", "json_object", "json_schema", "message", "code_interpreter",
         "file_search", "get_weather", MODEL, "", "call get_weather {}", "x" * 600]
HUGE = [2**31, 2**63, -(2**63) - 1, 10**30, -1, 0, 1.5, 1e308, -0.0]
TIME_PARAMS = {"created_after", "created_before", "start_time", "end_time"}
QUERY_KEYS = ["limit", "order", "after", "before", "metadata[user_id]", "metadata[]", "include[]", "as_of",
              "as_of_position", "run_id", "group_by", "start_time", "end_time", "created_after",
              "created_before", "stream", "starting_after", "unknown"]
QUERY_VALUES = ["0", "1", "20", "100", "101", "-1", "1e2", "ten", "", "asc", "desc", "sideways", "thread",
                "assistant", "day", "nan", "inf", "9" * 40, "1.5", "true", "1.0", "x.y", "%00", "🙂",
                str(2**63 - 1), str(-(2**63)), "step_details.tool_calls[*].file_search.results[*].content"]
BAD_BYTES = [b"{", b"[", b'{"a":', b"NaN", b'{"metadata": NaN}', b"\xff\xfe{}", b'{"content": "\\ud800"}',
             b'{"limit": 1e400}', b"9" * 5000, b"[" * 2000 + b"]" * 2000, b'{"a": 1, "a": 2}', b"null",
             b'"string"', b"true", b"\x00", b'{"role": "user", "content": "hi"} trailing']

NUL = "\x00"


def text(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    return st.text(st.characters(exclude_categories=["Cs"]), min_size=min_size,
                   max_size=max_size)


def json_values(ids: list[str]) -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                       st.floats(allow_nan=False, allow_infinity=False), text(),
                       st.sampled_from(WORDS + ids), st.sampled_from(HUGE))
    keys = st.sampled_from(FIELDS) | text(max_size=8)
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                        max_leaves=10)


def bodies(ids: list[str]) -> st.SearchStrategy[bytes]:
    values = json_values(ids)
    objects = st.dictionaries(st.sampled_from(FIELDS) | text(max_size=10), values, max_size=6)
    return st.one_of(
        objects.map(lambda o: json.dumps(o).encode()),
        objects.map(lambda o: json.dumps(o).encode()),
        values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=64),
        st.sampled_from(BAD_BYTES),
        st.just(b""),
    )


def queries(ids: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    pair = st.tuples(st.sampled_from(QUERY_KEYS) | text(min_size=1, max_size=8),
                     st.sampled_from(QUERY_VALUES + ids) | text(max_size=12))
    return st.lists(pair, max_size=4)


def path_ids(valid: str | None, every: list[str]) -> st.SearchStrategy[str]:
    known = ["thread_doesnotexist", "asst_doesnotexist", "run_doesnotexist", "msg_doesnotexist", "x", "..",
             "%2F", "thread_" + "a" * 300, "' OR 1=1 --", "🙂", "null", "0", "%00"]
    choices = st.sampled_from(known + every) | text(min_size=1, max_size=24)
    return st.one_of(st.just(valid), choices) if valid else choices


def headers_for(method: str) -> st.SearchStrategy[dict[str, str]]:
    ascii_text = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
    optional = st.fixed_dictionaries({}, optional={
        "Idempotency-Key": ascii_text,
        "Last-Event-ID": st.sampled_from(["1.0", "0.0", "abc", "-1.-1", "99999999999999999999.1"]) | ascii_text,
        "Content-Type": st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "application/json"]),
    })
    return optional if method != "GET" else optional.map(lambda h: {k: v for k, v in h.items() if k != "Content-Type"})


# --- the fuzz -------------------------------------------------------------------------------------------------


def appended_since(fuzz: Fuzz) -> set[uuid.UUID]:
    """Correlation ids of the events appended since the last call (requests' events carry their request id;
    the run-worker's carry none)."""
    row = fuzz.db.row("SELECT coalesce(max(position), $1), array_agg(DISTINCT correlation_id) FILTER"
                      " (WHERE correlation_id IS NOT NULL) FROM events WHERE position > $1", fuzz.position)
    fuzz.position = row[0]
    return set(row[1] or [])


def check_reply(fuzz: Fuzz, what: str, reply: Reply) -> None:
    assert reply.status < 500, f"{what}: {reply.status} {reply.body[:500]!r}"
    # A successful request may go on appending after it answered (a stream): its ids are legitimate.
    appended = appended_since(fuzz)
    if reply.status < 400:
        fuzz.succeeded.update(appended)
        if not reply.streamed:
            json.loads(reply.body)  # a success is JSON too
        return
    try:
        body = json.loads(reply.body)
    except ValueError:
        raise AssertionError(f"{what}: a {reply.status} whose body is not JSON: {reply.body[:300]!r}") from None
    check_error_body(body)
    written = appended - fuzz.succeeded
    assert not written, f"{what}: answered {reply.status}, yet events of request(s) {written} were appended"
    if reply.request_id:
        fuzz.refused_request_ids.append(reply.request_id)


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(data=st.data())
def test_malformed_input_never_breaks_an_endpoint(fuzz: Fuzz, fresh: dict[str, str], method: str, template: str,
                                                  data: st.DataObject) -> None:
    names = PARAM.findall(template)
    # Routes under an existing run use the module's run; the others get this route's fresh objects.
    valid = fuzz.ids if "run_id" in names or "conversation_id" in names or "response_id" in names \
        else {**fuzz.ids, **fresh}
    path = template.removeprefix("/v1")
    for name in names:
        value = data.draw(path_ids(valid.get(name), fuzz.every_id), label=name)
        path = path.replace("{" + name + "}", urllib.parse.quote(value, safe=""))
    body = data.draw(bodies(fuzz.every_id) if method != "GET" else st.none() | bodies(fuzz.every_id), label="body")
    params = data.draw(queries(fuzz.every_id), label="query")
    headers = data.draw(headers_for(method), label="headers")

    reply = send(fuzz.stack, method, path, key=fuzz.stack.api_key, body=body, params=params,
                 headers={"Accept": "text/event-stream", **headers})
    check_reply(fuzz, f"{method} {path}?{urllib.parse.urlencode(params)} body={(body or b'')[:200]!r}", reply)


def test_refused_requests_have_no_events(fuzz: Fuzz) -> None:
    """Over the whole fuzz: no event carries the request id of a request that was answered with an error."""
    ids = sorted(set(fuzz.refused_request_ids))
    found = fuzz.db.value("SELECT count(*) FROM events WHERE correlation_id = ANY($1::uuid[])", ids)
    assert found == 0


def test_unknown_methods_and_paths_are_openai_errors(fuzz: Fuzz) -> None:
    for _, template in ROUTES:
        path = PARAM.sub("x", template).removeprefix("/v1")
        for method in ("PUT", "PATCH"):
            reply = send(fuzz.stack, method, path, key=fuzz.stack.api_key, body=b"{}")
            assert reply.status == 405, (method, path, reply.status)
            assert check_error_body(reply.json())["code"] == "method_not_allowed"
    for path in ("/nope", "/threads/x/y/z/w", "/assistants/x/runs", ""):
        reply = send(fuzz.stack, "GET", path, key=fuzz.stack.api_key)
        assert reply.status == 404, (path, reply.status)
        check_error_body(reply.json())


def test_error_responses_carry_a_request_id(fuzz: Fuzz) -> None:
    for method, path, key, body in (("GET", "/threads/thread_doesnotexist", fuzz.stack.api_key, None),
                                    ("POST", "/threads", fuzz.stack.api_key, b"{not json"),
                                    ("GET", "/threads", "tl-wrong", None)):
        reply = send(fuzz.stack, method, path, key=key, body=body)
        assert reply.status >= 400
        assert re.fullmatch(r"[0-9a-f-]{36}", reply.request_id), (method, path, reply.headers)


def test_nul_in_ids_and_queries_is_a_client_error(fuzz: Fuzz) -> None:
    thread_id = fuzz.ids["thread_id"]
    for method, path, params in (("GET", "/threads/%00", None), ("POST", "/assistants/%00", None),
                                 ("GET", f"/threads/{thread_id}/runs/%00/steps", None),
                                 ("GET", "/threads", [("after", NUL)]), ("GET", "/assistants", [("after", NUL)]),
                                 ("GET", "/threads", [("metadata[user_id]", NUL)]),
                                 ("GET", f"/threads/{thread_id}/messages", [("run_id", NUL)]),
                                 ("GET", f"/threads/{thread_id}/history", [("after", NUL)])):
        reply = send(fuzz.stack, method, path, key=fuzz.stack.api_key, params=params, body=b"{}")
        assert 400 <= reply.status < 500, (method, path, params, reply.status)
        check_error_body(reply.json())


def test_out_of_range_times_are_client_errors(fuzz: Fuzz) -> None:
    for path, name in (("/threads", "created_after"), ("/threads", "created_before"), ("/usage", "start_time"),
                       ("/usage", "end_time")):
        for value in (str(2**63), "9" * 40, str(-(2**63) - 1)):
            reply = send(fuzz.stack, "GET", path, key=fuzz.stack.api_key, params=[(name, value)])
            assert reply.status == 400, (path, name, value, reply.status)
            assert check_error_body(reply.json())["param"] == name


def test_nul_in_stored_text_does_not_wedge_the_log(fuzz: Fuzz) -> None:
    """KEEP THIS TEST LAST in the module: while the bug lasts, it stops the fuzz stack's read models for good."""
    stack = fuzz.stack
    client = sdk(stack, stack.api_key)
    thread = client.beta.threads.create()
    reply = send(stack, "POST", f"/threads/{thread.id}/messages", key=stack.api_key,
                 body=json.dumps({"role": "user", "content": f"a{NUL}b"}).encode())
    if reply.status < 400:  # accepted: then it must be readable, and the service must go on
        message_id = reply.json()["id"]
        assert [m.id for m in client.beta.threads.messages.list(thread.id).data] == [message_id]
    else:  # refused: as any client error
        check_error_body(reply.json())
    later = client.beta.threads.create()
    assert client.beta.threads.retrieve(later.id).id == later.id
