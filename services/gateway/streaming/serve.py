"""Serving a stream to one client: frames out, heartbeats, and a clean end whatever the client does.

A client that goes away stops only its own stream: the run goes on in the worker.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
from aiohttp import web

from .live import Overflowed
from .merge import Out
from .sse import DONE, HEARTBEAT, frame, open_stream

log = logging.getLogger(__name__)
Framer = Callable[[Out], bytes]
_ENCODER = msgspec.json.Encoder()

# Responses stream events carry their place as an integer: the log version and the rank within it.
SEQUENCE_STRIDE = 1_000_000_000


def assistants_frame(out: Out) -> bytes:
    """Assistants: `id: <version>.<k>`, the event name, the object as data."""
    position, name, payload = out
    return frame(name, _ENCODER.encode(payload), str(position))


def sequence_number(out: Out) -> int:
    return out[0].version * SEQUENCE_STRIDE + out[0].k


def responses_frame(out: Out) -> bytes:
    """Responses: `type` and `sequence_number` (from the log: a replay is identical) inside the data."""
    _, name, payload = out
    seq = sequence_number(out)
    return frame(name, _ENCODER.encode({"type": name, **payload, "sequence_number": seq}), str(seq))


async def serve(request: web.Request, events: AsyncIterator[Out | None], *, done: bool = True,
                framer: Framer = assistants_frame,
                settle: Callable[[], Awaitable[object]] | None = None) -> web.StreamResponse:
    """`settle` runs before the stream ends: a client that reads right after the end sees what it streamed."""
    response = await open_stream(request)
    try:
        async for out in events:
            await response.write(HEARTBEAT if out is None else framer(out))
        if settle is not None:
            await settle()
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
