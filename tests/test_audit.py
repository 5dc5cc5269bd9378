"""The audit trail: `threadlog audit verify|head|export`, the history endpoint, as-of reads, and erasure.

A stack of its own builds a log through the official SDK. Tampering happens in a copy of that log (a database of
its own per test, rows copied byte for byte), so every tampering test is independent of the others.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import nats
import openai
import pytest

from services.projector.projections import READ_MODEL_TABLES
from shared.apikeys import ensure_key
from shared.bus import Subjects
from shared.chain import event_hash, link, payload_hash
from threadlog.stack import Stack

from .infra import Infra
from .rawhttp import Http
from .runs_helpers import fetch, message_text, sdk, wait_for
from .test_replay import CALL_WEATHER, WEATHER_TOOL, assert_identical, threadlog, wait_at_head

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks the Assistants API so
OTHER_PROJECT = "proj_audit_other"
EXPORT_KEYS = {"position", "stream_id", "stream_version", "event_id", "type", "schema_version", "recorded_at",
               "correlation_id", "causation_id", "tenant_id", "redacted", "payload"}
PROBLEM = re.compile(r"^PROBLEM (\w+) at position (\d+) \(chain seq (\d+)\): ")
EVENT_COLUMNS = ["position", "txid", "stream_id", "stream_version", "event_id", "event_type", "schema_version",
                 "tenant_id", "payload", "recorded_at", "correlation_id", "causation_id", "redacted"]


# --- helpers -------------------------------------------------------------------------------------------------


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def problems(stdout: str) -> list[tuple[str, int]]:
    """(kind, position) of every PROBLEM line `audit verify` printed."""
    return [(m[1], int(m[2])) for line in stdout.splitlines() if (m := PROBLEM.match(line))]


def export(database_url: str, *filters: str) -> list[dict[str, Any]]:
    result = threadlog(database_url, "audit", "export", *filters)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert f"audit export: {len(lines):,} events" in result.stderr
    return lines


def stored(database_url: str, where: str = "TRUE", *args: Any) -> list[dict[str, Any]]:
    """Events straight from the table, in log order, payloads decoded."""
    rows = fetch(database_url, f"SELECT position, stream_id, stream_version, event_id, event_type, schema_version,"
                               f" recorded_at, tenant_id, redacted, payload FROM events WHERE {where}"
                               f" ORDER BY position", *args)
    return [{**dict(r), "payload": msgspec.json.decode(bytes(r["payload"]))} for r in rows]


def nats_count(stack: Stack, stream: str, subject: str) -> int:
    """How many messages JetStream keeps on `subject` (a wildcard) in `stream`."""

    async def go() -> int:
        nc = await nats.connect(stack.env["NATS_URL"])
        try:
            info = await nc.jetstream().stream_info(stream, subjects_filter=subject)
            return sum((info.state.subjects or {}).values())
        finally:
            await nc.close()

    return asyncio.run(go())


def relay_at_head(database_url: str) -> bool:
    return bool(fetch(database_url, "SELECT (SELECT (txid, position) FROM checkpoints WHERE name = 'relay')"
                                    " = (SELECT (txid, position) FROM events ORDER BY txid DESC, position DESC"
                                    " LIMIT 1)")[0][0])


async def _clone(source_url: str, target_url: str) -> None:
    """The log, its chain and the checkpoints, copied byte for byte in one snapshot of the source."""
    src, dst = await asyncpg.connect(source_url), await asyncpg.connect(target_url)
    try:
        async with src.transaction(isolation="repeatable_read", readonly=True):
            for table, columns in (("events", EVENT_COLUMNS),
                                   ("event_chain", ["seq", "position", "payload_hash", "chain_hash"]),
                                   ("checkpoints", ["name", "txid", "position", "updated_at"])):
                buffer = io.BytesIO()
                await src.copy_from_table(table, columns=columns, output=buffer, format="binary")
                buffer.seek(0)
                await dst.copy_to_table(table, columns=columns, source=buffer, format="binary")
    finally:
        await src.close()
        await dst.close()


async def _tamper(database_url: str, *statements: tuple[str, tuple[Any, ...]]) -> None:
    """A maintenance session that lifts the log's immutability trigger (as an attacker with DB access would)."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL threadlog.allow_rewrite = 'on'")
            for sql, args in statements:
                status = await conn.execute(sql, *args)
                assert status.endswith(" 1"), (sql, status)
    finally:
        await conn.close()


