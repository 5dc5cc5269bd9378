"""The PostgreSQL pool as an async context manager, and applying the schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

import asyncpg

# What a lost or restarting database looks like to asyncpg: a follower retries, a request answers 503.
# (InternalClientError: a pooled connection the server closed mid-operation.)
DATABASE_ERRORS = (TimeoutError, OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
                   asyncpg.InterfaceError, asyncpg.InternalClientError)

# Keep transactions short: an open transaction holds back every reader of the global order (store.py).
SERVER_SETTINGS = {"idle_in_transaction_session_timeout": "10000", "statement_timeout": "30000"}
# Serialises concurrent schema application by several processes starting at once.
SCHEMA_LOCK_ID = 7_245_001


@asynccontextmanager
async def open_pool(database_url: str, *, size: int = 10, min_size: int = 1) -> AsyncIterator[asyncpg.Pool]:
    """A pool whose connections fail fast when PostgreSQL is unreachable, instead of hanging."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min(min_size, size),
        max_size=size,
        server_settings=SERVER_SETTINGS,
        timeout=5,
        command_timeout=30,
    )
    try:
        yield pool
    finally:
        await pool.close()


def schema_sql() -> str:
    return resources.files("shared").joinpath("schema.sql").read_text()


def read_models_sql() -> str:
    return resources.files("shared").joinpath("read_models.sql").read_text()


async def apply_schema(database_url: str) -> None:
    """Create or upgrade every table; safe to run from several processes at once."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK_ID)
            await conn.execute(schema_sql())
            await conn.execute(read_models_sql())
    finally:
        await conn.close()
