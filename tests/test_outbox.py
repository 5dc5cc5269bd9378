"""The outbox relay (shared/relay.py): writes keep working while NATS is down, and once it is back every event
of the log reaches the JetStream stream exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import nats
import nats.js.errors
import openai

from shared.bus import Subjects
from shared.relay import CHECKPOINT as RELAY_CHECKPOINT
from shared.relay import decode_envelope
from shared.store import Cursor
from threadlog.devenv import EmbeddedNats, free_port
from threadlog.stack import Stack

from .infra import Infra

WRITERS = 5
MESSAGES_PER_THREAD = 4  # 5 threads x 4 = 20 messages, plus 5 thread.created events


async def log_state(database_url: str) -> tuple[Counter[uuid.UUID], Cursor, Cursor]:
    """Event ids in the log, the log's last (txid, position), and the relay's checkpoint."""
    conn = await asyncpg.connect(database_url)
    try:
        ids = Counter(r[0] for r in await conn.fetch("SELECT event_id FROM events"))
        last = await conn.fetchrow("SELECT txid, position FROM events ORDER BY txid DESC, position DESC LIMIT 1")
        relay = await conn.fetchrow("SELECT txid, position FROM checkpoints WHERE name = $1", RELAY_CHECKPOINT)
        return (ids, Cursor(last[0], last[1]) if last else Cursor(),
                Cursor(relay[0], relay[1]) if relay else Cursor())
    finally:
        await conn.close()


async def stream_event_ids(nats_url: str, subjects: Subjects) -> Counter[uuid.UUID]:
    """Every message in the JetStream stream, decoded as an event envelope: the multiset of event ids."""
    nc = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        stream = subjects.events_stream
        info = await js.stream_info(stream)
        ids: Counter[uuid.UUID] = Counter()
        if info.state.messages == 0:
            return ids
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except nats.js.errors.NotFoundError:
                continue  # a deleted sequence (none expected: the stream keeps 7 days)
            assert msg.data is not None
            record = decode_envelope(msg.data)
            # Published on this stack's event subjects, under the event's own type.
            assert msg.subject.startswith(subjects.all_events.removesuffix(">")), msg.subject
            assert msg.subject.endswith("." + record.event_type), msg.subject
            ids[record.event_id] += 1
        return ids
    finally:
        await nc.close()


def wait_all_published(database_url: str, nats_url: str, subjects: Subjects, stack: Stack,
                       timeout_s: float = 20.0) -> None:
    """Until the relay's checkpoint is the log's end and every event id of the log is in the stream."""
    deadline = time.monotonic() + timeout_s
    while True:
        published = asyncio.run(stream_event_ids(nats_url, subjects))
        ids, last, relay = asyncio.run(log_state(database_url))
        if relay == last and set(published) >= set(ids):
            return
        assert time.monotonic() < deadline, (
            f"after {timeout_s}s {len(set(ids) - set(published))} of {len(ids)} events still unpublished "
            f"(relay at {relay}, log at {last}):\n{stack.gateway.tail()}")
        time.sleep(0.25)


def assert_exactly_once(database_url: str, nats_url: str, subjects: Subjects) -> None:
    time.sleep(1.0)  # let any late re-send land before the check
    published = asyncio.run(stream_event_ids(nats_url, subjects))
    ids, _, _ = asyncio.run(log_state(database_url))
    assert published == ids, {
        "missing": set(ids) - set(published), "extra": set(published) - set(ids),
        "repeated": {k: v for k, v in published.items() if v > 1},
    }
    assert set(ids.values()) == {1}


def write_thread(client: openai.OpenAI, index: int) -> tuple[str, list[str], list[float]]:
    thread = client.beta.threads.create(metadata={"writer": str(index)})
    ids, took = [], []
    for i in range(MESSAGES_PER_THREAD):
        started = time.monotonic()
        msg = client.beta.threads.messages.create(thread.id, role="user", content=f"writer {index} message {i}")
        took.append(time.monotonic() - started)
        ids.append(msg.id)
    return thread.id, ids, took


def test_events_reach_jetstream_exactly_once_after_nats_outage(infra: Infra, tmp_path: Path) -> None:
    bus = EmbeddedNats(tmp_path / "nats", port=free_port())
    bus.start()
    database_url = infra.new_database()
    stack = infra.new_stack("outbox", database_url=database_url, nats_url=bus.url)
    subjects = Subjects(stack.env["THREADLOG_NATS_PREFIX"])
    try:
        stack.start()
        client = openai.OpenAI(base_url=stack.base_url, api_key=stack.api_key, max_retries=0, timeout=30)
        warm = client.beta.threads.create(messages=[{"role": "user", "content": "before the outage"}])
        warm_messages = [m.id for m in client.beta.threads.messages.list(warm.id).data]
        assert len(warm_messages) == 1

        bus.stop()
        assert not bus.process

        with ThreadPoolExecutor(WRITERS) as pool:
            written = list(pool.map(lambda i: write_thread(client, i), range(WRITERS)))
        slowest = max(t for _, _, took in written for t in took)
        print(f"slowest write with NATS down: {slowest:.2f}s")
        assert slowest < 3.0, f"a write took {slowest:.1f}s with NATS down"

        ids, last, relay = asyncio.run(log_state(database_url))
        assert sum(ids.values()) == 2 + WRITERS * (1 + MESSAGES_PER_THREAD)
        # The outage was real: the relay could not get acks, so the events are still only in the outbox.
        assert relay < last

        bus.start()
        wait_all_published(database_url, bus.url, subjects, stack)
        assert_exactly_once(database_url, bus.url, subjects)

        # The read models show every message written during the outage, in order.
        assert [m.id for m in client.beta.threads.messages.list(warm.id).data] == warm_messages
        for thread_id, message_ids, _ in written:
            listed = client.beta.threads.messages.list(thread_id, order="asc", limit=100)
            assert [m.id for m in listed.data] == message_ids
    finally:
        stack.stop()
        bus.stop()


async def rewind_relay(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE checkpoints SET txid = 0, position = 0 WHERE name = $1", RELAY_CHECKPOINT)
    finally:
        await conn.close()


def test_relay_resend_after_crash_is_deduplicated(infra: Infra) -> None:
    """A relay that crashed after publishing but before moving its checkpoint re-sends: the stream drops repeats."""
    database_url = infra.new_database()
    stack = infra.new_stack("outbox-resend", database_url=database_url)
    subjects = Subjects(stack.env["THREADLOG_NATS_PREFIX"])
    try:
        stack.start()
        client = openai.OpenAI(base_url=stack.base_url, api_key=stack.api_key, max_retries=0, timeout=30)
        thread_id, _, _ = write_thread(client, 0)
        wait_all_published(database_url, infra.nats_url, subjects, stack)
        assert_exactly_once(database_url, infra.nats_url, subjects)

        # The crash window, reproduced exactly: everything was published, the checkpoint says nothing was.
        stack.gateway.kill()
        asyncio.run(rewind_relay(database_url))
        stack.gateway.start()
        stack.gateway.wait_ready()
        client.beta.threads.messages.create(thread_id, role="user", content="after the crash")

        wait_all_published(database_url, infra.nats_url, subjects, stack)  # the relay walked the log from 0 again
        assert_exactly_once(database_url, infra.nats_url, subjects)
    finally:
        stack.stop()
