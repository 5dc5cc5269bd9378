"""The sealer: extends the hash chain over the log, off the write path, in the gap-safe global order.

One leader at a time (its own advisory lock); chain rows and its checkpoint commit in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
import msgspec

from shared.chain import GENESIS, event_hash, link, payload_hash
from shared.checkpoints import lead, load_checkpoint, save_checkpoint
from shared.db import DATABASE_ERRORS
from shared.store import EventStore

log = logging.getLogger(__name__)
SEALER_LOCK_ID = 7_245_004
CHECKPOINT = "audit_chain"
BATCH = 2000


class Sealer:
    def __init__(self, database_url: str, pool: asyncpg.Pool, store: EventStore) -> None:
        self._database_url = database_url
        self._pool = pool
        self._store = store
        self.wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with lead(self._database_url, SEALER_LOCK_ID) as leadership:
                    while leadership.held and not stop.is_set():
                        self.wake.clear()
                        if await self.step() < BATCH:
                            with contextlib.suppress(asyncio.TimeoutError):
                                await asyncio.wait_for(self.wake.wait(), 1.0)
            except (*DATABASE_ERRORS, asyncpg.PostgresError) as e:
                log.warning("sealer: %s: %s; retrying", e.__class__.__name__, e)
                await asyncio.sleep(0.5)

    async def step(self) -> int:
        cursor = await load_checkpoint(self._pool, CHECKPOINT)
        batch = await self._store.read_all(cursor, BATCH)
        if not batch:
            return 0
        head = await self._pool.fetchrow("SELECT seq, chain_hash FROM event_chain ORDER BY seq DESC LIMIT 1")
        seq, previous = (head[0], bytes(head[1])) if head else (0, GENESIS)
        rows = []
        for record in batch:
            digest = payload_hash(record.payload)
            previous = link(previous, event_hash(msgspec.structs.asdict(record), digest))
            seq += 1
            rows.append((seq, record.position, digest, previous))
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table("event_chain", records=rows,
                                             columns=["seq", "position", "payload_hash", "chain_hash"])
            if not await save_checkpoint(conn, CHECKPOINT, cursor, batch[-1].cursor):
                raise asyncpg.InterfaceError("chain checkpoint moved by another sealer")
        return len(batch)
