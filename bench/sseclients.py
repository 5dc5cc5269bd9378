"""The SSE side of the load generator: N clients attached to event streams, counting events in the raw bytes."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp

from .loadgen import SseResult, SseSpec, emit

# Connections opened at once: aiohttp servers listen with a backlog of 128, and a dropped SYN costs 1 s.
CONNECT_WINDOW = 100
DELTA_MARKER = b"event: thread.message.delta"


class Counts:
    """Occurrences of a few markers in a byte stream fed in arbitrary chunks."""

    def __init__(self, *markers: bytes) -> None:
        self.markers = markers
        self.counts = [0] * len(markers)
        self._keep = max(len(m) for m in markers) - 1
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        for i, marker in enumerate(self.markers):
            # The kept bytes are too short to hold a whole marker: every match found here is new.
            self.counts[i] += (self._tail[-(len(marker) - 1):] + chunk if len(marker) > 1 else chunk).count(marker)
        self._tail = (self._tail + chunk)[-self._keep:] if self._keep else b""


class Client:
    def __init__(self, counts: Counts) -> None:
        self.counts = counts  # events, deltas, attach markers read so far
        self.attached = False


class SseRun:
    def __init__(self, spec: SseSpec) -> None:
        self.spec = spec
        self.marker = spec.attached_marker.encode()
        self.started = time.time()
        self.attached_at = self.started
        self.pending = spec.clients  # clients neither attached nor finished
        self.attached = 0
        self.all_in = asyncio.Event()
        self.window = asyncio.Semaphore(CONNECT_WINDOW)
        self.events = self.deltas = self.ok = self.at_attach = 0
        self.first_deltas: list[float] = []
        self.end_times: list[float] = []
        self.attach_times: list[float] = []
        self.samples: list[str] = []

    def _arrived(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self._announce()

    def _announce(self) -> None:
        if not self.all_in.is_set():
            self.attached_at = time.time()
            emit({"type": "attached", "t": self.attached_at, "clients": self.attached})
            self.all_in.set()

    def _problem(self, text: str) -> None:
        if len(self.samples) < 5:
            self.samples.append(text)

    async def _read(self, session: aiohttp.ClientSession, url: str, client: Client) -> None:
        """One stream, to its end; the connect window is held until the response starts."""
        last = b""
        async with self.window:
            resp = await session.get(url)
        async with resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {(await resp.read())[:200]!r}")
            async for chunk in resp.content.iter_any():
                last = chunk
                counts = client.counts
                before = counts.counts[1]
                counts.feed(chunk)
                if counts.counts[1] and not before:
                    self.first_deltas.append(time.time())
                if not client.attached and counts.counts[2]:
                    client.attached = True
                    self.attach_times.append(time.time())
                    self.attached += 1
                    self.at_attach += counts.counts[0]
                    self._arrived()
        if not last.endswith(b"\n\n"):
            raise RuntimeError("stream ended mid-event")

    async def client(self, session: aiohttp.ClientSession, index: int) -> None:
        """Read the client's stream `rounds` times in a row (the first read is the one that attaches)."""
        client = Client(Counts(b"\n\n", DELTA_MARKER, self.marker))
        try:
            for _ in range(self.spec.rounds):
                await self._read(session, self.spec.urls[index % len(self.spec.urls)], client)
            self.ok += 1
        except (aiohttp.ClientError, OSError, TimeoutError, RuntimeError) as e:
            self._problem(repr(e))
        except asyncio.CancelledError:
            self._problem("cut off at the load's time limit")
            raise
        finally:
            if not client.attached:
                self._arrived()
            self.end_times.append(time.time())
            self.events += client.counts.counts[0]
            self.deltas += client.counts.counts[1]

    async def run(self) -> SseResult:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=self.spec.timeout_s)
        async with aiohttp.ClientSession(headers=self.spec.headers, connector=aiohttp.TCPConnector(limit=0),
                                         timeout=timeout) as session:
            clients = asyncio.gather(*(self.client(session, i) for i in range(self.spec.clients)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_in.wait(), self.spec.attach_timeout_s)
            self._announce()  # whoever made it in time
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(clients, self.spec.timeout_s)
        return SseResult(
            clients=self.spec.clients, ok_clients=self.ok, attached_clients=self.attached, events=self.events,
            events_at_attach=self.at_attach, deltas=self.deltas, started=self.started, attached=self.attached_at,
            first_delta=min(self.first_deltas) if self.first_deltas else None,
            ended=max(self.end_times) if self.end_times else self.started, end_times=sorted(self.end_times),
            attach_times=sorted(self.attach_times),
            error_samples=self.samples)


async def sse_load(spec: SseSpec) -> SseResult:
    return await SseRun(spec).run()
