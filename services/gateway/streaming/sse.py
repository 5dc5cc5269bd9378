"""Writing `text/event-stream` responses: events with ids, heartbeat comments, the closing `done`."""

from __future__ import annotations

from aiohttp import web

HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # proxies must not buffer a live stream
}


async def open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=HEADERS)
    await response.prepare(request)
    return response


def frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + data + b"\n\n"


HEARTBEAT = b": keep-alive\n\n"
DONE = b"event: done\ndata: [DONE]\n\n"


class Position:
    """An SSE id `<stream version>.<k>`: the log event's version and the rank of the SSE event it produced."""

    __slots__ = ("k", "version")

    def __init__(self, version: int, k: int) -> None:
        self.version = version
        self.k = k

    def __str__(self) -> str:
        return f"{self.version}.{self.k}"

    def key(self) -> tuple[int, int]:
        return (self.version, self.k)

    @classmethod
    def parse(cls, value: str | None) -> Position | None:
        if not value:
            return None
        head, _, tail = value.strip().partition(".")
        try:
            return cls(int(head), int(tail or 0))
        except ValueError:
            return None
