"""`threadlog replay`: the read models rebuilt from the log equal the live ones, a swap under load loses nothing,
an interrupted replay resumes, and old event shapes (upcast on read) replay like current ones.

Every replay runs as the real command (a subprocess pointed at the stack's DATABASE_URL) against a stack of its
own, with the log built through the official SDK.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import openai
import pytest

from services.projector.projections import READ_MODEL_TABLES
from services.projector.rebuild import BATCH
from shared.db import open_pool
from shared.events import (
    CURRENT_SCHEMA,
    EVENT_TYPES,
    Codec,
    MessageCreated,
    RunRequiresAction,
    TextBlock,
    TextValue,
    Usage,
    event_type,
)
from shared.ids import new_event_id
from shared.store import Cursor, EventStore, NewEvent
from shared.upcast import STEPS, EventLoader
from threadlog.stack import Stack

from .infra import Infra
from .runs_helpers import fetch, message_text, sdk

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks the Assistants API so
GOLDEN = Path(__file__).parent / "golden"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROGRESS = re.compile(r"^replay: ([\d,]+)/([\d,]+) events \(([\d.]+)%\), ([\d,]+) events/s, ~([\d.]+)s left$")
REBUILT = re.compile(r"^replay: rebuilt ([\d,]+) events in ([\d.]+)s \(([\d,]+) events/s\)$")
WEATHER_TOOL: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CALL_WEATHER = 'call get_weather {"city": "Paris"}'


# --- helpers -------------------------------------------------------------------------------------------------


def threadlog(database_url: str, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """The `threadlog` command, as an operator runs it (DATABASE_URL names the stack's database)."""
    return subprocess.run([sys.executable, "-m", "threadlog", *args], env=cli_env(database_url), cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout_s)


def cli_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLOG_")}
    env.update(DATABASE_URL=database_url, PYTHONUNBUFFERED="1")
    return env


@dataclass
class Progress:
    done: int
    total: int
    rate: int
    seconds_left: float


def progress_lines(stderr: str) -> list[Progress]:
    out = []
    for line in stderr.splitlines():
        if m := PROGRESS.match(line.strip()):
            out.append(Progress(int(m[1].replace(",", "")), int(m[2].replace(",", "")),
                                int(m[4].replace(",", "")), float(m[5])))
    return out


def rebuilt_count(stderr: str) -> tuple[int, int]:
    """(events rebuilt by this run, its events/s) from the summary line."""
    found = [m for line in stderr.splitlines() if (m := REBUILT.match(line.strip()))]
    assert len(found) == 1, stderr
    return int(found[0][1].replace(",", "")), int(found[0][3].replace(",", ""))


def verdicts(stdout: str) -> dict[str, str]:
    """`verify: <table>: identical` lines as {table: verdict}."""
    return dict(line.removeprefix("verify: ").split(": ", 1) for line in stdout.splitlines()
                if line.startswith("verify: "))


async def _positions(database_url: str) -> tuple[Cursor, Cursor, Cursor]:
    conn = await asyncpg.connect(database_url)
    try:
        last = await conn.fetchrow("SELECT txid, position FROM events ORDER BY txid DESC, position DESC LIMIT 1")
        cps = {r[0]: Cursor(r[1], r[2]) for r in await conn.fetch(
            "SELECT name, txid, position FROM checkpoints WHERE name IN ('read_models', 'audit_chain')")}
        return (Cursor(last[0], last[1]) if last else Cursor(), cps.get("read_models", Cursor()),
                cps.get("audit_chain", Cursor()))
    finally:
        await conn.close()


def wait_at_head(database_url: str, timeout_s: float = 20.0) -> Cursor:
    """Until the projector's checkpoint (`read_models`) and the sealer's (`audit_chain`) are at the log's head."""
    deadline = time.monotonic() + timeout_s
    while True:
        head, projected, sealed = asyncio.run(_positions(database_url))
        if projected == head and sealed == head:
            return head
        assert time.monotonic() < deadline, f"log at {head}, read_models at {projected}, audit_chain at {sealed}"
        time.sleep(0.05)


def assert_identical(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    tables = verdicts(result.stdout)
    assert set(tables) == set(READ_MODEL_TABLES), result.stdout
    assert set(tables.values()) == {"identical"}, result.stdout


def all_messages(client: openai.OpenAI, thread_id: str) -> list[str]:
    return [m.id for m in client.beta.threads.messages.list(thread_id, order="asc", limit=100)]  # SDK pages


# --- the stack and the log -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rstack(infra: Infra) -> Iterator[Stack]:
    stack = infra.new_stack("replay")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def client(rstack: Stack) -> openai.OpenAI:
    return sdk(rstack)


@pytest.fixture(scope="module")
def db(rstack: Stack) -> str:
    return rstack.env["DATABASE_URL"]


@pytest.fixture(scope="module")
def weather_assistant(client: openai.OpenAI) -> str:
    return client.beta.assistants.create(model="gpt-4o-mini", name="weather", instructions="Use the tools.",
                                         tools=[WEATHER_TOOL]).id


@pytest.fixture(scope="module")
def built_log(client: openai.OpenAI, weather_assistant: str, db: str) -> dict[str, str]:
    """A log with every kind of write: assistants, threads, messages, metadata edits, deletes, runs, tool calls."""
    plain = client.beta.assistants.create(model="gpt-4o-mini", name="plain", instructions="Be brief.",
                                          metadata={"team": "a"})
    client.beta.assistants.update(plain.id, instructions="Be very brief.", metadata={"team": "b"})
    doomed = client.beta.assistants.create(model="gpt-4o-mini", name="doomed")
    client.beta.assistants.delete(doomed.id)

    thread = client.beta.threads.create(messages=[{"role": "user", "content": "first"},
                                                  {"role": "assistant", "content": "second"}],
                                        metadata={"user_id": "u1"})
    client.beta.threads.update(thread.id, metadata={"user_id": "u1", "topic": "replay"})
    kept = client.beta.threads.messages.create(thread.id, role="user", content="kept", metadata={"k": "1"})
    client.beta.threads.messages.update(kept.id, thread_id=thread.id, metadata={"k": "2"})
    gone = client.beta.threads.messages.create(thread.id, role="user", content="to be deleted")
    client.beta.threads.messages.delete(gone.id, thread_id=thread.id)
    client.beta.threads.messages.create(thread.id, role="user", content="say 5 words")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=plain.id, poll_interval_ms=50)
    assert run.status == "completed", run
    client.beta.threads.runs.update(run.id, thread_id=thread.id, metadata={"reviewed": "yes"})

    tools = client.beta.threads.create(messages=[{"role": "user", "content": CALL_WEATHER}])
    run = client.beta.threads.runs.create_and_poll(thread_id=tools.id, assistant_id=weather_assistant,
                                                   poll_interval_ms=50)
    assert run.status == "requires_action" and run.required_action is not None, run
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=tools.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "sunny, 21C"}],
        poll_interval_ms=50)
    assert run.status == "completed", run

    deleted = client.beta.threads.create(messages=[{"role": "user", "content": "short-lived"}])
    client.beta.threads.delete(deleted.id)
    wait_at_head(db)
    return {"thread": thread.id, "tools": tools.id, "assistant": plain.id}


