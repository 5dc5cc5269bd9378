"""Scenario 5, replay: a log of 1,000,000 events (COPY of Codec-encoded ThreadCreated + MessageCreated events,
10,000 threads of 100) read back, rebuilt and sealed, each rate beside the raw read rate of the same rows from
PostgreSQL in the same run (a plain keyset SELECT ordered by position, pages of 10,000).

rebuild() and the sealer are capped in time; their rate is over the part done (the log is uniform).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import msgspec

from services.projector.rebuild import Progress, rebuild
from services.projector.sealer import Sealer
from shared.chain import verify
from shared.db import open_pool
from shared.events import Codec, MessageCreated, TextBlock, TextValue, ThreadCreated
from shared.store import Cursor, EventStore

from .env import BenchEnv
from .results import Figure, Findings

NAME = "replay"
EVENTS = 1_000_000
PER_THREAD = 100
CHUNK = 50_000
PAGE = 10_000
REBUILD_CAP_S = 30.0
SEAL_CAP_S = 10.0
TENANT = "proj_bench"
COLUMNS = ["stream_id", "stream_version", "event_id", "event_type", "schema_version", "tenant_id", "payload"]
SELECT = """SELECT position, txid, stream_id, stream_version, event_id, event_type, schema_version, tenant_id,
                   payload, recorded_at, correlation_id, causation_id, redacted
            FROM events WHERE position > $1 ORDER BY position LIMIT $2"""

Row = tuple[str, int, uuid.UUID, str, int, str, bytes]


class Payloads:
    """Codec.encode output for the log's events, filled into templates the Codec itself wrote (checked against a
    real encode every 10,000 events): a million Structs encoded one by one would take most of the time here."""

    def __init__(self, codec: Codec, now: int) -> None:
        self.codec, self.now = codec, now
        self.thread = codec.encode(self.thread_created("@T@"))
        self.message = codec.encode(self.message_created("@T@", "@M@", "@V@"))

    def thread_created(self, thread_id: str) -> ThreadCreated:
        return ThreadCreated(thread_id=thread_id, created_at=self.now)

    def message_created(self, thread_id: str, message_id: str, text: str) -> MessageCreated:
        return MessageCreated(thread_id=thread_id, message_id=message_id, created_at=self.now, role="user",
                              content=[TextBlock(text=TextValue(value=text))])

    def rows(self, start: int, count: int) -> list[Row]:
        """Events start..start+count of the log: thread k holds events k*100+1 .. k*100+100."""
        out: list[Row] = []
        for n in range(start, start + count):
            thread, version = divmod(n, PER_THREAD)
            thread_id = f"thread_bench{thread:08d}"
            if version == 0:
                payload, kind = self.thread.replace(b"@T@", thread_id.encode()), "thread.created"
                check: ThreadCreated | MessageCreated = self.thread_created(thread_id)
            else:
                message_id, text = f"msg_bench{n:010d}", f"Benchmark message {version}."
                payload = (self.message.replace(b"@T@", thread_id.encode()).replace(b"@M@", message_id.encode())
                           .replace(b"@V@", text.encode()))
                kind = "thread.message.created"
                check = self.message_created(thread_id, message_id, text)
            if n % 10_000 in (0, 1) and payload != self.codec.encode(check):
                raise AssertionError(f"template payload differs from Codec.encode at event {n}")
            out.append((thread_id, version + 1, uuid.UUID(int=n + 1), kind, 1, TENANT, payload))
        return out


async def load(url: str) -> float:
    payloads = Payloads(Codec(), int(time.time()))
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        for start in range(0, EVENTS, CHUNK):
            await conn.copy_records_to_table("events", records=payloads.rows(start, CHUNK), columns=COLUMNS)
        seconds = time.perf_counter() - started
        # Hint bits, visibility map and a warm cache (heap and both read indexes): the reads start on equal terms.
        await conn.execute("VACUUM ANALYZE events")
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            await conn.fetchval("SELECT count(*) FROM events WHERE position > 0")
            await conn.fetchval("SELECT count(*) FROM events WHERE (txid, position) > (0, 0)")
        return EVENTS / seconds
    finally:
        await conn.close()


async def plain_read(url: str) -> float:
    conn = await asyncpg.connect(url)
    try:
        started, after, count = time.perf_counter(), 0, 0
        while page := await conn.fetch(SELECT, after, PAGE):
            count += len(page)
            after = page[-1][0]
        return count / (time.perf_counter() - started)
    finally:
        await conn.close()


async def store_read(url: str) -> tuple[float, float]:
    """read_all's rate, and its rate with every payload decoded (EventStore.load), from one pass."""
    async with open_pool(url, size=1) as pool:
        store = EventStore(pool)
        started, cursor, count, decoding = time.perf_counter(), Cursor(), 0, 0.0
        while page := await store.read_all(cursor, PAGE):
            t = time.perf_counter()
            for record in page:
                store.load(record)
            decoding += time.perf_counter() - t
            count += len(page)
            cursor = page[-1].cursor
        total = time.perf_counter() - started
        return count / (total - decoding), count / total


