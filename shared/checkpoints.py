"""Followers' cursors in the global order, and single-leader election by advisory lock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from shared.store import Cursor

log = logging.getLogger(__name__)


async def load_checkpoint(conn: asyncpg.Pool | asyncpg.Connection, name: str) -> Cursor:
    await conn.execute("INSERT INTO checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name)
    row = await conn.fetchrow("SELECT txid, position FROM checkpoints WHERE name = $1", name)
    assert row is not None
    return Cursor(row[0], row[1])


async def save_checkpoint(conn: asyncpg.Pool | asyncpg.Connection, name: str, old: Cursor, new: Cursor) -> bool:
    """Move the cursor only from where we believe it is: False means another holder moved it."""
    result: str = await conn.execute(
        "UPDATE checkpoints SET txid = $4, position = $5, updated_at = now()"
        " WHERE name = $1 AND txid = $2 AND position = $3",
        name, old.txid, old.position, new.txid, new.position,
    )
    return result.endswith(" 1")


async def nap(wake: asyncio.Event, found: int, nudged: bool, *, idle_s: float, tries: list[int]) -> bool:
    """How a follower of the log waits after a read that found `found` events; returns whether it was nudged.

    A nudge that found nothing means an event was appended but is still hidden behind a transaction that is
    not finished (the gap-safe read stops at the oldest open one): look again in a few milliseconds rather
    than sleeping a whole idle period. `tries` counts those quick looks (reset when something is found).
    """
    if found:
        tries[0] = 0
        return nudged
    if nudged and tries[0] < 20:
        tries[0] += 1
        await asyncio.sleep(0.01)
        return True
    tries[0] = 0
    try:
        await asyncio.wait_for(wake.wait(), idle_s)
    except TimeoutError:
        return False
    return True


class Leadership:
    """Holds a session advisory lock on a dedicated connection; losing the connection loses the lead."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @property
    def held(self) -> bool:
        return not self._conn.is_closed()


@asynccontextmanager
async def lead(database_url: str, lock_id: int, *, retry_s: float = 1.0) -> AsyncIterator[Leadership]:
    """Wait until this process holds `lock_id`, then yield. Every other process waits its turn."""
    while True:
        try:
            conn = await asyncpg.connect(database_url, timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError) as e:
            log.warning("leader election: database unreachable (%s)", e.__class__.__name__)
            await asyncio.sleep(retry_s)
            continue
        try:
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_id):
                break
        except (OSError, asyncpg.PostgresError):
            pass
        await conn.close()
        await asyncio.sleep(retry_s)
    try:
        yield Leadership(conn)
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
