"""python -m services.run_worker: consume run events until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import nats.errors
import uvloop
from prometheus_client import CollectorRegistry, Counter

from shared.bus import open_bus
from shared.config import Settings
from shared.db import open_pool
from shared.observability import serve_probes, setup_logging

log = logging.getLogger("run_worker")


async def main() -> None:
    settings = Settings.from_env()
    setup_logging("run_worker", settings.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    registry = CollectorRegistry()
    deliveries = Counter("threadlog_worker_deliveries_total", "Run events delivered", registry=registry)
    async with open_pool(settings.database_url, size=4) as pool, \
            open_bus(settings.nats_url, settings.nats_prefix, name="run_worker") as bus:

        async def ready() -> bool:
            return bus.connected and not pool._closed

        sub = await bus.pull("run-worker", [bus.subjects.event("thread.run.queued")])
        async with serve_probes(settings.host, settings.worker_port, registry, ready):
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(batch=16, timeout=1.0)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                for m in msgs:
                    deliveries.inc()
                    with contextlib.suppress(nats.errors.Error):
                        await m.ack()


if __name__ == "__main__":
    uvloop.run(main())
