"""Scenario 3, the read path: list messages (limit 20, default order) of a thread of 10 messages and of one of
100,000, at concurrency 1 and 16, against a bare aiohttp handler doing the same indexed SELECT of 20 rows of
threadlog's `messages` read model on the same PostgreSQL. The cost must not grow with the thread's length.

The big thread is written straight to the log (EventStore.append, batches of 2,000 MessageCreated events);
its read model is built by the running projector, as any write's would be.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from shared.db import open_pool
from shared.events import MessageCreated, TextBlock, TextValue
from shared.ids import new_event_id, new_id
from shared.store import Cursor, EventStore, NewEvent
from threadlog.stack import Stack

from .api import root_url, sdk
from .drive import auth_headers, baseline_server, http_load
from .env import BenchEnv, database_url, service_pids
from .loadgen import HttpResult, HttpSpec, Op
from .results import Figure, Findings

NAME = "read"
SMALL, BIG = 10, 100_000
BATCH = 2_000
CONCURRENCIES = (1, 16)
DURATION_S = 4.0


async def fill(url: str, thread_id: str, count: int) -> tuple[Cursor, float]:
    """Append `count` user messages to `thread_id`; returns the last event's cursor and the append rate."""
    async with open_pool(url, size=2) as pool:
        store = EventStore(pool)
        row = await pool.fetchrow("SELECT tenant_id, max(stream_version) FROM events WHERE stream_id = $1"
                                  " GROUP BY tenant_id", thread_id)
        tenant, version = row[0], row[1]
        now = int(time.time())
        started = time.perf_counter()
        cursor = Cursor()
        for done in range(0, count, BATCH):
            events = [NewEvent(event=MessageCreated(
                thread_id=thread_id, message_id=new_id("msg"), created_at=now, role="user",
                content=[TextBlock(text=TextValue(value=f"Message {done + i}: a short line of benchmark text."))]),
                event_id=new_event_id()) for i in range(min(BATCH, count - done))]
            result = await store.append(thread_id, version, events, tenant_id=tenant)
            version, cursor = result.version, result.cursor
        return cursor, count / (time.perf_counter() - started)


async def wait_projected(url: str, cursor: Cursor, timeout_s: float = 180.0) -> None:
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            row = await conn.fetchrow("SELECT txid, position FROM checkpoints WHERE name = 'read_models'")
            if row is not None and Cursor(row[0], row[1]) >= cursor:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"projector did not reach {cursor} within {timeout_s}s")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


def build(env: BenchEnv, stack: Stack) -> tuple[str, str]:
    client = sdk(stack)
    small = client.beta.threads.create(
        messages=[{"role": "user", "content": f"Message {i}: a short line."} for i in range(SMALL)]).id
    big = client.beta.threads.create().id
    env.step(f"{NAME}: appending {BIG:,} messages to one thread (EventStore.append, batches of {BATCH:,})")
    url = database_url(stack)
    cursor, rate = asyncio.run(fill(url, big, BIG))
    env.step(f"{NAME}:   appended at {rate:,.0f} events/s; waiting for the projector")
    started = time.perf_counter()
    asyncio.run(wait_projected(url, cursor))
    env.step(f"{NAME}:   projector caught up in {time.perf_counter() - started:.1f}s "
             f"(~{BIG / (time.perf_counter() - started):,.0f} events/s, live projector beside the sealer)")
    return small, big


def spec(base: str, headers: dict[str, str], path: str, concurrency: int) -> HttpSpec:
    return HttpSpec(base=base, headers=headers, concurrency=concurrency, duration_s=DURATION_S,
                    clients=[[Op("list", "GET", path)]])


def run(env: BenchEnv) -> Findings:
    found = Findings()
    results: dict[tuple[str, int], tuple[HttpResult, HttpResult]] = {}
    with env.stack(NAME) as stack:
        small, big = build(env, stack)
        with baseline_server(database_url(stack), env.work_dir / NAME) as baseline:
            for label, thread_id in (("10", small), ("100k", big)):
                for c in CONCURRENCIES:
                    env.step(f"{NAME}: list messages of the {label}-message thread, concurrency {c}")
                    ours = http_load(spec(root_url(stack), auth_headers(stack.api_key),
                                          f"/v1/threads/{thread_id}/messages?limit=20", c), service_pids(stack))
                    base = http_load(spec(baseline.url, auth_headers("none"), f"/messages/{thread_id}", c),
                                     {"baseline": baseline.pid})
                    env.step(f"{NAME}:   threadlog p50 {ours.total.p50_ms:.2f} ms p99 {ours.total.p99_ms:.2f} ms "
                             f"({ours.total.per_s:,.0f}/s); baseline p50 {base.total.p50_ms:.2f} ms "
                             f"p99 {base.total.p99_ms:.2f} ms ({base.total.per_s:,.0f}/s)")
                    results[(label, c)] = (ours, base)
                    params = {"thread_messages": SMALL if label == "10" else BIG, "concurrency": c, "limit": 20,
                              "duration_s": DURATION_S}
                    extra = {"threadlog_per_s": ours.total.per_s, "baseline_per_s": base.total.per_s,
                             "errors": ours.total.errors + base.total.errors}
                    name, baseline_name = f"list 20 of {label} msgs c={c}", "bare aiohttp + same indexed SELECT"
                    found.figures += [
                        Figure(scenario=NAME, name=f"{name} p50", unit="ms", value=ours.total.p50_ms,
                               baseline=base.total.p50_ms, baseline_name=baseline_name, better="lower",
                               params=params, extra=extra),
                        Figure(scenario=NAME, name=f"{name} p99", unit="ms", value=ours.total.p99_ms,
                               baseline=base.total.p99_ms, baseline_name=baseline_name, better="lower",
                               params=params)]
                    if ours.total.errors or base.total.errors:
                        found.notes.append(f"{name}: errors {ours.error_samples + base.error_samples}")
    for c in CONCURRENCIES:
        (o_small, b_small), (o_big, b_big) = results[("10", c)], results[("100k", c)]
        growth = o_big.total.p50_ms / o_small.total.p50_ms
        base_growth = b_big.total.p50_ms / b_small.total.p50_ms
        found.figures.append(Figure(
            scenario=NAME, name=f"p50 growth 100k/10 msgs c={c}", unit="x", value=round(growth, 3),
            baseline=round(base_growth, 3), baseline_name="same growth of the bare SELECT", better="lower",
            params={"concurrency": c}))
    return found
