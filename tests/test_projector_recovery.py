"""The projector (services/projector/runner.py) survives SIGKILL: read models end equal to a rebuild from the log,
with every acknowledged write applied exactly once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import msgspec
import openai

from services.projector.projections import READ_MODEL_TABLES
from services.projector.rebuild import compare, rebuild
from shared.db import open_pool
from shared.events import MessageCreated, TextBlock, TextValue, ThreadCreated
from shared.ids import new_event_id
from shared.store import Cursor, EventStore, NewEvent
from threadlog.stack import Stack

from .infra import Infra

READ_MODELS = "read_models"
SHADOW = "rebuild_check"


async def projection_state(database_url: str) -> tuple[Cursor, Cursor]:
    """(the read-model checkpoint, the log's last (txid, position))."""
    conn = await asyncpg.connect(database_url)
    try:
        cp = await conn.fetchrow("SELECT txid, position FROM checkpoints WHERE name = $1", READ_MODELS)
        last = await conn.fetchrow("SELECT txid, position FROM events ORDER BY txid DESC, position DESC LIMIT 1")
        return (Cursor(cp[0], cp[1]) if cp else Cursor(), Cursor(last[0], last[1]) if last else Cursor())
    finally:
        await conn.close()


def wait_caught_up(database_url: str, timeout_s: float = 20.0) -> Cursor:
    deadline = time.monotonic() + timeout_s
    while True:
        checkpoint, last = asyncio.run(projection_state(database_url))
        if checkpoint == last:
            return last
        assert time.monotonic() < deadline, f"projector stuck at {checkpoint}, log at {last}"
        time.sleep(0.1)


async def message_facts(database_url: str) -> tuple[Counter[str], Counter[str], int, int]:
    """(message ids in the `messages` read model, message ids of thread.message.created events, rows, events)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = Counter(r[0] for r in await conn.fetch("SELECT message_id FROM messages"))
        payloads = await conn.fetch("SELECT payload FROM events WHERE event_type = 'thread.message.created'")
        logged = Counter(msgspec.json.decode(bytes(r[0]))["message_id"] for r in payloads)
        seq_rows = await conn.fetchval("SELECT count(*) FROM (SELECT DISTINCT thread_id, seq FROM messages) s")
        events = await conn.fetchval("SELECT count(*) FROM events")
        return rows, logged, int(seq_rows), int(events)
    finally:
        await conn.close()


@dataclass
class Load:
    """Writers creating messages through the SDK until stopped; each acknowledged id is recorded."""

    client: openai.OpenAI
    thread_ids: list[str]
    per_writer: int
    stop: threading.Event = field(default_factory=threading.Event)
    ok: list[tuple[str, str]] = field(default_factory=list)  # (thread id, message id) of every 2xx
    failed: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def writer(self, index: int, thread_id: str) -> None:
        for i in range(self.per_writer):
            if self.stop.is_set():
                return
            try:
                msg = self.client.beta.threads.messages.create(thread_id, role="user", content=f"w{index} #{i}")
            except Exception as e:  # recorded and asserted on: no write may fail
                with self.lock:
                    self.failed.append(e)
                continue
            with self.lock:
                self.ok.append((thread_id, msg.id))

    def start(self, writers: int) -> None:
        # Writers 0 and 1 share a thread, so optimistic-concurrency retries are part of the load.
        for i in range(writers):
            t = threading.Thread(target=self.writer, args=(i, self.thread_ids[max(i - 1, 0)]), daemon=True)
            t.start()
            self.threads.append(t)

    def acknowledged(self) -> int:
        with self.lock:
            return len(self.ok)

    def wait_for(self, count: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.acknowledged() < count:
            assert time.monotonic() < deadline, f"load stalled at {self.acknowledged()} acknowledged writes"
            assert any(t.is_alive() for t in self.threads), "load finished early"
            time.sleep(0.02)

    def join(self) -> None:
        for t in self.threads:
            t.join(60)
            assert not t.is_alive(), "a writer hung"


def crash_and_restart(stack: Stack) -> None:
    stack.projector.kill()
    assert stack.projector.process is not None and stack.projector.process.returncode == -9
    time.sleep(1.0)
    stack.projector.start()
    stack.projector.wait_ready()


def test_sigkilled_projector_converges_to_a_rebuild(infra: Infra) -> None:
    database_url = infra.new_database()
    stack = infra.new_stack("projector-recovery", database_url=database_url)
    writers, per_writer = 6, 50
    try:
        stack.start()
        client = openai.OpenAI(base_url=stack.base_url, api_key=stack.api_key, max_retries=0, timeout=30)
        threads = [client.beta.threads.create(metadata={"n": str(i)}).id for i in range(writers - 1)]
        load = Load(client, threads, per_writer)
        load.start(writers)
        try:
            for crash in (1, 2):
                load.wait_for(crash * 60)
                at_kill = load.acknowledged()
                crash_and_restart(stack)
                load.wait_for(at_kill + 20)  # writes went on through the crash and after the restart
        finally:
            load.join()  # each writer stops after `per_writer` messages
        assert load.failed == [], load.failed[:3]
        acknowledged = [m for _, m in load.ok]
        assert len(acknowledged) == writers * per_writer

        last = wait_caught_up(database_url)
        assert last != Cursor()
        # Each thread lists exactly its acknowledged messages (the SDK pages through them); a thread with one
        # writer lists them in the order they were acknowledged.
        for i, thread_id in enumerate(threads):
            mine = [m for t, m in load.ok if t == thread_id]
            listed = [m.id for m in client.beta.threads.messages.list(thread_id, order="asc", limit=40)]
            assert Counter(listed) == Counter(mine)
            if i > 0:
                assert listed == mine

        # The read models are final: stop the stack, then rebuild the whole log.
        stack.stop()
        rows, logged, seq_rows, events = asyncio.run(message_facts(database_url))
        applied = asyncio.run(rebuild(database_url, SHADOW)).done
        assert applied == events
        differences = asyncio.run(compare(database_url, SHADOW))
        assert {"threads", "messages"} <= set(differences) == set(READ_MODEL_TABLES)
        assert differences == dict.fromkeys(READ_MODEL_TABLES, 0)

        # Every acknowledged write is in the log once and in the read model once, and nothing else is.
        assert logged == Counter(acknowledged)
        assert rows == Counter(acknowledged)
        assert seq_rows == sum(rows.values())
    finally:
        stack.stop()


def test_writes_while_projector_down_appear_after_restart(infra: Infra) -> None:
    stack = infra.new_stack("projector-down", extra_env={"THREADLOG_CONSISTENCY_WAIT_MS": "300"})
    try:
        stack.start()
        client = openai.OpenAI(base_url=stack.base_url, api_key=stack.api_key, max_retries=0, timeout=30)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "before the crash"}])
        before = [m.id for m in client.beta.threads.messages.list(thread.id, order="asc").data]
        assert len(before) == 1

        stack.projector.kill()
        written, took = [], []
        for i in range(8):
            started = time.monotonic()
            written.append(client.beta.threads.messages.create(thread.id, role="user", content=f"while down {i}").id)
            took.append(time.monotonic() - started)
        # Each write waited for the read models up to the bound, then answered anyway (the log has it).
        assert min(took) >= 0.25 and max(took) < 3.0, took
        # Nothing projects while the projector is down: the list still shows only the old message.
        assert [m.id for m in client.beta.threads.messages.list(thread.id, order="asc").data] == before

        stack.projector.start()
        stack.projector.wait_ready()
        deadline = time.monotonic() + 15
        while True:
            listed = [m.id for m in client.beta.threads.messages.list(thread.id, order="asc", limit=50).data]
            if listed == before + written:
                break
            assert time.monotonic() < deadline, f"after restart the list shows {listed}"
            time.sleep(0.1)
        assert client.beta.threads.messages.retrieve(written[-1], thread_id=thread.id).id == written[-1]
    finally:
        stack.stop()



def test_rebuild_waits_for_an_open_transaction(infra: Infra) -> None:
    """A rebuild replays the whole committed log even when an older, unrelated transaction is still open."""
    database_url = infra.new_database()
    unrelated = infra.new_database()

    async def scenario() -> int:
        other = await asyncpg.connect(unrelated)
        try:
            tx = other.transaction()
            await tx.start()
            await other.fetchval("SELECT pg_current_xact_id()")  # an xid older than the events below
            async with open_pool(database_url, size=2) as pool:
                store = EventStore(pool)
                events = [NewEvent(event=ThreadCreated(thread_id="thread_rb", created_at=1), event_id=new_event_id())]
                events += [NewEvent(event=MessageCreated(thread_id="thread_rb", message_id=f"msg_rb{i}", created_at=1,
                                                         role="user", content=[TextBlock(text=TextValue(value="x"))]),
                                    event_id=new_event_id()) for i in range(3)]
                await store.append("thread_rb", 0, events, tenant_id="proj_rb")
            task = asyncio.create_task(rebuild(database_url, "rebuild_open_tx"))
            await asyncio.sleep(0.5)
            await tx.rollback()  # the unrelated transaction ends; a rebuild that waited can now finish
            return (await asyncio.wait_for(task, 15)).done
        finally:
            await other.close()

    assert asyncio.run(scenario()) == 4
