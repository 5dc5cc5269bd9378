"""python -m services.projector: follow the log and keep the read models current until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import nats.errors
import uvloop
from prometheus_client import CollectorRegistry

from shared.bus import Bus, open_bus
from shared.config import Settings
from shared.consistency import READ_MODELS
from shared.db import open_pool
from shared.observability import serve_probes, setup_logging
from shared.store import EventStore

from .projections.catalog import project
from .runner import Projector, ProjectorMetrics
from .sealer import Sealer

log = logging.getLogger("projector")
CHECKPOINT = READ_MODELS


async def consume_nudges(bus: Bus, projector: Projector, stop: asyncio.Event) -> None:
    """The durable consumer: every delivered event nudges the projector, then is acked (the log is the truth)."""
    sub = await bus.pull("projector", [bus.subjects.all_events])
    while not stop.is_set():
        try:
            msgs = await sub.fetch(batch=256, timeout=1.0)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        except nats.errors.Error:
            await asyncio.sleep(0.5)
            continue
        projector.wake.set()
        for m in msgs:
            with contextlib.suppress(nats.errors.Error):
                await m.ack()


async def main() -> None:
    settings = Settings.from_env()
    setup_logging("projector", settings.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    registry = CollectorRegistry()
    async with open_pool(settings.database_url, size=4) as pool, \
            open_bus(settings.nats_url, settings.nats_prefix, name="projector") as bus:
        projector = Projector(database_url=settings.database_url, pool=pool, store=EventStore(pool), bus=bus,
                              projection=project, checkpoint=CHECKPOINT, metrics=ProjectorMetrics(registry))

        async def ready() -> bool:
            return bus.connected and not pool._closed

        sealer = Sealer(settings.database_url, pool, EventStore(pool))

        async def on_appended(_: object) -> None:
            projector.wake.set()
            sealer.wake.set()

        await bus.on_nudge(bus.subjects.appended, on_appended)
        async with serve_probes(settings.host, settings.projector_port, registry, ready):
            tasks = [asyncio.create_task(projector.run(stop), name="projector"),
                     asyncio.create_task(sealer.run(stop), name="sealer"),
                     asyncio.create_task(consume_nudges(bus, projector, stop), name="nudges")]
            await stop.wait()
            log.info("projector: stopping")
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    uvloop.run(main())
