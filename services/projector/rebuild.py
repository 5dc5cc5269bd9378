"""Rebuilding every read model from the log into a shadow schema, comparing, and swapping it in.

The rebuild runs the very projection code the live projector runs, over the same gap-safe read of the log,
while the service keeps serving. It is resumable: the shadow schema keeps its own checkpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
import msgspec
from prometheus_client import CollectorRegistry

from shared.checkpoints import load_checkpoint
from shared.db import open_pool, read_models_sql
from shared.partitions import checkpoint_name
from shared.store import Cursor, EventStore

from .projections import READ_MODEL_TABLES
from .projections.catalog import project
from .runner import Projector, ProjectorMetrics

CHECKPOINT = "rebuild"
BATCH = 5000


class Progress(msgspec.Struct):
    done: int = 0
    total: int = 0
    resumed_at: int = 0  # events already applied by an interrupted rebuild
    started: float = msgspec.field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return (self.done - self.resumed_at) / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def seconds_left(self) -> float:
        return max(0, self.total - self.done) / self.rate if self.rate else 0.0


Report = Callable[[Progress], None]


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain identifier: {name!r}")
    return f'"{name}"'


def with_search_path(database_url: str, schema: str) -> str:
    return database_url + ("&" if "?" in database_url else "?") + f"options=-csearch_path%3D{schema}%2Cpublic"


async def create_shadow_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Empty read-model tables (same names and indexes as the live ones) and a checkpoints table in `schema`."""
    s = _ident(schema)
    async with conn.transaction():
        await conn.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}")
        await conn.execute(f"SET LOCAL search_path = {s}")
        await conn.execute(read_models_sql())
        await conn.execute(f"CREATE TABLE {s}.checkpoints (LIKE public.checkpoints INCLUDING ALL)")


async def shadow_exists(conn: asyncpg.Connection, schema: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT count(*) = $2 FROM information_schema.tables WHERE table_schema = $1 AND table_name = ANY($3)",
        schema, len(READ_MODEL_TABLES) + 1, [*READ_MODEL_TABLES, "checkpoints"]))


def shadow_checkpoint(index: int, count: int) -> str:
    return CHECKPOINT if count <= 1 else f"{CHECKPOINT}/{index}/{count}"


@asynccontextmanager
async def shadow_projectors(database_url: str, schema: str, partitions: int) -> AsyncIterator[list[Projector]]:
    """One shadow projector per live partition, so the shadow can stand exactly where each partition stands."""
    url = with_search_path(database_url, schema)
    count = max(1, partitions)
    async with open_pool(url, size=2) as pool:
        projectors = []
        for i in range(count):
            name = shadow_checkpoint(i, count)
            p = Projector(database_url=url, pool=pool, store=EventStore(pool), bus=None, projection=project,
                          checkpoint=name, metrics=ProjectorMetrics(CollectorRegistry()), batch=BATCH,
                          partition=(i, count))
            p.cursor = await load_checkpoint(pool, name)
            projectors.append(p)
        yield projectors


async def head(pool: asyncpg.Pool) -> Cursor:
    """The newest committed event's place in the global order (Cursor() for an empty log)."""
    row = await pool.fetchrow("SELECT txid, position FROM events ORDER BY txid DESC, position DESC LIMIT 1")
    return Cursor(row[0], row[1]) if row else Cursor()


async def catch_up(projector: Projector, until: Cursor | None = None, progress: Progress | None = None,
                   report: Report | None = None) -> None:
    """Apply events up to `until` (default: the head as it is now). A short page does not mean the end: the
    gap-safe read holds back rows behind any still-open transaction, so wait those out until the target."""
    target = until if until is not None else await head(projector.pool)
    while projector.cursor < target:
        applied = await projector.step(target)
        if progress is not None:
            progress.done += applied
            if report is not None:
                report(progress)
        if applied == 0:
            await asyncio.sleep(0.05)


