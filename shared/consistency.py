"""Waiting for the read models to reach a place in the log (bounded).

The gateway waits before answering a write (read-your-writes); the run-worker before reading a thread.
With partitioned projectors, a stream's events are applied by its partition: we wait for that checkpoint.

The projector nudges every gateway with its new checkpoint over core NATS; a short poll of the checkpoint
table covers lost nudges (NATS down), so the wait never depends on the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging

import asyncpg
import msgspec

from shared.db import DATABASE_ERRORS
from shared.partitions import all_checkpoints, checkpoint_for
from shared.store import Cursor

log = logging.getLogger(__name__)
POLL_S = 0.05


class Progress(msgspec.Struct, frozen=True):
    """What a projector announces after each batch: which checkpoint, and where it is now."""

    name: str
    cursor: Cursor


def encode_progress(name: str, cursor: Cursor) -> bytes:
    return msgspec.json.encode(Progress(name, cursor))


class ConsistencyWaiter:
    def __init__(self, pool: asyncpg.Pool, partitions: int, timeout_s: float) -> None:
        self._pool = pool
        self._partitions = partitions
        self._names = all_checkpoints(partitions)
        self._timeout_s = timeout_s
        self.seen: dict[str, Cursor] = dict.fromkeys(self._names, Cursor())
        self._waiting: dict[str, list[tuple[Cursor, int, asyncio.Future[None]]]] = {n: [] for n in self._names}
        self._tie = itertools.count()
        self._has_waiters = asyncio.Event()
        self._decoder = msgspec.json.Decoder(Progress)

    async def on_projected(self, msg: object) -> None:
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError, AttributeError):
            progress = self._decoder.decode(msg.data)  # type: ignore[attr-defined]
            self.advance(progress.name, progress.cursor)

    def advance(self, name: str, cursor: Cursor) -> None:
        if name not in self.seen or cursor <= self.seen[name]:
            return
        self.seen[name] = cursor
        waiting = self._waiting[name]
        while waiting and waiting[0][0] <= cursor:
            _, _, fut = heapq.heappop(waiting)
            if not fut.done():
                fut.set_result(None)

    async def wait(self, cursor: Cursor, stream_id: str = "") -> bool:
        """True once the read models include `cursor` (of `stream_id`); False if the bound passed first."""
        names = [checkpoint_for(stream_id, self._partitions)] if stream_id else self._names
        for name in names:
            if cursor <= self.seen[name]:
                continue
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting[name], (cursor, next(self._tie), fut))
            self._has_waiters.set()
            try:
                await asyncio.wait_for(fut, self._timeout_s)
            except TimeoutError:
                return False
        return True

    async def poll_forever(self) -> None:
        """While anyone waits, read the checkpoints directly now and then."""
        while True:
            await self._has_waiters.wait()
            await asyncio.sleep(POLL_S)
            for name, waiting in self._waiting.items():
                self._waiting[name] = [w for w in waiting if not w[2].done()]
                heapq.heapify(self._waiting[name])
            if not any(self._waiting.values()):
                self._has_waiters.clear()
                continue
            try:
                rows = await self._pool.fetch("SELECT name, txid, position FROM checkpoints WHERE name = ANY($1)",
                                              self._names)
            except (*DATABASE_ERRORS, asyncpg.PostgresError) as e:
                log.debug("consistency poll failed: %r", e)
                continue
            for row in rows:
                self.advance(row[0], Cursor(row[1], row[2]))
