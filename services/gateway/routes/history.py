"""The log through HTTP: a thread's event history, its messages as of a past point, and erasure."""

from __future__ import annotations

import asyncio
import time

import msgspec
from aiohttp import web

from shared import wire
from shared.erasure import redact
from shared.errors import InvalidRequestError
from shared.events import Event, ThreadErased
from shared.state import ThreadState
from shared.store import AppendResult, Cursor

from ..commands import require_thread
from ..history import messages_as_of, page_of
from ..http import list_params, respond, thread_id_of
from ..keys import BUS, POOL, PRINCIPAL, QUERIES, STORE
from ..writes import commit

routes = web.RouteTableDef()
SEALED_WAIT_S = 10.0


@routes.get("/v1/threads/{thread_id}/history")
async def thread_history(request: web.Request) -> web.Response:
    """The thread's events, oldest first by default, cursor-paginated by event id."""
    thread_id, tenant = thread_id_of(request), request[PRINCIPAL].scope
    await request.app[QUERIES].thread(thread_id, tenant)
    params = list_params(request)
    if "order" not in request.query:
        params = msgspec.structs.replace(params, order="asc")
    return respond(await request.app[QUERIES].history(thread_id, params))


def as_of_bound(request: web.Request) -> tuple[str, float] | None:
    raw_time, raw_position = request.query.get("as_of"), request.query.get("as_of_position")
    try:
        if raw_position:
            return "position", float(int(raw_position))
        if raw_time:
            return "time", float(raw_time)
    except ValueError:
        param = "as_of_position" if raw_position else "as_of"
        raise InvalidRequestError(f"Invalid '{param}': expected a number.", param=param,
                                  code="invalid_value") from None
    return None


async def messages_at(request: web.Request, thread_id: str, tenant: str | None, bound: tuple[str, float]) -> bytes:
    """The thread's messages as they were at a past log position or time (unix seconds)."""
    await request.app[QUERIES].thread(thread_id, tenant)
    store = request.app[STORE]
    kind, value = bound
    events = []
    for record in await store.read_stream(thread_id):
        past = record.position <= value if kind == "position" else record.recorded_at.timestamp() <= value
        if not past:
            break
        events.append((record.stream_version, store.load(record)))
    return page_of(messages_as_of(events, request.query.get("run_id") or None), list_params(request))


@routes.post("/v1/threads/{thread_id}/erase")
async def erase_thread(request: web.Request) -> web.Response:
    """Erase a thread's content for privacy. The log keeps that it happened (and when), not what was said."""
    thread_id, tenant = thread_id_of(request), request[PRINCIPAL].scope

    def decide(state: ThreadState) -> list[Event]:
        require_thread(state, tenant)
        return [ThreadErased(thread_id=thread_id, erased_at=int(time.time()))]

    outcome = await commit(request, thread_id, tenant, decide)
    assert outcome.result is not None
    await erase_content(request.app, thread_id, outcome.result)
    return respond(wire.encode(wire.Deleted(id=thread_id, object="thread.erased")))


async def erase_content(app: web.Application, stream_id: str, erased: AppendResult) -> None:
    """After a thread.erased event: rewrite the stream's earlier payloads without content, purge NATS copies,
    and forget the idempotent answers that quoted them."""
    # The sealer first, so the chain keeps the proof of what stood there; the relay too, so no batch read
    # before the rewrite is published after the purge.
    deadline = time.monotonic() + SEALED_WAIT_S
    while time.monotonic() < deadline:
        rows = await app[POOL].fetch("SELECT txid, position FROM checkpoints WHERE name IN ('audit_chain', 'relay')")
        if len(rows) == 2 and all(Cursor(r[0], r[1]) >= erased.cursor for r in rows):
            break
        await asyncio.sleep(0.05)
    await app[STORE].redact_stream(stream_id, erased.version, redact)
    await app[POOL].execute(
        "DELETE FROM idempotency_keys WHERE request_id IN"
        " (SELECT correlation_id FROM events WHERE stream_id = $1 AND correlation_id IS NOT NULL)", stream_id)
    await app[BUS].purge_stream_subjects(stream_id)
