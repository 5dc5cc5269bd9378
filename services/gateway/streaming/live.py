"""Live nudges and deltas for one stream, on a bounded queue: a slow client is cut off, never waited for."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared.bus import Bus

Item = tuple[Literal["tail", "delta"], bytes]
QUEUE_LIMIT = 10_000


class Overflowed(Exception):
    """The client fell too far behind; it can resume from its last event id."""


class Live:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Item] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False
        self._subs: list[Subscription] = []

    @classmethod
    async def open(cls, bus: Bus, stream_id: str, deltas_subject: str | None = None) -> Live:
        live = cls()

        async def on_tail(_: Msg) -> None:
            live._put(("tail", b""))

        async def on_delta(msg: Msg) -> None:
            live._put(("delta", msg.data))

        live._subs.append(await bus.on_nudge(bus.subjects.tail(stream_id), on_tail))
        # The relay's publication of the stream's events also wakes us (covers writers that did not nudge).
        live._subs.append(await bus.on_nudge(f"{bus.subjects.prefix}.ev.{stream_id}.>", on_tail))
        if deltas_subject is not None:
            live._subs.append(await bus.on_nudge(deltas_subject, on_delta))
        return live

    def _put(self, item: Item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True

    async def next(self, timeout_s: float) -> Item | None:
        if self.overflowed:
            raise Overflowed
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None

    async def close(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