class Capped(msgspec.Struct):
    done: int
    total: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


async def capped_rebuild(url: str) -> Capped:
    latest = Progress()

    def report(progress: Progress) -> None:
        nonlocal latest
        latest = progress

    with contextlib.suppress(TimeoutError):
        latest = await asyncio.wait_for(rebuild(url, "bench_shadow", report=report), REBUILD_CAP_S)
    return Capped(done=latest.done - latest.resumed_at, total=latest.total, seconds=latest.elapsed)


async def seal_and_verify(url: str) -> tuple[float, float, int]:
    async with open_pool(url, size=2) as pool:
        sealer = Sealer(url, pool, EventStore(pool))
        started, sealed = time.perf_counter(), 0
        while time.perf_counter() - started < SEAL_CAP_S and (n := await sealer.step()):
            sealed += n
        seal_rate = sealed / (time.perf_counter() - started)
        async with pool.acquire() as conn:
            started = time.perf_counter()
            report = await verify(conn)
            verify_rate = report.checked / (time.perf_counter() - started)
        if not report.ok:
            raise RuntimeError(f"verify found problems: {report.problems[:3]}")
    return seal_rate, verify_rate, sealed


def timed(env: BenchEnv, what: str, job: Callable[[], Coroutine[Any, Any, float]]) -> float:
    env.step(f"{NAME}: {what}")
    value = asyncio.run(job())
    env.step(f"{NAME}:   {value:,.0f} events/s")
    return value


def run(env: BenchEnv) -> Findings:
    found = Findings()
    url = env.new_database(NAME)
    try:
        copy_rate = timed(env, f"COPY {EVENTS:,} events into the log (then VACUUM ANALYZE)", lambda: load(url))
        raw = timed(env, f"plain keyset SELECT by position, pages of {PAGE:,}", lambda: plain_read(url))
        env.step(f"{NAME}: EventStore.read_all, pages of {PAGE:,}, decoding every payload (timed apart)")
        read_all, decoded = asyncio.run(store_read(url))
        env.step(f"{NAME}:   read_all {read_all:,.0f} events/s; with decoding {decoded:,.0f} events/s")
        env.step(f"{NAME}: rebuild() into a shadow schema (capped at {REBUILD_CAP_S:.0f}s)")
        progress = asyncio.run(capped_rebuild(url))
        env.step(f"{NAME}:   {progress.rate:,.0f} events/s ({progress.done:,} of {progress.total:,} in "
                 f"{progress.seconds:.1f}s; the whole log would take ~{progress.total / progress.rate:.0f}s)")
        env.step(f"{NAME}: sealing the hash chain (capped at {SEAL_CAP_S:.0f}s), then verifying it")
        seal_rate, verify_rate, sealed = asyncio.run(seal_and_verify(url))
        env.step(f"{NAME}:   seal {seal_rate:,.0f} events/s ({sealed:,} sealed), verify {verify_rate:,.0f} events/s")
    finally:
        env.drop_database(url)
    params = {"events": EVENTS, "threads": EVENTS // PER_THREAD, "page": PAGE}
    baseline_name = "plain keyset SELECT (asyncpg, same rows)"
    found.figures += [
        Figure(scenario=NAME, name="rebuild() throughput", unit="events/s", value=round(progress.rate),
               baseline=round(raw), baseline_name=baseline_name,
               params={**params, "cap_s": REBUILD_CAP_S, "rebuilt": progress.done},
               extra={"elapsed_s": round(progress.seconds, 1),
                      "projected_full_s": round(progress.total / progress.rate), "read_all_per_s": round(read_all),
                      "ratio_vs_read_all": round(progress.rate / read_all, 4)}),
        Figure(scenario=NAME, name="EventStore.read_all", unit="events/s", value=round(read_all), baseline=round(raw),
               baseline_name=baseline_name, params=params),
        Figure(scenario=NAME, name="read_all + decode payloads", unit="events/s", value=round(decoded),
               baseline=round(raw), baseline_name=baseline_name, params=params),
        Figure(scenario=NAME, name="seal hash chain", unit="events/s", value=round(seal_rate), baseline=round(raw),
               baseline_name=baseline_name, params={**params, "cap_s": SEAL_CAP_S, "sealed": sealed}),
        Figure(scenario=NAME, name="audit verify (chain.verify)", unit="events/s", value=round(verify_rate),
               baseline=round(raw), baseline_name=baseline_name, params={**params, "verified": sealed}),
    ]
    found.notes.append(f"log written by COPY at {copy_rate:,.0f} events/s")
    if progress.done < progress.total:
        found.notes.append(f"rebuild stopped at the {REBUILD_CAP_S:.0f}s cap after {progress.done:,} events; "
                           f"all {progress.total:,} would take ~{progress.total / progress.rate:.0f}s")
    return found