# --- replay --------------------------------------------------------------------------------------------------


def test_replay_verify_is_identical_and_reports_progress(built_log: dict[str, str], db: str) -> None:
    events = fetch(db, "SELECT event_type, count(*) FROM events GROUP BY 1")
    kinds = {r[0] for r in events}
    assert {"assistant.created", "assistant.modified", "assistant.deleted", "thread.created", "thread.modified",
            "thread.deleted", "thread.message.created", "thread.message.modified", "thread.message.deleted",
            "thread.run.created", "thread.run.requires_action", "thread.run.tool_outputs_submitted",
            "thread.run.modified", "thread.run.completed", "thread.run.step.completed"} <= kinds, kinds
    total = sum(r[1] for r in events)

    result = threadlog(db, "replay", "--verify", "--no-swap", "--fresh")
    assert_identical(result)
    lines = progress_lines(result.stderr)
    assert lines, result.stderr
    assert all(p.total == total and 0 < p.done <= total for p in lines), result.stderr
    assert lines[-1].done == total and lines[-1].seconds_left == 0.0
    assert lines[-1].rate > 0
    rebuilt, _ = rebuilt_count(result.stderr)
    assert rebuilt == total
    assert "swapped in" not in result.stderr  # --no-swap: the live tables stay
    # The live read models were not touched: reads still work.
    assert fetch(db, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'replay_retired'")[0][0] == 0


@dataclass
class Writer:
    """Creates messages through the SDK until stopped; every answer is recorded with when it came."""

    client: openai.OpenAI
    thread_id: str
    stop: threading.Event = field(default_factory=threading.Event)
    ok: list[tuple[float, str]] = field(default_factory=list)
    failed: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                message = self.client.beta.threads.messages.create(self.thread_id, role="user", content=f"live {i}")
            except Exception as e:  # asserted on: no write may fail
                self.failed.append(e)
                continue
            self.ok.append((time.monotonic(), message.id))


def test_replay_swaps_in_while_the_service_serves(built_log: dict[str, str], rstack: Stack, db: str) -> None:
    client = sdk(rstack)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "before the swap"}])
    writer = Writer(sdk(rstack), thread.id)
    background = threading.Thread(target=writer.run, daemon=True)
    background.start()
    try:
        deadline = time.monotonic() + 10
        while len(writer.ok) < 5:
            assert time.monotonic() < deadline and not writer.failed, writer.failed[:3]
            time.sleep(0.01)
        started = time.monotonic()
        result = threadlog(db, "replay")
        ended = time.monotonic()
        count_at_end = len(writer.ok)
        while len(writer.ok) < count_at_end + 5:  # and writes go on after the swap
            assert time.monotonic() < ended + 10 and not writer.failed, writer.failed[:3]
            time.sleep(0.01)
    finally:
        writer.stop.set()
        background.join(30)
    assert not background.is_alive()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "replay: swapped in; read models now at position" in result.stderr, result.stderr
    assert progress_lines(result.stderr)
    assert writer.failed == [], writer.failed[:3]
    during = [m for at, m in writer.ok if started <= at <= ended]
    assert during, "no write was answered while the replay ran"
    print(f"\nswap replay took {ended - started:.2f}s; {len(during)} writes answered meanwhile, "
          f"{len(writer.ok)} in all")

    # Every acknowledged message, those answered during the replay and swap included, is in the swapped-in models.
    listed = all_messages(client, thread.id)
    assert listed[1:] == [m for _, m in writer.ok], (len(listed), len(writer.ok))
    # Read-your-writes holds on the new tables.
    latest = client.beta.threads.messages.create(thread.id, role="user", content="after the swap")
    assert client.beta.threads.messages.list(thread.id, limit=1).data[0].id == latest.id
    assert client.beta.threads.retrieve(built_log["thread"]).metadata == {"user_id": "u1", "topic": "replay"}
    assert client.beta.assistants.retrieve(built_log["assistant"]).instructions == "Be very brief."
    # The swapped-in tables are the live ones now: the projector goes on from their checkpoint, and they still
    # equal a rebuild of the whole log.
    wait_at_head(db)
    assert fetch(db, "SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'replay%'")[0][0] == 0
    assert_identical(threadlog(db, "replay", "--verify", "--no-swap", "--fresh"))


