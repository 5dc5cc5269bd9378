"""Real PostgreSQL and NATS for the tests: the configured ones, or embedded servers started once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.db import apply_schema
from threadlog.devenv import EmbeddedNats, EmbeddedPostgres
from threadlog.stack import Stack


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@dataclass
class Infra:
    database_url: str  # the server's maintenance database: tests create their own next to it
    nats_url: str
    work_dir: Path
    databases: list[str] = field(default_factory=list)

    def new_database(self) -> str:
        """A fresh database with the schema applied; dropped at the end of the session."""
        name = "tl_test_" + secrets.token_hex(6)

        async def create() -> None:
            conn = await asyncpg.connect(self.database_url)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
            await apply_schema(with_database(self.database_url, name))

        asyncio.run(create())
        self.databases.append(name)
        return with_database(self.database_url, name)

    def drop_databases(self) -> None:
        async def drop() -> None:
            conn = await asyncpg.connect(self.database_url)
            try:
                for name in self.databases:
                    with contextlib.suppress(asyncpg.PostgresError):
                        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())

    def new_stack(self, name: str, *, database_url: str | None = None, nats_url: str | None = None,
                  workers: int = 1, projectors: int = 1, extra_env: dict[str, str] | None = None) -> Stack:
        return Stack(database_url=database_url or self.new_database(), nats_url=nats_url or self.nats_url,
                     log_dir=self.work_dir / name, api_key="tl-test-" + secrets.token_hex(8),
                     nats_prefix="t" + secrets.token_hex(5), workers=workers, projectors=projectors,
                     extra_env=extra_env)


@contextlib.contextmanager
def open_infra() -> Iterator[Infra]:
    base = Path(tempfile.mkdtemp(prefix="threadlog-test-"))
    postgres = nats = None
    database_url = os.environ.get("DATABASE_URL")
    nats_url = os.environ.get("NATS_URL")
    try:
        if not database_url:
            postgres = EmbeddedPostgres(base / "postgres")
            database_url = postgres.start()
        if not nats_url:
            nats = EmbeddedNats(base / "nats")
            nats_url = nats.start()
        infra = Infra(database_url, nats_url, base)
        yield infra
        infra.drop_databases()
    finally:
        if nats:
            nats.stop()
        if postgres:
            postgres.stop()
