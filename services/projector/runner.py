"""Follows the log from the checkpoint and applies each batch with the checkpoint in one transaction.

The bus only nudges: events are always read from the log in its gap-safe order, so live processing and a
rebuild are the same loop and cannot drift apart. A redelivered nudge has no effect; a batch applied twice
is impossible because the checkpoint moves in the transaction that applies it, guarded by its old value.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable, Sequence

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.bus import Bus
from shared.checkpoints import lead, load_checkpoint, nap, save_checkpoint
from shared.consistency import encode_progress
from shared.db import DATABASE_ERRORS
from shared.events import AnyEvent
from shared.partitions import partition_of
from shared.store import Cursor, EventStore, Recorded

from .projections import Statement

log = logging.getLogger(__name__)

Projection = Callable[[Recorded, AnyEvent], list[Statement]]
BATCH = 500
PROJECTOR_LOCK_ID = 7_245_003


class ProjectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.applied = Counter("threadlog_projector_events_total", "Events applied to read models",
                               registry=registry)
        self.position = Gauge("threadlog_projector_position", "Log position of the checkpoint", registry=registry)
        self.lag = Gauge("threadlog_projector_lag_seconds", "Age of the newest applied event", registry=registry)


_WRITES = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+)", re.IGNORECASE)
_READS = re.compile(r"\b(?:FROM|JOIN)\s+(\w+)", re.IGNORECASE)


@functools.cache
def _tables(sql: str) -> tuple[frozenset[str], frozenset[str]]:
    """(tables written, tables read) by a projection statement."""
    written = _WRITES.match(sql)
    writes = frozenset({written.group(1).lower()}) if written else frozenset()
    return writes, frozenset(t.lower() for t in _READS.findall(sql)) - writes


def plan(statements: Sequence[Statement]) -> list[tuple[str, list[tuple[object, ...]]]]:
    """Group a batch's statements by SQL so each group is one executemany: a statement joins an earlier group
    of the same SQL only if it touches no table that a group in between writes (or reads what it writes), so
    every table sees its statements in event order. A rebuild is bound by round trips, not by SQL."""
    groups: list[tuple[str, list[tuple[object, ...]], frozenset[str], frozenset[str]]] = []
    for sql, args in statements:
        writes, reads = _tables(sql)
        target = None
        for i in range(len(groups) - 1, -1, -1):
            g_sql, _, g_writes, g_reads = groups[i]
            if g_sql == sql:
                target = i
                break
            if g_writes & (writes | reads) or g_reads & writes:
                break
        if target is None:
            groups.append((sql, [args], writes, reads))
        else:
            groups[target][1].append(args)
    return [(sql, rows) for sql, rows, _, _ in groups]


async def apply_batch(conn: asyncpg.Connection, statements: Sequence[Statement]) -> None:
    for sql, rows in plan(statements):
        if len(rows) == 1:
            await conn.execute(sql, *rows[0])
        else:
            await conn.executemany(sql, rows)


class Projector:
    def __init__(self, *, database_url: str, pool: asyncpg.Pool, store: EventStore, bus: Bus | None,
                 projection: Projection, checkpoint: str, metrics: ProjectorMetrics, batch: int = BATCH,
                 partition: tuple[int, int] = (0, 1), contend_after_s: float = 0.0) -> None:
        self._database_url = database_url
        self.pool = pool
        self._store = store
        self._bus = bus
        self._projection = projection
        self._checkpoint = checkpoint
        self._metrics = metrics
        self.batch = batch
        self.partition = partition
        # A partition another process prefers is only contended for after a while: each leads its own first.
        self._contend_after_s = contend_after_s
        self._lock_id = PROJECTOR_LOCK_ID if partition[1] <= 1 else PROJECTOR_LOCK_ID + 1000 + partition[0]
        self.wake = asyncio.Event()
        self.cursor = Cursor()

    async def run(self, stop: asyncio.Event) -> None:
        if self._contend_after_s:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self._contend_after_s)
        while not stop.is_set():
            try:
                async with lead(self._database_url, self._lock_id) as leadership:
                    log.info("projector: leading", extra={"checkpoint": self._checkpoint})
                    self.cursor = await load_checkpoint(self.pool, self._checkpoint)
                    nudged, tries = True, [0]
                    while leadership.held and not stop.is_set():
                        self.wake.clear()  # clear first: a nudge landing mid-read is kept
                        applied = await self.step()
                        if applied < self.batch:
                            nudged = await nap(self.wake, applied, nudged, idle_s=1.0, tries=tries)
            except (*DATABASE_ERRORS, asyncpg.PostgresError) as e:
                log.warning("projector: %s: %s; retrying", e.__class__.__name__, e)
                await asyncio.sleep(0.5)

    async def step(self, until: Cursor | None = None) -> int:
        """Apply the next batch (not past `until`); returns how many events it held."""
        batch = await self._store.read_all(self.cursor, self.batch, until)
        if not batch:
            return 0
        statements: list[Statement] = []
        index, count = self.partition
        for record in batch:
            if count > 1 and partition_of(record.stream_id, count) != index:
                continue  # another partition's stream
            statements.extend(self._projection(record, self._store.load(record)))
        new = batch[-1].cursor
        async with self.pool.acquire() as conn, conn.transaction():
            await apply_batch(conn, statements)
            if not await save_checkpoint(conn, self._checkpoint, self.cursor, new):
                raise asyncpg.InterfaceError("checkpoint moved by another projector")
        self.cursor = new
        self._metrics.applied.inc(len(batch))
        self._metrics.position.set(new.position)
        self._metrics.lag.set(max(0.0, time.time() - batch[-1].recorded_at.timestamp()))
        if self._bus is not None:
            await self._bus.nudge(self._bus.subjects.projected, encode_progress(self._checkpoint, new))
        return len(batch)