# --- old event shapes ---------------------------------------------------------------------------------------


def golden_payloads() -> list[Path]:
    return sorted(p for p in GOLDEN.glob("*.json") if not p.name.endswith(".expected.json"))


def golden_name(path: Path) -> tuple[str, int]:
    """`<event type>@v<schema version>.json` -> (event type, schema version)."""
    kind, _, version = path.name.removesuffix(".json").rpartition("@v")
    return kind, int(version)


def test_golden_payloads_load_through_the_upcaster() -> None:
    """Every stored shape an older version wrote still loads, into the current event, as recorded beside it."""
    files = golden_payloads()
    assert files, f"no golden payloads in {GOLDEN}"
    covered = set()
    loader, codec = EventLoader(Codec()), Codec()
    for path in files:
        kind, version = golden_name(path)
        assert kind in EVENT_TYPES and 1 <= version <= CURRENT_SCHEMA[kind], path.name
        event = loader.load(kind, version, path.read_bytes())
        assert type(event) is EVENT_TYPES[kind] and event_type(event) == kind
        expected = path.with_name(path.name.removesuffix(".json") + ".expected.json")
        assert msgspec.json.decode(codec.encode(event)) == msgspec.json.decode(expected.read_bytes()), path.name
        covered.update((kind, v) for v in range(version, CURRENT_SCHEMA[kind]))
    # Every upcast step is exercised by some golden payload.
    assert set(STEPS) <= covered, set(STEPS) - covered


