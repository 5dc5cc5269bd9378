"""Serving a stream to one client: frames out, heartbeats, and a clean end whatever the client does.

A client that goes away stops only its own stream: the run goes on in the worker.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

from .live import Overflowed
from .run_view import Obj
from .sse import DONE, HEARTBEAT, frame, open_stream

log = logging.getLogger(__name__)
Out = tuple[str, str, Obj] | None


async def serve(request: web.Request, events: AsyncIterator[Out], *, done: bool = True) -> web.StreamResponse:
    response = await open_stream(request)
    encoder = msgspec.json.Encoder()
    try:
        async for out in events:
            if out is None:
                await response.write(HEARTBEAT)
                continue
            event_id, name, payload = out
            await response.write(frame(name, encoder.encode(payload), event_id))
        if done:
            await response.write(DONE)
    except Overflowed:
        log.info("stream cut off: client too slow", extra={"path": request.path})
    except (ConnectionResetError, ConnectionError):
        log.debug("client went away", extra={"path": request.path})
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    return response