def tamper(database_url: str, sql: str, *args: Any) -> None:
    asyncio.run(_tamper(database_url, (sql, args)))


# --- the stack and the log -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def astack(infra: Infra) -> Iterator[Stack]:
    stack = infra.new_stack("audit")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def db(astack: Stack) -> str:
    return astack.env["DATABASE_URL"]


@pytest.fixture(scope="module")
def client(astack: Stack) -> openai.OpenAI:
    return sdk(astack)


@pytest.fixture(scope="module")
def http(astack: Stack) -> Http:
    return Http(astack.base_url, astack.api_key)


@pytest.fixture(scope="module")
def other_client(astack: Stack, db: str) -> openai.OpenAI:
    """A key of another project (tenant)."""
    key = "tl-test-other-" + uuid.uuid4().hex[:12]

    async def create() -> None:
        conn = await asyncpg.connect(db)
        try:
            await ensure_key(conn, key, OTHER_PROJECT)
        finally:
            await conn.close()

    asyncio.run(create())
    return openai.OpenAI(base_url=astack.base_url, api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def weather_assistant(client: openai.OpenAI) -> str:
    return client.beta.assistants.create(model="gpt-4o-mini", instructions="Use the tools.", tools=[WEATHER_TOOL]).id


@dataclass
class Log:
    thread: str  # messages, metadata edits, a deleted message, a plain run and a tool run
    tool_run: str
    plain_run: str
    other_thread: str  # in the other project
    gap: int  # a position never used (inside the sealed range)
    text: str  # a unique text in `thread`


def tool_round_trip(client: openai.OpenAI, thread_id: str, assistant_id: str, output: str,
                    **run_options: Any) -> str:
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id,
                                                   poll_interval_ms=50, **run_options)
    assert run.status == "requires_action" and run.required_action is not None, run
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread_id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": output}],
        poll_interval_ms=50)
    assert run.status == "completed", run
    return run.id


@pytest.fixture(scope="module")
def log(client: openai.OpenAI, other_client: openai.OpenAI, weather_assistant: str, db: str) -> Log:
    text = unique("hello")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}], metadata={"user": "u1"})
    client.beta.threads.update(thread.id, metadata={"user": "u1", "stage": "2"})
    note = client.beta.threads.messages.create(thread.id, role="user", content="a note", metadata={"k": "1"})
    client.beta.threads.messages.update(note.id, thread_id=thread.id, metadata={"k": "2"})
    # A position drawn and never used, as a rolled-back append leaves: room for a forged event inside the range.
    gap = fetch(db, "SELECT nextval(pg_get_serial_sequence('events', 'position'))")[0][0]
    gone = client.beta.threads.messages.create(thread.id, role="user", content="to be deleted")
    client.beta.threads.messages.delete(gone.id, thread_id=thread.id)
    client.beta.threads.messages.create(thread.id, role="user", content=CALL_WEATHER)
    tool_run = tool_round_trip(client, thread.id, weather_assistant, "sunny")
    client.beta.threads.messages.create(thread.id, role="user", content="say 4 words")
    plain = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=weather_assistant,
                                                     poll_interval_ms=50)
    assert plain.status == "completed", plain
    other = other_client.beta.threads.create(messages=[{"role": "user", "content": "another project"}])
    wait_at_head(db)
    return Log(thread.id, tool_run, plain.id, other.id, gap, text)


@pytest.fixture
def copy_of_log(log: Log, infra: Infra, db: str) -> str:
    """A database of this test's own holding the stack's log, chain and checkpoints exactly as they are."""
    wait_at_head(db)
    target = infra.new_database()
    asyncio.run(_clone(db, target))
    return target


# --- verify --------------------------------------------------------------------------------------------------


