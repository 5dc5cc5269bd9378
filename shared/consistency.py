"""Waiting for the read models to reach a place in the log (bounded).

The gateway waits before answering a write (read-your-writes); the run-worker before reading a thread.

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

from shared.store import Cursor

log = logging.getLogger(__name__)
POLL_S = 0.05
# The checkpoint of the projector that maintains every read model.
READ_MODELS = "read_models"


class ConsistencyWaiter:
    def __init__(self, pool: asyncpg.Pool, checkpoint: str, timeout_s: float) -> None:
        self._pool = pool
        self._checkpoint = checkpoint
        self._timeout_s = timeout_s
        self.seen = Cursor()
        self._waiting: list[tuple[Cursor, int, asyncio.Future[None]]] = []
        self._tie = itertools.count()
        self._has_waiters = asyncio.Event()
        self._decoder = msgspec.json.Decoder(Cursor)

    async def on_projected(self, msg: object) -> None:
        with contextlib.suppress(msgspec.DecodeError, AttributeError):
            self.advance(self._decoder.decode(msg.data))  # type: ignore[attr-defined]

    def advance(self, cursor: Cursor) -> None:
        if cursor <= self.seen:
            return
        self.seen = cursor
        while self._waiting and self._waiting[0][0] <= cursor:
            _, _, fut = heapq.heappop(self._waiting)
            if not fut.done():
                fut.set_result(None)

    async def wait(self, cursor: Cursor) -> bool:
        """True once the read models include `cursor`; False if the bound passed first."""
        if cursor <= self.seen:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (cursor, next(self._tie), fut))
        self._has_waiters.set()
        try:
            await asyncio.wait_for(fut, self._timeout_s)
            return True
        except TimeoutError:
            return False

    async def poll_forever(self) -> None:
        """While anyone waits, read the checkpoint directly now and then."""
        while True:
            await self._has_waiters.wait()
            await asyncio.sleep(POLL_S)
            self._waiting = [w for w in self._waiting if not w[2].done()]
            heapq.heapify(self._waiting)
            if not self._waiting:
                self._has_waiters.clear()
                continue
            try:
                row = await self._pool.fetchrow("SELECT txid, position FROM checkpoints WHERE name = $1",
                                                self._checkpoint)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.debug("consistency poll failed: %r", e)
                continue
            if row is not None:
                self.advance(Cursor(row[0], row[1]))
