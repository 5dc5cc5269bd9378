"""Live streams: attach to a run (`/runs/{run_id}/stream`) or follow a thread (`/threads/{thread_id}/events`).

Both resume from `Last-Event-ID` (or `?after=`), from any gateway: everything comes from the log and NATS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

from shared.errors import InvalidRequestError

from ..http import thread_id_of
from ..keys import BUS, CONSISTENCY, POOL, PRINCIPAL, QUERIES, RETAINED, STORE
from ..streaming.live import Live
from ..streaming.merge import Out, StreamMerger
from ..streaming.run_view import RunView
from ..streaming.serve import Framer, assistants_frame, serve
from ..streaming.sse import Position

routes = web.RouteTableDef()
THREAD_HEARTBEAT_S = 15.0


def resume_point(request: web.Request) -> Position | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("after")
    position = Position.parse(raw)
    if raw and position is None:
        raise InvalidRequestError(f"Invalid event id '{raw}': expected '<version>.<n>'.", param="after",
                                  code="invalid_value")
    return position


def run_stream(request: web.Request, thread_id: str, run_id: str, from_version: int, resume: Position | None, *,
               stop_at_action: bool, include_thread: bool = False) -> StreamMerger:
    return StreamMerger(store=request.app[STORE], bus=request.app[BUS], retained=request.app[RETAINED],
                        stream_id=thread_id, turn_id=run_id, view=RunView(run_id, include_thread, stop_at_action),
                        from_version=from_version, resume=resume)


@routes.get("/v1/threads/{thread_id}/runs/{run_id}/stream")
async def attach_run(request: web.Request) -> web.StreamResponse:
    thread_id, run_id = thread_id_of(request), request.match_info["run_id"]
    resume = resume_point(request)
    await request.app[QUERIES].run(thread_id, run_id, request[PRINCIPAL].scope)  # 404 unless visible
    created = await request.app[POOL].fetchval("SELECT seq FROM runs WHERE run_id = $1", run_id)
    stream = run_stream(request, thread_id, run_id, int(created), resume, stop_at_action=False)
    return await serve_turn(request, stream, thread_id)


async def serve_turn(request: web.Request, stream: StreamMerger, stream_id: str, *,
                     framer: Framer = assistants_frame, done: bool = True) -> web.StreamResponse:
    """Serve a run's or response's stream; before it ends, the read models reach its last event."""
    consistency = request.app[CONSISTENCY]
    return await serve(request, stream.events(), done=done, framer=framer,
                       settle=lambda: consistency.wait(stream.last_cursor, stream_id))


async def thread_events(request: web.Request, thread_id: str, after: int) -> AsyncIterator[Out | None]:
    store, bus = request.app[STORE], request.app[BUS]
    live = await Live.open(bus, thread_id)
    try:
        version, idle = after, 0.0
        while True:
            for record in await store.read_stream(thread_id, version):
                version = record.stream_version
                payload = msgspec.json.decode(record.payload)
                yield (Position(version, 0), record.event_type, {
                    "stream_version": version, "position": record.position, "type": record.event_type,
                    "recorded_at": record.recorded_at.timestamp(), "data": payload})
            if await live.next(1.0) is None:
                idle += 1.0
                if idle >= THREAD_HEARTBEAT_S:
                    idle = 0.0
                    yield None
            else:
                idle = 0.0
    finally:
        await live.close()


@routes.get("/v1/threads/{thread_id}/events")
async def follow_thread(request: web.Request) -> web.StreamResponse:
    thread_id = thread_id_of(request)
    resume = resume_point(request)
    await request.app[QUERIES].thread(thread_id, request[PRINCIPAL].scope)
    return await serve(request, thread_events(request, thread_id, resume.version if resume else 0), done=False)
