"""The write path every route shares: decide and append, nudge the followers, wait for read-your-writes."""

from __future__ import annotations

import logging

from aiohttp import web

from .keys import BUS, CONSISTENCY, METRICS, THREADS
from .repository import Decide, Outcome

log = logging.getLogger(__name__)


async def commit(app: web.Application, thread_id: str, tenant_id: str, decide: Decide, *,
                 new: bool = False) -> Outcome:
    outcome = await app[THREADS].execute(thread_id, tenant_id, decide, new=new)
    if outcome.result is not None:
        bus = app[BUS]
        await bus.nudge(bus.subjects.appended)
        if not await app[CONSISTENCY].wait(outcome.result.cursor):
            # Bounded: the write is durable either way; only the next read might not show it yet.
            app[METRICS].consistency_timeouts.inc()
            log.warning("read models behind a write", extra={"thread_id": thread_id})
    return outcome
