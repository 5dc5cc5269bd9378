"""A small raw `text/event-stream` client for the streaming tests: stdlib, bounded in time, byte-exact.

It parses what arrives (`id:`, `event:`, `data:` fields, `:` comments), so a test sees exactly what the server
framed, ids included, which the SDK hides. Every read has a socket timeout: a stream that hangs fails the test.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any, NamedTuple


class Event(NamedTuple):
    id: str | None
    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


class Parser:
    """Incremental SSE parser: feed it lines (without their line ending), it returns the events they complete."""

    def __init__(self) -> None:
        self.comments = 0
        self._id: str | None = None
        self._event: str | None = None
        self._data: list[str] = []
        self._has_fields = False

    def feed(self, line: str) -> Event | None:
        if line == "":
            if not self._has_fields:
                return None
            event = Event(self._id, self._event, "\n".join(self._data))
            self._id, self._event, self._data, self._has_fields = None, None, [], False
            return event
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        self._has_fields = True
        if name == "id":
            self._id = value
        elif name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


class SSEStream:
    """One GET (or POST) whose response is an event stream, read event by event."""

    def __init__(self, port: int, path: str, *, api_key: str, method: str = "GET", body: Any = None,
                 headers: dict[str, str] | None = None, timeout_s: float = 15.0) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
        all_headers = {"Authorization": f"Bearer {api_key}", "Accept": "text/event-stream", **(headers or {})}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        self.opened_at = time.monotonic()
        self.conn.request(method, path, body=payload, headers=all_headers)
        self._sock = self.conn.sock  # the response keeps reading from it, even if the connection lets go
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}
        self.parser = Parser()
        self.ended = False  # the server closed the stream

    def set_timeout(self, timeout_s: float) -> None:
        """The bound on each read from now on."""
        assert self._sock is not None
        self._sock.settimeout(timeout_s)

    def body(self) -> Any:
        """The JSON body of a non-stream (error) response."""
        return json.loads(self.response.read())

    def __iter__(self) -> Iterator[Event]:
        while True:
            raw = self.response.readline()
            if not raw:
                self.ended = True
                return
            event = self.parser.feed(raw.decode().rstrip("\r\n"))
            if event is not None:
                yield event

    def read(self, n: int | None = None) -> list[Event]:
        """The next `n` events (all of them, to the end of the stream, if `n` is None)."""
        out: list[Event] = []
        if n == 0:
            return out
        for event in self:
            out.append(event)
            if n is not None and len(out) >= n:
                break
        return out

    def close(self) -> None:
        """Drop the connection (the response holds its own reference to the socket: close both)."""
        self.response.close()
        self.conn.close()

    def __enter__(self) -> SSEStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
