"""make_app(settings): resources opened in cleanup_ctx order (closed in reverse), middlewares, routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from shared.apikeys import ensure_key
from shared.budgets import Budgets
from shared.bus import open_bus
from shared.config import Settings
from shared.consistency import ConsistencyWaiter
from shared.db import open_pool
from shared.deltas import RetainedReads
from shared.observability import add_probe_routes
from shared.relay import Relay
from shared.repository import Repository
from shared.state import AssistantState, ThreadState, evolve, evolve_assistant
from shared.store import EventStore

from . import console
from .auth import PrincipalCache
from .errors import Handler, errors_as_json
from .idempotency import IdempotencyKeys
from .keys import (
    ASSISTANTS,
    BUDGETS,
    BUS,
    CONSISTENCY,
    IDEMPOTENCY,
    METRICS,
    POOL,
    PRINCIPALS,
    QUERIES,
    RATE_LIMITER,
    RETAINED,
    SETTINGS,
    STORE,
    THREADS,
)
from .limits import RateLimiter
from .metrics import GatewayMetrics
from .middlewares import (
    audit_admin_reads,
    authenticate,
    cors,
    idempotency,
    rate_limit,
    refuse_nul,
    request_ids,
)
from .queries import Queries
from .routes import assistants, conversations, history, messages, responses, runs, streams, threads, usage

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024


async def database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_pool(settings.database_url, size=settings.db_pool_size) as pool:
        app[POOL] = pool
        app[STORE] = EventStore(pool)
        app[QUERIES] = Queries(pool)
        app[PRINCIPALS] = PrincipalCache(pool)
        app[IDEMPOTENCY] = IdempotencyKeys(pool)
        app[BUDGETS] = Budgets(pool)
        app[THREADS] = Repository(app[STORE], lambda i: ThreadState(thread_id=i), evolve, app[METRICS])
        app[ASSISTANTS] = Repository(app[STORE], lambda i: AssistantState(assistant_id=i), evolve_assistant,
                                     app[METRICS])
        if settings.api_key:
            await ensure_key(pool, settings.api_key)
        yield


async def message_bus(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_bus(settings.nats_url, settings.nats_prefix, name="gateway",
                        replicas=settings.nats_replicas) as bus:
        app[BUS] = bus
        app[RETAINED] = RetainedReads(bus)
        yield


async def consistency(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    waiter = ConsistencyWaiter(app[POOL], settings.projector_partitions, settings.consistency_wait_ms / 1000)
    app[CONSISTENCY] = waiter
    await app[BUS].on_nudge(app[BUS].subjects.projected, waiter.on_projected)
    task = asyncio.create_task(waiter.poll_forever(), name="consistency-poll")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def outbox_relay(app: web.Application) -> AsyncIterator[None]:
    stop = asyncio.Event()
    settings = app[SETTINGS]
    relay = Relay(settings.leader_database_url or settings.database_url, app[POOL], app[STORE], app[BUS])
    task = asyncio.create_task(relay.run(stop), name="outbox-relay")
    yield
    stop.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        metrics = request.app[METRICS]
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)


def make_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[request_ids, observe, errors_as_json, refuse_nul, cors, authenticate, rate_limit, idempotency,
                     audit_admin_reads],
        client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[METRICS] = GatewayMetrics()
    app[RATE_LIMITER] = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    app.cleanup_ctx.extend([database, message_bus, consistency, outbox_relay])

    async def ready() -> bool:
        try:
            await app[POOL].fetchval("SELECT 1")
        except Exception:
            return False
        return app[BUS].connected

    add_probe_routes(app, app[METRICS].registry, ready)
    # /v1/threads/runs must come before /v1/threads/{thread_id}: aiohttp matches in registration order.
    for module in (runs, streams, history, threads, messages, assistants, usage, conversations, responses):
        app.add_routes(module.routes)
    app.add_routes(console.routes)  # the operator console: /console (static shell) and /v1/console (its reads)
    return app
