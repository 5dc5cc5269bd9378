"""The event log itself (shared/store.py) on a real PostgreSQL: OCC, idempotency, gap-safe global order."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.db import open_pool
from shared.errors import DuplicateEventError, VersionConflictError
from shared.events import Event, MessageCreated, TextBlock, TextValue, ThreadCreated, event_type
from shared.ids import new_event_id
from shared.store import Cursor, EventStore, NewEvent, Recorded

from .infra import Infra

TENANT = "proj_store_tests"


# --- helpers ----------------------------------------------------------------------------------------


def thread_created(thread_id: str) -> ThreadCreated:
    return ThreadCreated(thread_id=thread_id, created_at=int(time.time()), metadata={"k": thread_id})


def message_created(thread_id: str, text: str) -> MessageCreated:
    return MessageCreated(thread_id=thread_id, message_id=f"msg_{uuid.uuid4().hex}", created_at=int(time.time()),
                          role="user", content=[TextBlock(text=TextValue(value=text))])


def new(event: Event, event_id: uuid.UUID | None = None) -> NewEvent:
    return NewEvent(event=event, event_id=event_id or new_event_id())


async def count_events(pool: asyncpg.Pool, stream_id: str | None = None) -> int:
    if stream_id is None:
        return int(await pool.fetchval("SELECT count(*) FROM events"))
    return int(await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", stream_id))


async def read_until(store: EventStore, after: Cursor, want: int, *, limit: int = 500,
                     timeout_s: float = 10.0) -> list[Recorded]:
    """Read the global order from `after` until `want` events came back (or the time is up).

    pg_snapshot_xmin is cluster-wide: a short transaction of another test's process may hold a read back for a
    moment, so a positive expectation is polled; a negative one ("must not appear") needs no polling.
    """
    got: list[Recorded] = []
    cursor = after
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        page = await store.read_all(cursor, limit)
        if page:
            got.extend(page)
            cursor = page[-1].cursor
        else:
            await asyncio.sleep(0.02)
    return got


@pytest.fixture
def database_url(infra: Infra) -> str:
    return infra.new_database()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with open_pool(database_url, size=12) as pool:
        yield pool


@pytest.fixture
def store(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool)


# --- append and read one stream -------------------------------------------------------------------


async def test_append_read_and_expected_version(store: EventStore, pool: asyncpg.Pool) -> None:
    stream = "thread_append"
    first = [new(thread_created(stream)), new(message_created(stream, "one")), new(message_created(stream, "two"))]
    result = await store.append(stream, 0, first, tenant_id=TENANT)

    assert result.version == 3
    assert len(result.positions) == 3 and result.positions == sorted(set(result.positions))
    assert result.cursor.position == result.positions[-1]

    records = await store.read_stream(stream)
    assert [r.stream_version for r in records] == [1, 2, 3]
    assert [r.event_id for r in records] == [e.event_id for e in first]
    assert [r.position for r in records] == result.positions
    assert {r.txid for r in records} == {result.cursor.txid}  # one statement, one transaction
    assert [r.event_type for r in records] == [event_type(e.event) for e in first]
    assert all(r.tenant_id == TENANT and r.stream_id == stream for r in records)
    assert [store.load(r) for r in records] == [e.event for e in first]
    assert records[-1].cursor == result.cursor

    # Stale expected versions (0: "must not exist", 1 and 2: behind) and one beyond the end all conflict.
    for stale in (0, 1, 2, 4, 17):
        with pytest.raises(VersionConflictError) as info:
            await store.append(stream, stale, [new(message_created(stream, f"stale {stale}"))], tenant_id=TENANT)
        assert info.value.stream_id == stream and info.value.expected_version == stale
    assert await count_events(pool, stream) == 3

    # A stream that does not exist cannot be appended to at a version above 0 either.
    with pytest.raises(VersionConflictError):
        await store.append("thread_nowhere", 1, [new(message_created("thread_nowhere", "x"))], tenant_id=TENANT)
    assert await count_events(pool, "thread_nowhere") == 0

    third = new(message_created(stream, "three"))
    after = await store.append(stream, 3, [third], tenant_id=TENANT)
    assert after.version == 4 and after.positions[0] > result.positions[-1]
    tail = await store.read_stream(stream, after_version=3)
    assert [(r.stream_version, r.event_id) for r in tail] == [(4, third.event_id)]
    assert store.load(tail[0]) == third.event


@pytest.mark.parametrize("existing", [0, 1], ids=["new-stream", "existing-stream"])
async def test_concurrent_appends_one_winner(store: EventStore, pool: asyncpg.Pool, existing: int) -> None:
    for round_ in range(5):  # several rounds: the race must hold every time, not just once
        stream = f"thread_race_{existing}_{round_}"
        if existing:
            await store.append(stream, 0, [new(thread_created(stream))], tenant_id=TENANT)
        candidates = [new(message_created(stream, f"writer {i}")) for i in range(10)]
        start = asyncio.Event()

        async def writer(candidate: NewEvent, stream: str = stream, start: asyncio.Event = start) -> object:
            await start.wait()
            return await store.append(stream, existing, [candidate], tenant_id=TENANT)

        tasks = [asyncio.create_task(writer(c)) for c in candidates]
        await asyncio.sleep(0)
        start.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)

        winners = [i for i, o in enumerate(outcomes) if not isinstance(o, BaseException)]
        losers = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, VersionConflictError) for o in losers), losers
        records = await store.read_stream(stream, after_version=existing)
        assert [r.event_id for r in records] == [candidates[winners[0]].event_id]
        assert records[0].stream_version == existing + 1
        assert await count_events(pool, stream) == existing + 1


async def test_retried_append_is_idempotent(store: EventStore, pool: asyncpg.Pool) -> None:
    stream = "thread_retry"
    batch = [new(thread_created(stream)), new(message_created(stream, "hello"))]
    first = await store.append(stream, 0, batch, tenant_id=TENANT)
    total = await count_events(pool)

    again = await store.append(stream, 0, batch, tenant_id=TENANT)
    assert again == first
    assert await count_events(pool) == total

    # Still a no-op after the stream moved on (the retry's expected version is stale by now).
    await store.append(stream, 2, [new(message_created(stream, "later"))], tenant_id=TENANT)
    late = await store.append(stream, 0, batch, tenant_id=TENANT)
    assert late.positions == first.positions and late.version == first.version
    assert await count_events(pool) == total + 1

    # The same id with other content is never a harmless retry: at a stale version (the guard fails) ...
    reused = batch[1].event_id
    with pytest.raises(DuplicateEventError):
        await store.append(stream, 0, [new(message_created(stream, "different"), reused)], tenant_id=TENANT)
    # ... and at the current version (the insert hits the event-id unique index).
    with pytest.raises(DuplicateEventError):
        await store.append(stream, 3, [new(message_created(stream, "different"), reused)], tenant_id=TENANT)
    # Nor is the same content under the same id in another stream.
    with pytest.raises(DuplicateEventError):
        await store.append("thread_other", 0, [NewEvent(event=batch[1].event, event_id=reused)], tenant_id=TENANT)
    assert await count_events(pool) == total + 1
    stored = await store.read_stream(stream)
    assert store.load(stored[1]) == batch[1].event


# --- the global order ------------------------------------------------------------------------------


async def test_read_all_never_skips_a_late_commit(store: EventStore, pool: asyncpg.Pool, database_url: str) -> None:
    before = await store.append("thread_before", 0, [new(thread_created("thread_before"))], tenant_id=TENANT)
    seen = await read_until(store, Cursor(), 1)
    assert [r.position for r in seen] == before.positions
    cursor = seen[-1].cursor

    slow_event = thread_created("thread_slow")
    slow_id = new_event_id()
    conn = await asyncpg.connect(database_url)
    try:
        tx = conn.transaction()
        await tx.start()
        slow_position, slow_txid = await conn.fetchrow(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, tenant_id, payload)"
            " VALUES ($1, 1, $2, $3, 1, $4, $5) RETURNING position, txid",
            "thread_slow", slow_id, event_type(slow_event), TENANT, store.codec.encode(slow_event))

        fast_new = new(thread_created("thread_fast"))
        fast = await store.append("thread_fast", 0, [fast_new], tenant_id=TENANT)
        fast_position = fast.positions[0]
        # The point of the test: the row that commits later drew the lower position ...
        assert slow_position < fast_position
        assert slow_txid < fast.cursor.txid
        # ... so a naive `position > N` reader, which sees the committed row, would step past it for ever.
        naive = await pool.fetch("SELECT position FROM events WHERE position > $1 ORDER BY position",
                                 before.positions[-1])
        assert [r[0] for r in naive] == [fast_position]

        # The gap-safe reader hands out nothing at or after the open transaction, from anywhere.
        for start in (Cursor(), cursor):
            pending = await store.read_all(start)
            assert fast_position not in [r.position for r in pending]
            assert all(r.txid < slow_txid for r in pending), pending
        assert await store.read_all(cursor) == []
        await tx.commit()
    finally:
        await conn.close()

    resumed = await read_until(store, cursor, 2)
    assert [(r.position, r.event_id) for r in resumed] == [(slow_position, slow_id), (fast_position, fast_new.event_id)]
    assert [r.stream_id for r in resumed] == ["thread_slow", "thread_fast"]
    assert store.load(resumed[0]) == slow_event
    # The naive reader, resuming after what it saw, has lost the late row.
    lost = await pool.fetch("SELECT position FROM events WHERE position > $1", fast_position)
    assert lost == []


async def test_events_are_immutable(store: EventStore, pool: asyncpg.Pool) -> None:
    result = await store.append("thread_frozen", 0, [new(thread_created("thread_frozen"))], tenant_id=TENANT)
    position = result.positions[0]
    original = await pool.fetchrow("SELECT * FROM events WHERE position = $1", position)

    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pool.execute("UPDATE events SET tenant_id = 'someone_else' WHERE position = $1", position)
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pool.execute("UPDATE events SET payload = '\\x00'::bytea")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pool.execute("DELETE FROM events WHERE position = $1", position)
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pool.execute("DELETE FROM events")

    assert await pool.fetchrow("SELECT * FROM events WHERE position = $1", position) == original
    assert await count_events(pool) == 1


async def test_read_all_pages_in_order_without_gaps_or_duplicates(store: EventStore, pool: asyncpg.Pool) -> None:
    streams = [f"thread_page_{i}" for i in range(5)]
    per_stream, chunk = 500, 25

    async def fill(stream: str) -> None:
        version = 0
        while version < per_stream:
            events = [new(thread_created(stream))] if version == 0 else []
            events += [new(message_created(stream, f"{stream} {version + i}")) for i in range(chunk - len(events))]
            version = (await store.append(stream, version, events, tenant_id=TENANT)).version

    await asyncio.gather(*(fill(s) for s in streams))  # interleaved transactions of several streams
    total = await count_events(pool)
    assert total == len(streams) * per_stream == 2500

    got = await read_until(store, Cursor(), total)
    assert len(got) == total
    # One more page at the end is empty: nothing beyond the last event.
    assert await store.read_all(got[-1].cursor) == []

    keys = [(r.txid, r.position) for r in got]
    assert keys == sorted(keys) and len(set(keys)) == total
    assert len({r.event_id for r in got}) == total
    rows = await pool.fetch("SELECT position FROM events")
    assert sorted(r.position for r in got) == sorted(r[0] for r in rows)
    # Each stream's events come in version order, 1..500, in the global order too.
    versions: dict[str, list[int]] = {}
    for r in got:
        versions.setdefault(r.stream_id, []).append(r.stream_version)
    assert versions == {s: list(range(1, per_stream + 1)) for s in streams}
    # The streams' transactions really interleaved (else this would be a single-stream test).
    runs = sum(1 for a, b in itertools.pairwise(got) if a.stream_id != b.stream_id)
    assert runs > len(streams)

    # Small pages give exactly the same sequence as default pages (page boundaries lose and repeat nothing).
    small = await read_until(store, Cursor(), total, limit=97)
    assert Counter(r.event_id for r in small) == Counter(r.event_id for r in got)
    assert [r.position for r in small] == [r.position for r in got]
