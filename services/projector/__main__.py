"""python -m services.projector: follow the log and keep the read models current until SIGTERM.

With THREADLOG_PROJECTOR_PARTITIONS=N, this process leads its preferred partition at once and stands by for
the others, taking one over when the process leading it goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

import nats.errors
import uvloop
from prometheus_client import CollectorRegistry

from shared.bus import Bus, open_bus
from shared.config import Settings
from shared.db import open_pool
from shared.observability import serve_probes, setup_logging
from shared.partitions import checkpoint_name
from shared.store import EventStore

from .projections.catalog import project
from .runner import Projector, ProjectorMetrics
from .sealer import Sealer

log = logging.getLogger("projector")
STANDBY_S = 3.0


async def consume_nudges(bus: Bus, wake: Sequence[asyncio.Event], stop: asyncio.Event) -> None:
    """The durable consumer: every delivered event nudges the projectors, then is acked (the log is the truth)."""
    sub = await bus.pull("projector", [bus.subjects.all_events])
    while not stop.is_set():
        try:
            msgs = await sub.fetch(batch=256, timeout=1.0)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        except nats.errors.Error:
            await asyncio.sleep(0.5)
            continue
        for event in wake:
            event.set()
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
    metrics = ProjectorMetrics(registry)
    leader_url = settings.leader_database_url or settings.database_url
    count = max(1, settings.projector_partitions)
    async with open_pool(settings.database_url, size=2 + count) as pool, \
            open_bus(settings.nats_url, settings.nats_prefix, name="projector",
                     replicas=settings.nats_replicas) as bus:
        store = EventStore(pool)
        projectors = [
            Projector(database_url=leader_url, pool=pool, store=store, bus=bus, projection=project,
                      checkpoint=checkpoint_name(i, count), metrics=metrics, partition=(i, count),
                      contend_after_s=0.0 if i == settings.projector_partition % count else STANDBY_S)
            for i in range(count)
        ]
        sealer = Sealer(leader_url, pool, store)
        wakes = [p.wake for p in projectors] + [sealer.wake]

        async def ready() -> bool:
            return bus.connected and not pool._closed

        async def on_appended(_: object) -> None:
            for event in wakes:
                event.set()

        await bus.on_nudge(bus.subjects.appended, on_appended)
        async with serve_probes(settings.host, settings.projector_port, registry, ready):
            tasks = [asyncio.create_task(p.run(stop), name=f"projector-{p.partition[0]}") for p in projectors]
            tasks += [asyncio.create_task(sealer.run(stop), name="sealer"),
                      asyncio.create_task(consume_nudges(bus, wakes, stop), name="nudges")]
            await stop.wait()
            log.info("projector: stopping")
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    uvloop.run(main())
