"""The write path every route shares: decide and append, nudge the followers, wait for read-your-writes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from aiohttp import web

from shared.events import Event
from shared.repository import Outcome, Repository, StreamState
from shared.state import AssistantState, ThreadState

from .keys import ASSISTANTS, BUS, CONSISTENCY, METRICS, THREADS

log = logging.getLogger(__name__)
S = TypeVar("S", bound=StreamState)


async def _commit(app: web.Application, repo: Repository[S], stream_id: str, tenant_id: str,
                  decide: Callable[[S], Sequence[Event]], new: bool) -> Outcome:
    outcome = await repo.execute(stream_id, tenant_id, decide, new=new)
    if outcome.result is not None:
        await app[BUS].appended(stream_id)
        if not await app[CONSISTENCY].wait(outcome.result.cursor):
            # Bounded: the write is durable either way; only the next read might not show it yet.
            app[METRICS].consistency_timeouts.inc()
            log.warning("read models behind a write", extra={"stream_id": stream_id})
    return outcome


async def commit(app: web.Application, thread_id: str, tenant_id: str,
                 decide: Callable[[ThreadState], Sequence[Event]], *, new: bool = False) -> Outcome:
    return await _commit(app, app[THREADS], thread_id, tenant_id, decide, new)


async def commit_assistant(app: web.Application, assistant_id: str, tenant_id: str,
                           decide: Callable[[AssistantState], Sequence[Event]], *, new: bool = False) -> Outcome:
    return await _commit(app, app[ASSISTANTS], assistant_id, tenant_id, decide, new)
