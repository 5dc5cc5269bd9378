"""The servers a benchmark run uses: embedded PostgreSQL and NATS in a fresh temp folder (or DATABASE_URL /
NATS_URL), a fresh database per stack, and threadlog stacks started with rate limiting off."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.db import apply_schema
from threadlog.devenv import EmbeddedNats, EmbeddedPostgres
from threadlog.stack import Stack

# What every stack of the benchmark runs with: no per-key rate limit (the load is one key), quiet logs.
STACK_ENV = {"THREADLOG_RATE_LIMIT_PER_S": "0", "THREADLOG_LOG_LEVEL": "WARNING"}


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


class Progress:
    """One line per step, with the time since the run started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)


class BenchEnv:
    def __init__(self, database_url: str, nats_url: str, work_dir: Path, progress: Progress) -> None:
        self.database_url = database_url  # the server's maintenance database
        self.nats_url = nats_url
        self.work_dir = work_dir
        self.step = progress
        self.embedded = False

    def process_roots(self) -> list[int]:
        """The roots of the benchmark's process trees: this process, and the PostgreSQL server it started."""
        roots = [os.getpid()]
        pid_file = self.work_dir / "postgres" / "pgdata" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            roots.append(int(pid_file.read_text().split()[0]))
        return roots

    def new_database(self, prefix: str, *, schema: bool = True) -> str:
        name = f"bench_{prefix}_{secrets.token_hex(4)}"

        async def create() -> None:
            conn = await asyncpg.connect(self.database_url)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
            if schema:
                await apply_schema(with_database(self.database_url, name))

        asyncio.run(create())
        return with_database(self.database_url, name)

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")

        async def drop() -> None:
            conn = await asyncpg.connect(self.database_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        with contextlib.suppress(OSError, asyncpg.PostgresError):
            asyncio.run(drop())

    @contextlib.contextmanager
    def stack(self, name: str, *, extra_env: Mapping[str, str] | None = None) -> Iterator[Stack]:
        """A running threadlog (gateway, projector, run-worker, offline model) on a database of its own."""
        self.step(f"{name}: starting a threadlog stack")
        url = self.new_database(name)
        stack = Stack(database_url=url, nats_url=self.nats_url, log_dir=self.work_dir / name,
                      api_key="tl-bench-" + secrets.token_hex(8), nats_prefix="b" + secrets.token_hex(5),
                      extra_env={**STACK_ENV, **(extra_env or {})})
        started = time.monotonic()
        stack.start()
        self.step(f"{name}: stack up in {time.monotonic() - started:.1f}s (gateway {stack.base_url})")
        try:
            yield stack
        finally:
            stack.stop()
            self.drop_database(url)


@contextlib.contextmanager
def open_env(progress: Progress) -> Iterator[BenchEnv]:
    base = Path(tempfile.mkdtemp(prefix="threadlog-bench-"))
    postgres = nats = None
    database_url = os.environ.get("DATABASE_URL")
    nats_url = os.environ.get("NATS_URL")
    try:
        if not database_url:
            progress(f"starting embedded PostgreSQL under {base}")
            postgres = EmbeddedPostgres(base / "postgres")
            database_url = postgres.start()
        if not nats_url:
            nats = EmbeddedNats(base / "nats")
            nats_url = nats.start()
            progress(f"embedded NATS at {nats_url}")
        env = BenchEnv(database_url, nats_url, base, progress)
        env.embedded = postgres is not None
        yield env
    finally:
        if nats:
            nats.stop()
        if postgres:
            postgres.stop()
        if os.environ.get("BENCH_KEEP"):  # the services' logs, for a post-mortem
            shutil.rmtree(base / "postgres", ignore_errors=True)
            progress(f"kept the logs in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def database_url(stack: Stack) -> str:
    return stack.env["DATABASE_URL"]


def service_pids(stack: Stack) -> dict[str, int]:
    """The stack's Python processes (the offline model aside), for CPU time per request."""
    out = {}
    for service in (stack.gateway, stack.projector, *stack.workers):
        if service.process is not None:
            out[service.name] = service.process.pid
    return out
