"""Rebuilding read models from the log into a separate schema, and comparing them with the live ones.

The rebuild runs the very projection code the live projector runs, over the same gap-safe read of the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
from prometheus_client import CollectorRegistry

from shared.db import open_pool
from shared.store import EventStore

from .projections import READ_MODEL_TABLES
from .projections.catalog import project
from .runner import BATCH, Projector, ProjectorMetrics

Progress = Callable[[int], None]


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain identifier: {name!r}")
    return f'"{name}"'


async def create_shadow_schema(conn: asyncpg.Connection, schema: str) -> None:
    """An empty copy of every read-model table (and a checkpoints table) in `schema`."""
    s = _ident(schema)
    await conn.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}")
    for table in [*READ_MODEL_TABLES, "checkpoints"]:
        t = _ident(table)
        await conn.execute(f"CREATE TABLE {s}.{t} (LIKE public.{t} INCLUDING ALL)")


async def rebuild(database_url: str, schema: str, progress: Progress | None = None) -> int:
    """Replay the whole log into `schema`; returns the number of events applied."""
    conn = await asyncpg.connect(database_url)
    try:
        await create_shadow_schema(conn, schema)
    finally:
        await conn.close()
    url = database_url + ("&" if "?" in database_url else "?") + f"options=-csearch_path%3D{schema}%2Cpublic"
    async with open_pool(url, size=2) as pool:
        projector = Projector(database_url=url, pool=pool, store=EventStore(pool), bus=None, projection=project,
                              checkpoint="rebuild", metrics=ProjectorMetrics(CollectorRegistry()))
        from shared.checkpoints import load_checkpoint

        projector.cursor = await load_checkpoint(pool, "rebuild")
        total = 0
        while True:
            applied = await projector.step()
            total += applied
            if progress:
                progress(total)
            if applied < BATCH:
                return total


async def compare(database_url: str, schema: str) -> dict[str, int]:
    """Rows that differ between the live read models and those in `schema`, per table (0 everywhere: equal)."""
    conn = await asyncpg.connect(database_url)
    try:
        out: dict[str, int] = {}
        for table in READ_MODEL_TABLES:
            t, s = _ident(table), _ident(schema)
            out[table] = await conn.fetchval(
                f"SELECT count(*) FROM ((TABLE public.{t} EXCEPT ALL TABLE {s}.{t})"
                f" UNION ALL (TABLE {s}.{t} EXCEPT ALL TABLE public.{t})) d")
        return out
    finally:
        await conn.close()


def run(database_url: str, schema: str) -> dict[str, int]:
    asyncio.run(rebuild(database_url, schema))
    return asyncio.run(compare(database_url, schema))