def test_golden_requires_action_v1() -> None:
    """The v1 golden payload is the old shape: `usage`, no `call_usage`; loaded, `usage` is now `call_usage`."""
    raw = msgspec.json.decode((GOLDEN / "thread.run.requires_action@v1.json").read_bytes())
    assert "usage" in raw and "call_usage" not in raw
    event = EventLoader(Codec()).load("thread.run.requires_action", 1, msgspec.json.encode(raw))
    assert isinstance(event, RunRequiresAction)
    assert event.call_usage == msgspec.convert(raw["usage"], Usage)
    with pytest.raises(msgspec.ValidationError):  # read as if it were current, the old shape is refused
        Codec().decode(msgspec.json.encode(raw))


async def _rewrite_as_v1(database_url: str, position: int, payload: bytes) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL threadlog.allow_rewrite = 'on'")
            status = await conn.execute("UPDATE events SET payload = $2, schema_version = 1 WHERE position = $1",
                                        position, payload)
            assert status == "UPDATE 1"
    finally:
        await conn.close()


async def _load_stream(database_url: str, stream_id: str) -> list[tuple[int, int, Any]]:
    async with open_pool(database_url, size=1) as pool:
        store = EventStore(pool)
        return [(r.position, r.schema_version, store.load(r)) for r in await store.read_stream(stream_id)]


