"""The write path every route shares: decide and append, nudge the followers, wait for read-your-writes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from aiohttp import web

from shared.events import Event
from shared.repository import Outcome, Repository, StreamState
from shared.state import AssistantState, ThreadState

from .keys import ASSISTANTS, BUS, CONSISTENCY, METRICS, REQUEST_ID, THREADS

log = logging.getLogger(__name__)
S = TypeVar("S", bound=StreamState)


async def _commit(request: web.Request, repo: Repository[S], stream_id: str, scope: str | None,
                  decide: Callable[[S], Sequence[Event]], new: bool) -> Outcome:
    app = request.app
    # The request id is every appended event's correlation id: the log says which request wrote what.
    outcome = await repo.execute(stream_id, scope, decide, new=new, correlation_id=request[REQUEST_ID])
    if outcome.result is not None:
        await app[BUS].appended(stream_id)
        if not await app[CONSISTENCY].wait(outcome.result.cursor, stream_id):
            # Bounded: the write is durable either way; only the next read might not show it yet.
            app[METRICS].consistency_timeouts.inc()
            log.warning("read models behind a write", extra={"stream_id": stream_id})
    return outcome


async def commit(request: web.Request, thread_id: str, scope: str | None,
                 decide: Callable[[ThreadState], Sequence[Event]], *, new: bool = False) -> Outcome:
    return await _commit(request, request.app[THREADS], thread_id, scope, decide, new)


async def commit_assistant(request: web.Request, assistant_id: str, scope: str | None,
                           decide: Callable[[AssistantState], Sequence[Event]], *, new: bool = False) -> Outcome:
    return await _commit(request, request.app[ASSISTANTS], assistant_id, scope, decide, new)