async def rebuild(database_url: str, schema: str, *, fresh: bool = True, report: Report | None = None,
                  partitions: int = 1) -> Progress:
    """Replay the log into `schema` (resuming where a previous rebuild stopped unless `fresh`).

    Progress counts events read; with N partitions each partition reads the log once.
    """
    count = max(1, partitions)
    conn = await asyncpg.connect(database_url)
    try:
        if fresh or not await shadow_exists(conn, schema):
            await create_shadow_schema(conn, schema)
        progress = Progress(total=count * await conn.fetchval("SELECT count(*) FROM events"))
        for i in range(count):
            cursor = await conn.fetchrow(f"SELECT txid, position FROM {_ident(schema)}.checkpoints WHERE name = $1",
                                         shadow_checkpoint(i, count))
            if cursor is not None:
                progress.done += await conn.fetchval(
                    "SELECT count(*) FROM events WHERE (txid, position) <= ($1, $2)", cursor[0], cursor[1])
        progress.resumed_at = progress.done
    finally:
        await conn.close()
    async with shadow_projectors(database_url, schema, count) as projectors:
        progress.started = time.monotonic()
        for projector in projectors:
            await catch_up(projector, None, progress, report)
    return progress


async def compare(database_url: str, schema: str, partitions: int = 1) -> dict[str, int]:
    """Rows that differ between the live read models and those in `schema`, per table (all 0: equal).

    Each shadow partition is first brought to exactly its live checkpoint, the live tables locked against writes.
    """
    count = max(1, partitions)
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            tables = ", ".join(f"public.{_ident(t)}" for t in READ_MODEL_TABLES)
            await conn.execute(f"LOCK TABLE {tables} IN SHARE MODE")
            async with shadow_projectors(database_url, schema, count) as projectors:
                for i, projector in enumerate(projectors):
                    live = await conn.fetchrow("SELECT txid, position FROM public.checkpoints WHERE name = $1",
                                               checkpoint_name(i, count))
                    if live is not None:
                        await catch_up(projector, Cursor(live[0], live[1]))
            out: dict[str, int] = {}
            for table in READ_MODEL_TABLES:
                t, s = _ident(table), _ident(schema)
                out[table] = await conn.fetchval(
                    f"SELECT count(*) FROM ((TABLE public.{t} EXCEPT ALL TABLE {s}.{t})"
                    f" UNION ALL (TABLE {s}.{t} EXCEPT ALL TABLE public.{t})) d")
            return out
    finally:
        await conn.close()


async def swap(database_url: str, schema: str, partitions: int = 1) -> Cursor:
    """Make the rebuilt tables the live ones, atomically; the live projectors continue from their checkpoints."""
    retired = f"{schema}_retired"
    count = max(1, partitions)
    conn = await asyncpg.connect(database_url)
    try:
        async with shadow_projectors(database_url, schema, count) as projectors:
            for projector in projectors:
                await catch_up(projector)
            async with conn.transaction():
                tables = ", ".join(f"public.{_ident(t)}" for t in READ_MODEL_TABLES)
                await conn.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
                for projector in projectors:
                    await catch_up(projector)  # what landed meanwhile
                s, r = _ident(schema), _ident(retired)
                await conn.execute(f"DROP SCHEMA IF EXISTS {r} CASCADE; CREATE SCHEMA {r}")
                for table in READ_MODEL_TABLES:
                    t = _ident(table)
                    await conn.execute(f"ALTER TABLE public.{t} SET SCHEMA {r}")
                    await conn.execute(f"ALTER TABLE {s}.{t} SET SCHEMA public")
                # The live projectors' next guarded checkpoint updates fail; they re-read these and go on.
                for i, projector in enumerate(projectors):
                    await conn.execute(
                        "INSERT INTO public.checkpoints (name, txid, position) VALUES ($1, $2, $3)"
                        " ON CONFLICT (name) DO UPDATE SET txid = $2, position = $3, updated_at = now()",
                        checkpoint_name(i, count), projector.cursor.txid, projector.cursor.position)
                cursor = min(p.cursor for p in projectors)
        for name in (retired, schema):
            await conn.execute(f"DROP SCHEMA IF EXISTS {_ident(name)} CASCADE")
        return cursor
    finally:
        await conn.close()