def test_verify_ok(log: Log, db: str) -> None:
    result = threadlog(db, "audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    count = fetch(db, "SELECT count(*) FROM events")[0][0]
    assert problems(result.stdout) == []
    assert re.search(rf"audit verify: {count:,} events checked, head {count}:[0-9a-f]{{64}}, OK$", result.stdout), \
        result.stdout


def one_position(database_url: str, thread_id: str, event_type: str) -> int:
    return fetch(database_url, "SELECT min(position) FROM events WHERE stream_id = $1 AND event_type = $2",
                 thread_id, event_type)[0][0]


def test_changed_payload_byte_is_named(log: Log, copy_of_log: str) -> None:
    position = one_position(copy_of_log, log.thread, "thread.message.created")
    payload = bytearray(fetch(copy_of_log, "SELECT payload FROM events WHERE position = $1", position)[0][0])
    at = payload.index(log.text.encode())
    payload[at] ^= 0x01  # one byte, one bit: 'h' -> 'i'
    tamper(copy_of_log, "UPDATE events SET payload = $2 WHERE position = $1", position, bytes(payload))

    result = threadlog(copy_of_log, "audit", "verify")
    assert result.returncode == 1, result.stdout
    assert problems(result.stdout) == [("payload_changed", position)], result.stdout
    assert result.stdout.rstrip().endswith("1 problem(s)")


@pytest.mark.parametrize(("column", "change"), [
    ("recorded_at", "recorded_at = recorded_at + interval '1 second'"),
    ("stream_id", "stream_id = 'thread_forged'"),
])
def test_changed_envelope_is_named(log: Log, copy_of_log: str, column: str, change: str) -> None:
    position = one_position(copy_of_log, log.thread, "thread.message.modified")
    tamper(copy_of_log, f"UPDATE events SET {change} WHERE position = $1", position)

    result = threadlog(copy_of_log, "audit", "verify")
    assert result.returncode == 1, result.stdout
    assert problems(result.stdout) == [("envelope_changed", position)], (column, result.stdout)


def test_deleted_event_is_named(log: Log, copy_of_log: str) -> None:
    position = one_position(copy_of_log, log.thread, "thread.message.deleted")
    tamper(copy_of_log, "DELETE FROM events WHERE position = $1", position)

    result = threadlog(copy_of_log, "audit", "verify")
    assert result.returncode == 1, result.stdout
    assert problems(result.stdout) == [("event_missing", position)], result.stdout


def test_event_inserted_into_the_sealed_range_is_named(log: Log, copy_of_log: str) -> None:
    """A forged event at an unused position between sealed events, as if written back then."""
    before = fetch(copy_of_log, "SELECT * FROM events WHERE position < $1 ORDER BY position DESC LIMIT 1", log.gap)[0]
    sealed = fetch(copy_of_log, "SELECT txid, position FROM checkpoints WHERE name = 'audit_chain'")[0]
    assert fetch(copy_of_log, "SELECT count(*) FROM events WHERE position = $1", log.gap)[0][0] == 0
    assert (before["txid"], log.gap) < (sealed[0], sealed[1])
    version = fetch(copy_of_log, "SELECT max(stream_version) + 1 FROM events WHERE stream_id = $1", log.thread)[0][0]
    forged = msgspec.json.encode({"type": "thread.message.created", "thread_id": log.thread,
                                  "message_id": "msg_forged", "created_at": 1, "role": "user",
                                  "content": [{"type": "text", "text": {"value": "I agree", "annotations": []}}]})
    tamper(copy_of_log,
           "INSERT INTO events (position, txid, stream_id, stream_version, event_id, event_type, schema_version,"
           " tenant_id, payload, recorded_at) OVERRIDING SYSTEM VALUE"
           " VALUES ($1, $2, $3, $4, $5, 'thread.message.created', 1, $6, $7, $8)",
           log.gap, before["txid"], log.thread, version, uuid.uuid4(), before["tenant_id"], forged,
           before["recorded_at"])

    result = threadlog(copy_of_log, "audit", "verify")
    assert result.returncode == 1, result.stdout
    assert problems(result.stdout) == [("unsealed_event", log.gap)], result.stdout


async def _rewrite_history(database_url: str, position: int) -> None:
    """What an attacker with write access does to hide an edit: change a payload, then recompute the whole chain
    from that event on, so it is self-consistent again."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL threadlog.allow_rewrite = 'on'")
            payload = bytes(await conn.fetchval("SELECT payload FROM events WHERE position = $1", position))
            await conn.execute("UPDATE events SET payload = $2 WHERE position = $1", position,
                               payload.replace(b"a note", b"a NOTE"))
            seq = await conn.fetchval("SELECT seq FROM event_chain WHERE position = $1", position)
            previous = bytes(await conn.fetchval("SELECT chain_hash FROM event_chain WHERE seq = $1", seq - 1))
            rows = await conn.fetch("SELECT c.seq, e.* FROM event_chain c JOIN events e ON e.position = c.position"
                                    " WHERE c.seq >= $1 ORDER BY c.seq", seq)
            for row in rows:
                digest = payload_hash(bytes(row["payload"]))
                previous = link(previous, event_hash(row, digest))
                await conn.execute("UPDATE event_chain SET payload_hash = $2, chain_hash = $3 WHERE seq = $1",
                                   row["seq"], digest, previous)
    finally:
        await conn.close()


def test_expect_head_detects_a_rewritten_chain(log: Log, copy_of_log: str) -> None:
    head = threadlog(copy_of_log, "audit", "head")
    assert head.returncode == 0, head.stderr
    recorded = head.stdout.strip()
    count = fetch(copy_of_log, "SELECT count(*) FROM events")[0][0]
    assert re.fullmatch(rf"{count}:[0-9a-f]{{64}}", recorded), recorded
    ok = threadlog(copy_of_log, "audit", "verify", "--expect-head", recorded)
    assert ok.returncode == 0 and ok.stdout.rstrip().endswith("OK"), ok.stdout

    position = fetch(copy_of_log, "SELECT position FROM events WHERE stream_id = $1 AND event_type ="
                                  " 'thread.message.created' AND convert_from(payload, 'UTF8') LIKE '%a note%'",
                     log.thread)[0][0]
    asyncio.run(_rewrite_history(copy_of_log, position))
    # The forged chain is consistent with itself: only a head kept outside the database tells.
    plain = threadlog(copy_of_log, "audit", "verify")
    assert plain.returncode == 0, plain.stdout
    assert threadlog(copy_of_log, "audit", "head").stdout.strip() != recorded
    checked = threadlog(copy_of_log, "audit", "verify", "--expect-head", recorded)
    assert checked.returncode == 1, checked.stdout
    assert [kind for kind, _ in problems(checked.stdout)] == ["head_mismatch"], checked.stdout
    seq = recorded.split(":")[0]
    assert f"chain seq {seq}" in checked.stdout


def test_changed_chain_hash_is_detected(log: Log, copy_of_log: str) -> None:
    recorded = threadlog(copy_of_log, "audit", "head").stdout.strip()
    seq = int(recorded.split(":")[0])
    position = fetch(copy_of_log, "SELECT position FROM event_chain WHERE seq = $1", seq)[0][0]
    fetch(copy_of_log, "UPDATE event_chain SET chain_hash = $2 WHERE seq = $1", seq, bytes(32))
    result = threadlog(copy_of_log, "audit", "verify", "--expect-head", recorded)
    assert result.returncode == 1, result.stdout
    assert sorted(problems(result.stdout)) == [("envelope_changed", position), ("head_mismatch", 0)], result.stdout


# --- export --------------------------------------------------------------------------------------------------


def check_lines(lines: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Export lines equal the stored events (same events, log order, same envelope and payload)."""
    assert [line["position"] for line in lines] == [e["position"] for e in expected]
    for line, event in zip(lines, expected, strict=True):
        assert set(line) == EXPORT_KEYS, set(line) ^ EXPORT_KEYS
        assert (line["stream_id"], line["stream_version"], line["type"], line["schema_version"],
                line["tenant_id"], line["redacted"]) == (event["stream_id"], event["stream_version"],
                                                         event["event_type"], event["schema_version"],
                                                         event["tenant_id"], event["redacted"])
        assert uuid.UUID(line["event_id"]) == event["event_id"]
        assert line["recorded_at"] == event["recorded_at"].isoformat()
        assert line["payload"] == event["payload"]
        for key in ("correlation_id", "causation_id"):
            assert line[key] is None or uuid.UUID(line[key])


def test_export_by_thread(log: Log, db: str) -> None:
    lines = export(db, "--thread", log.thread)
    expected = stored(db, "stream_id = $1", log.thread)
    check_lines(lines, expected)
    assert {line["stream_id"] for line in lines} == {log.thread}
    assert [line["stream_version"] for line in lines] == list(range(1, len(lines) + 1))
    assert {"thread.created", "thread.modified", "thread.message.modified", "thread.message.deleted",
            "thread.run.requires_action", "thread.run.tool_outputs_submitted"} <= {line["type"] for line in lines}
    assert all(line["correlation_id"] for line in lines if line["type"] == "thread.created")


def test_export_by_run(log: Log, db: str) -> None:
    lines = export(db, "--run", log.tool_run)
    mine = [e for e in stored(db, "stream_id = $1", log.thread) if e["payload"].get("run_id") == log.tool_run]
    check_lines(lines, mine)
    assert {line["payload"]["run_id"] for line in lines} == {log.tool_run}
    assert {"thread.run.created", "thread.run.in_progress", "thread.run.requires_action",
            "thread.run.tool_outputs_submitted", "thread.run.completed"} <= {line["type"] for line in lines}
    # The other run of the same thread is not in it.
    assert log.plain_run not in json.dumps(lines)


def test_export_by_tenant(log: Log, db: str) -> None:
    other = export(db, "--tenant", OTHER_PROJECT)
    check_lines(other, stored(db, "tenant_id = $1", OTHER_PROJECT))
    assert {line["stream_id"] for line in other} == {log.other_thread}
    tenant = fetch(db, "SELECT tenant_id FROM events WHERE stream_id = $1 LIMIT 1", log.thread)[0][0]
    mine = export(db, "--tenant", tenant, "--thread", log.thread)
    check_lines(mine, stored(db, "stream_id = $1", log.thread))


def test_export_by_time_range(log: Log, db: str, tmp_path: Any) -> None:
    times = sorted({e["recorded_at"] for e in stored(db, "stream_id = $1", log.thread)})
    assert len(times) >= 6
    since, until = times[2], times[-3]
    lines = export(db, "--since", since.isoformat(), "--until", until.isoformat())
    expected = stored(db, "recorded_at >= $1 AND recorded_at < $2", since, until)
    check_lines(lines, expected)
    assert lines and all(since <= datetime.fromisoformat(line["recorded_at"]) < until for line in lines)
    # Filters combine; --output writes the same lines to a file.
    out = tmp_path / "export.jsonl"
    result = threadlog(db, "audit", "export", "--thread", log.thread, "--since", since.isoformat(),
                       "--until", (until + timedelta(microseconds=1)).isoformat(), "--output", str(out))
    assert result.returncode == 0 and result.stdout == "", result.stderr
    written = [json.loads(line) for line in out.read_text().splitlines()]
    check_lines(written, stored(db, "stream_id = $1 AND recorded_at >= $2 AND recorded_at <= $3",
                                log.thread, since, until))


# --- the history endpoint ------------------------------------------------------------------------------------


def pages(http: Http, thread_id: str, **params: Any) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    after = None
    while True:
        response = http.get(f"/threads/{thread_id}/history", params={**params, **({"after": after} if after else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "list"
        out.append(body["data"])
        if not body["has_more"]:
            return out
        assert body["last_id"] == body["data"][-1]["id"]
        after = body["last_id"]


def test_history_pages_through_a_threads_events(log: Log, http: Http, db: str) -> None:
    expected = stored(db, "stream_id = $1", log.thread)
    assert len(expected) > 10
    asc = pages(http, log.thread, limit=4)
    assert [len(p) for p in asc[:-1]] == [4] * (len(asc) - 1) and 1 <= len(asc[-1]) <= 4
    items = [item for page in asc for item in page]
    assert [i["id"] for i in items] == [str(e["event_id"]) for e in expected]
    for item, event in zip(items, expected, strict=True):
        assert item["object"] == "thread.event"
        assert (item["position"], item["stream_version"], item["type"]) == (event["position"],
                                                                            event["stream_version"],
                                                                            event["event_type"])
        assert item["data"] == event["payload"]
    desc = pages(http, log.thread, limit=5, order="desc")
    assert [i["id"] for page in desc for i in page] == [i["id"] for i in reversed(items)]
    # A cursor from the middle: exactly what follows it.
    middle = items[5]["id"]
    body = http.get(f"/threads/{log.thread}/history", params={"after": middle, "limit": 3}).json()
    assert [i["id"] for i in body["data"]] == [i["id"] for i in items[6:9]]


def test_history_of_unknown_or_foreign_thread_is_404(log: Log, http: Http) -> None:
    for thread_id in ("thread_doesnotexist", log.other_thread):
        response = http.get(f"/threads/{thread_id}/history")
        assert response.status_code == 404, response.text
        assert response.json()["error"]["type"] == "invalid_request_error"


# --- as-of reads ---------------------------------------------------------------------------------------------


def listed(client: openai.OpenAI, thread_id: str, **as_of: Any) -> dict[str, tuple[str, dict[str, str]]]:
    page = client.beta.threads.messages.list(thread_id, order="asc", limit=100, extra_query=as_of or None)
    return {m.id: (message_text(m), dict(m.metadata or {})) for m in page.data}


def test_messages_as_of_a_position_or_a_time(client: openai.OpenAI, http: Http) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "one", "metadata": {"v": "1"}}])
    first = client.beta.threads.messages.list(thread.id).data[0].id
    second = client.beta.threads.messages.create(thread.id, role="user", content="two").id
    history = [i for page in pages(http, thread.id, limit=100) for i in page]
    phase_one_position = history[-1]["position"]
    as_of_time = math.ceil(history[-1]["recorded_at"])
    while time.time() <= as_of_time + 0.05:  # phase two is recorded strictly after `as_of_time`
        time.sleep(0.05)

    client.beta.threads.messages.update(first, thread_id=thread.id, metadata={"v": "2"})
    client.beta.threads.messages.delete(second, thread_id=thread.id)
    third = client.beta.threads.messages.create(thread.id, role="user", content="three").id
    history = [i for page in pages(http, thread.id, limit=100) for i in page]
    modified_at = next(i["position"] for i in history if i["type"] == "thread.message.modified")

    then = {first: ("one", {"v": "1"}), second: ("two", {})}
    assert listed(client, thread.id, as_of_position=phase_one_position) == then
    assert listed(client, thread.id, as_of=as_of_time) == then
    assert listed(client, thread.id, as_of_position=modified_at) == {first: ("one", {"v": "2"}), second: ("two", {})}
    now = {first: ("one", {"v": "2"}), third: ("three", {})}
    assert listed(client, thread.id) == now
    assert listed(client, thread.id, as_of=int(time.time()) + 1) == now
    assert listed(client, thread.id, as_of_position=history[-1]["position"]) == now
    assert history[0]["type"] == "thread.created" and history[1]["type"] == "thread.message.created"
    assert listed(client, thread.id, as_of_position=history[0]["position"]) == {}
    assert list(listed(client, thread.id, as_of_position=history[1]["position"])) == [first]
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.list(thread.id, extra_query={"as_of_position": "yesterday"})


# --- erasure -------------------------------------------------------------------------------------------------


def test_erasure(astack: Stack, client: openai.OpenAI, http: Http, db: str, weather_assistant: str) -> None:
    secret = {k: unique(k) for k in ("text", "meta", "note", "city", "output", "instructions", "kept")}
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"my secret is {secret['text']}"}],
                                        metadata={"owner": secret["meta"]})
    note = client.beta.threads.messages.create(thread.id, role="user", content="note", metadata={"n": "1"})
    client.beta.threads.messages.update(note.id, thread_id=thread.id, metadata={"n": secret["note"]})
    ask = "call get_weather " + json.dumps({"city": secret["city"]})
    client.beta.threads.messages.create(thread.id, role="user", content=ask)
    run_id = tool_round_trip(client, thread.id, weather_assistant, secret["output"],
                             instructions=secret["instructions"])
    kept = client.beta.threads.create(messages=[{"role": "user", "content": secret["kept"]}], metadata={"m": "k"})
    kept_before = listed(client, kept.id)

    subjects = Subjects(astack.env["THREADLOG_NATS_PREFIX"])
    on_bus = f"{subjects.prefix}.ev.{thread.id}.>"
    wait_for("the relay to publish the thread's events",
             lambda: nats_count(astack, subjects.events_stream, on_bus) > 0, 10)
    before = export(db, "--thread", thread.id)
    for value in secret.values():
        if value != secret["kept"]:
            assert any(value in json.dumps(line) for line in before), value  # there before erasure

    response = http.post(f"/threads/{thread.id}/erase")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == thread.id and response.json()["object"] == "thread.erased"

    # The thread and everything in it is gone from the API.
    for call in (lambda: client.beta.threads.retrieve(thread.id),
                 lambda: client.beta.threads.messages.list(thread.id),
                 lambda: client.beta.threads.messages.retrieve(note.id, thread_id=thread.id),
                 lambda: client.beta.threads.runs.list(thread.id),
                 lambda: client.beta.threads.runs.retrieve(run_id, thread_id=thread.id),
                 lambda: client.beta.threads.runs.steps.list(run_id, thread_id=thread.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert http.get(f"/threads/{thread.id}/history").status_code == 404
    assert http.get(f"/threads/{thread.id}/messages", params={"as_of_position": 1}).status_code == 404

    # The log keeps what happened and when, not what was said.
    result = threadlog(db, "audit", "export", "--thread", thread.id)
    assert result.returncode == 0, result.stderr
    after = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(a["position"], a["type"], a["recorded_at"]) for a in after[:-1]] == \
        [(b["position"], b["type"], b["recorded_at"]) for b in before]
    assert after[-1]["type"] == "thread.erased" and not after[-1]["redacted"]
    assert all(line["redacted"] for line in after[:-1])
    whole = threadlog(db, "audit", "export")
    assert whole.returncode == 0
    for name, value in secret.items():
        assert value not in result.stdout, name
        assert (value in whole.stdout) == (name == "kept"), name

    # No copy left on the bus, once the relay has published everything (the erasure event included).
    wait_at_head(db)
    wait_for("the relay to reach the head", lambda: relay_at_head(db), 10)
    assert nats_count(astack, subjects.events_stream, on_bus) == 0
    assert nats_count(astack, subjects.deltas_stream, f"{subjects.prefix}.delta.{thread.id}.>") == 0

    # The chain still verifies (it covers the payload hashes taken before the rewrite).
    verified = threadlog(db, "audit", "verify")
    assert verified.returncode == 0 and verified.stdout.rstrip().endswith("OK"), verified.stdout

    # Redacted events still replay: a rebuild from the log equals the live read models.
    assert_identical(threadlog(db, "replay", "--verify", "--no-swap", "--fresh"))

    # Nor do the read models keep any of it.
    for table in READ_MODEL_TABLES:
        for name, value in secret.items():
            found = fetch(db, f"SELECT count(*) FROM {table} t WHERE t::text LIKE '%' || $1 || '%'", value)[0][0]
            assert found == (1 if name == "kept" and table in ("messages", "items") else 0), (table, name, found)

    # Another thread is untouched.
    assert listed(client, kept.id) == kept_before
    assert client.beta.threads.retrieve(kept.id).metadata == {"m": "k"}
    assert not any(line["redacted"] for line in export(db, "--thread", kept.id))


def test_erasure_forgets_idempotent_answers(client: openai.OpenAI, http: Http, db: str) -> None:
    secret = unique("idem")
    thread = client.beta.threads.create()
    key = unique("key")
    create = client.beta.threads.messages.with_raw_response.create
    first = create(thread.id, role="user", content=secret, extra_headers={"Idempotency-Key": key})
    assert secret in first.http_response.text
    assert http.post(f"/threads/{thread.id}/erase").status_code == 200
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread.id)
    kept_bodies = fetch(db, "SELECT count(*) FROM idempotency_keys"
                            " WHERE position(convert_to($1, 'UTF8') IN body) > 0", secret)[0][0]
    # A retry of the very same request (same bytes, same key) must not hand the erased content back.
    try:
        answer = create(thread.id, role="user", content=secret, extra_headers={"Idempotency-Key": key}).http_response
    except openai.APIStatusError as e:
        answer = e.response
    assert secret not in answer.text, (answer.status_code, answer.text)
    assert kept_bodies == 0