def test_upcast_event_replays_and_the_thread_goes_on(client: openai.OpenAI, weather_assistant: str,
                                                     db: str) -> None:
    """A `thread.run.requires_action` stored as v1 (`usage`) is read as v2 (`call_usage`) by every reader."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": CALL_WEATHER}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=weather_assistant,
                                                   poll_interval_ms=50)
    assert run.status == "requires_action" and run.required_action is not None, run
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    wait_at_head(db)

    # The stored v2 event, rewritten in place into the shape a v1 writer stored (a maintenance session).
    [row] = fetch(db, "SELECT position, schema_version, payload FROM events"
                      " WHERE stream_id = $1 AND event_type = 'thread.run.requires_action'", thread.id)
    position, current = row[0], msgspec.json.decode(bytes(row[2]))
    assert row[1] == 2 and "call_usage" in current and "usage" not in current
    old = {("usage" if k == "call_usage" else k): v for k, v in current.items()}
    golden = msgspec.json.decode((GOLDEN / "thread.run.requires_action@v1.json").read_bytes())
    assert set(old) == set(golden)  # exactly the v1 shape the golden file keeps
    asyncio.run(_rewrite_as_v1(db, position, msgspec.json.encode(old)))
    [row] = fetch(db, "SELECT schema_version, payload FROM events WHERE position = $1", position)
    assert row[0] == 1 and b'"usage"' in bytes(row[1]) and b"call_usage" not in bytes(row[1])

    # (a) EventStore.load hands out the current event.
    loaded = {p: (sv, e) for p, sv, e in asyncio.run(_load_stream(db, thread.id))}
    schema_version, event = loaded[position]
    assert schema_version == 1
    assert isinstance(event, RunRequiresAction) and event.run_id == run.id
    assert event.call_usage == msgspec.convert(current["call_usage"], Usage)
    assert [c.id for c in event.tool_calls] == [call.id]

    # (b) A replay through the upcaster rebuilds read models identical to the live ones.
    assert_identical(threadlog(db, "replay", "--verify", "--no-swap", "--fresh"))

    # (c) The gateway and the run-worker fold the upcast event: the tool round trip completes.
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "requires_action"
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "cloudy"}],
        poll_interval_ms=50)
    assert done.status == "completed", done
    reply = client.beta.threads.messages.list(thread.id, limit=1).data[0]
    assert reply.run_id == run.id and "cloudy" in message_text(reply)


# --- an interrupted replay resumes ---------------------------------------------------------------------------

# Big enough for several rebuild batches (BATCH = 5,000), small enough that the live projector, which has to
# apply them too before --verify can compare, keeps the file within its time budget.
BIG = 20_000


async def _append_many(database_url: str, thread_id: str, count: int) -> None:
    """`count` valid message events for a thread the API created, appended fast (1,000 per statement)."""
    async with open_pool(database_url, size=2) as pool:
        store = EventStore(pool)
        version = len(await store.read_stream(thread_id))
        now = int(time.time())
        for start in range(0, count, 1000):
            events = [NewEvent(event_id=new_event_id(), event=MessageCreated(
                thread_id=thread_id, message_id=f"msg_bulk{i:06d}", created_at=now, role="user",
                content=[TextBlock(text=TextValue(value=f"bulk {i}"))])) for i in range(start, start + 1000)]
            version = (await store.append(thread_id, version, events, tenant_id="proj_default")).version


def test_interrupted_replay_resumes(client: openai.OpenAI, db: str) -> None:
    thread = client.beta.threads.create(metadata={"bulk": "yes"})
    asyncio.run(_append_many(db, thread.id, BIG))
    total = fetch(db, "SELECT count(*) FROM events")[0][0]
    assert total > BIG

    # The rebuild reads the log only, so it starts at once (the live projector is still catching up).
    first = subprocess.Popen([sys.executable, "-m", "threadlog", "replay", "--no-swap", "--fresh"],
                             env=cli_env(db), cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stderr is not None
        line = first.stderr.readline()
        assert PROGRESS.match(line.strip()), line
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == -signal.SIGKILL
    [cp] = fetch(db, "SELECT txid, position FROM replay.checkpoints WHERE name = 'rebuild'")
    resumed_at = fetch(db, "SELECT count(*) FROM events WHERE (txid, position) <= ($1, $2)", cp[0], cp[1])[0][0]
    assert BATCH <= resumed_at < total, (resumed_at, total)  # killed after a batch, well before the end

    wait_at_head(db, timeout_s=60)  # --verify compares with the live read models: let them reach the head
    second = threadlog(db, "replay", "--verify", "--no-swap")  # no --fresh: resume
    assert_identical(second)
    lines = progress_lines(second.stderr)
    assert lines and lines[0].total == total, second.stderr
    # Its first report already counts what the killed run had applied: it did not start over.
    assert resumed_at < lines[0].done <= resumed_at + BATCH, (resumed_at, lines[0])
    assert lines[0].done > BATCH
    rebuilt, rate = rebuilt_count(second.stderr)
    assert rebuilt == total - resumed_at, (rebuilt, total, resumed_at)
    assert rate > 0
    print(f"\nreplay of {total:,} events: resumed at {resumed_at:,}, rebuilt the other {rebuilt:,} "
          f"at {rate:,} events/s")
