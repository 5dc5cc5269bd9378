"""python -m services.run_worker: carry out runs until SIGTERM (then drain in-flight runs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket

import uvloop
from prometheus_client import CollectorRegistry

from shared.budgets import Budgets
from shared.bus import open_bus
from shared.config import Settings
from shared.consistency import ConsistencyWaiter
from shared.db import open_pool
from shared.ids import new_id
from shared.observability import serve_probes, setup_logging
from shared.relay import Relay
from shared.repository import Repository
from shared.state import ThreadState, evolve
from shared.store import EventStore

from .deltas import NatsDeltas
from .executor import Executor
from .leases import Leases
from .llm import Model
from .worker import Worker, WorkerMetrics

log = logging.getLogger("run_worker")


async def main() -> None:
    settings = Settings.from_env()
    setup_logging("run_worker", settings.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    registry = CollectorRegistry()
    worker_id = f"{socket.gethostname()}-{os.getpid()}-{new_id('w')[-6:]}"
    model = Model(settings.openai_base_url, settings.openai_api_key)
    async with open_pool(settings.database_url, size=settings.db_pool_size) as pool, \
            open_bus(settings.nats_url, settings.nats_prefix, name=f"run_worker {worker_id}",
                     replicas=settings.nats_replicas) as bus:
        store = EventStore(pool)
        waiter = ConsistencyWaiter(pool, settings.projector_partitions, settings.consistency_wait_ms / 1000)
        await bus.on_nudge(bus.subjects.projected, waiter.on_projected)
        executor = Executor(pool=pool, threads=Repository(store, lambda i: ThreadState(thread_id=i), evolve),
                            model=model, leases=Leases(pool, settings.run_lease_ms), waiter=waiter, bus=bus,
                            deltas=NatsDeltas(bus), budgets=Budgets(pool), worker_id=worker_id,
                            lease_ms=settings.run_lease_ms, context_tokens=settings.context_tokens)
        worker = Worker(executor=executor, store=store, bus=bus, metrics=WorkerMetrics(registry),
                        concurrency=settings.worker_concurrency, lease_ms=settings.run_lease_ms,
                        max_deliver=settings.worker_max_deliver)
        relay = Relay(settings.leader_database_url or settings.database_url, pool, store, bus)

        async def ready() -> bool:
            return bus.connected and not pool._closed

        async with serve_probes(settings.host, settings.worker_port, registry, ready):
            log.info("run-worker ready", extra={"worker_id": worker_id, "model": settings.openai_base_url})
            background = [asyncio.create_task(waiter.poll_forever()), asyncio.create_task(relay.run(stop))]
            try:
                await worker.run(stop)
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                with contextlib.suppress(Exception):
                    await model.close()


if __name__ == "__main__":
    uvloop.run(main())
