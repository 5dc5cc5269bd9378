"""One turn (a run or a response) as a stream of SSE events: durable events from the log, token deltas from
NATS, merged in one deterministic order, so a resumed stream continues exactly where the first one stopped.

The canonical order: log events by stream version; an item's deltas (a message's text, a tool step's calls)
right after the event that created it and before any later log event. Live, a log event that lands while an
item is still streaming is held until the item ends. Positions are `(version, k)`, deltas `(anchor, 2 + end)`,
`end` being how much of the item the client holds after it; at the item's end whatever deltas did not arrive
(lost, or expired from the retained stream) are sent as one remainder, so the concatenation always equals the
log. The view (Assistants or Responses) decides which events concern the turn and what each one sends.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Protocol

import msgspec

from shared import deltas as delta_format
from shared.bus import Bus
from shared.events import AnyEvent
from shared.store import Cursor, EventStore

from .live import Live
from .sse import Position

Obj = dict[str, object]
Named = tuple[str, Obj]
Out = tuple[Position, str, Obj]  # (position, event name, payload)
HEARTBEAT_S = 15.0
POLL_S = 1.0  # read the log even without a nudge, now and then: nudges are best-effort
LATE_DELTAS_S = 0.3  # how long an item's end waits for deltas still in flight before sending the rest at once
ALL = 1 << 60  # "the client holds all of the item"


class View(Protocol):
    def concerns(self, event: AnyEvent) -> bool: ...
    def apply(self, event: AnyEvent) -> list[Named]: ...
    def opens(self, event: AnyEvent) -> tuple[str, str] | None: ...
    def ends(self, item_id: str, kind: str, event: AnyEvent) -> bool: ...
    def delta(self, item_id: str, d: delta_format.Delta) -> Named: ...
    def remainder(self, item_id: str, kind: str, have: int, event: AnyEvent) -> list[tuple[int, Named]]: ...
    def finished(self) -> bool: ...


class OpenItem:
    """The message or tool step whose deltas are streaming now."""

    def __init__(self, item_id: str, kind: str, anchor: int, have: int) -> None:
        self.item_id = item_id
        self.kind = kind
        self.anchor = anchor
        self.end = have  # how much of the item the client holds
        self.waiting: dict[int, delta_format.Delta] = {}  # deltas that do not follow on yet, by start


def _start(d: delta_format.Delta) -> int:
    return d.end - len(d.text) - (1 if d.kind == "tool" and d.call_id is not None else 0)


class StreamMerger:
    def __init__(self, *, store: EventStore, bus: Bus, stream_id: str, turn_id: str, view: View,
                 from_version: int, resume: Position | None,
                 retained: delta_format.RetainedReads | None = None) -> None:
        self._store = store
        self._bus = bus
        self._retained = retained
        self._stream_id = stream_id
        self._turn_id = turn_id
        self.view = view
        self._version = from_version - 1
        self._resume = resume.key() if resume else (-1, -1)
        self._item: OpenItem | None = None
        self._held: list[tuple[int, AnyEvent]] = []
        self._early: dict[str, list[delta_format.Delta]] = {}  # deltas seen before their item's creation
        self._finished = False
        self._retry_at: float | None = None  # when an item's end stops waiting for late deltas
        self.last_cursor = Cursor()  # the last log event read: where the read models must be before `done`

    async def events(self) -> AsyncIterator[Out | None]:
        """Events after the resume point, then None for each heartbeat; ends after the turn's last event."""
        subscribed_at = time.monotonic()
        live = await Live.open(self._bus, self._stream_id, self._bus.subjects.deltas(self._stream_id, self._turn_id))
        try:
            if self._retained is not None:
                kept = await self._retained.get(self._stream_id, self._turn_id, subscribed_at)
            else:
                kept = await delta_format.retained(self._bus, self._stream_id, self._turn_id)
            for d in kept:
                self._early.setdefault(d.item, []).append(d)
            idle, read = 0.0, True
            while True:
                if read:
                    for out in await self._read_log():
                        yield out
                    read = self._retry_at is not None  # an item's end waits for its last deltas
                if self._finished:
                    return
                item = await live.next(POLL_S if self._retry_at is None else 0.05)
                if item is None:
                    read = True  # a poll: nudges are best-effort
                    idle += POLL_S
                    if idle >= HEARTBEAT_S:
                        idle = 0.0
                        yield None
                    continue
                idle = 0.0
                # Everything queued now, deltas first in arrival order; the log is read once after them, so a
                # delta that came before its message's end is never overtaken by that end.
                batch = [item]
                while not live.queue.empty():
                    batch.append(live.queue.get_nowait())
                for kind, data in batch:
                    if kind == "delta":
                        for out in self._on_delta(delta_format.decode(data)):
                            yield out
                    else:
                        read = True
        finally:
            await live.close()

    async def _read_log(self) -> list[Out]:
        out: list[Out] = []
        for record in await self._store.read_stream(self._stream_id, self._version):
            event = self._store.load(record)
            if not self._finished and self.view.concerns(event):
                produced = self._on_log(record.stream_version, event)
                if produced is None:
                    break  # not yet: read this event again after a short wait for its deltas
                out.extend(produced)
            self._version = record.stream_version
            self.last_cursor = record.cursor
        else:
            # The whole log so far is in: the turn is over if its view says so (whatever the resume point).
            if self.view.finished() and self._item is None:
                self._finished = True
        return out

    def _emit(self, position: Position, named: Named) -> list[Out]:
        if position.key() <= self._resume:
            return []
        # Copy now: later events patch the view's objects.
        return [(position, named[0], msgspec.json.decode(msgspec.json.encode(named[1])))]

    def _on_log(self, version: int, event: AnyEvent) -> list[Out] | None:
        item = self._item
        if item is not None and not self.view.ends(item.item_id, item.kind, event):
            self._held.append((version, event))
            return []
        out: list[Out] = []
        if item is not None:
            if item.end < ALL // 2:
                rest = self.view.remainder(item.item_id, item.kind, item.end, event)
                if rest and self._live_grace():
                    return None  # deltas published before this end may still be on their way
                for end, named in rest:
                    out += self._emit(Position(item.anchor, 2 + end), named)
            self._retry_at = None
            self._item = None
            for held_version, held in self._held:
                out += self._emit_log(held_version, held)
            self._held.clear()
        out += self._emit_log(version, event)
        return out

    def _live_grace(self) -> bool:
        """True while an item's end should wait for late deltas (briefly, once per item)."""
        now = time.monotonic()
        if self._retry_at is None:
            self._retry_at = now + LATE_DELTAS_S
        return now < self._retry_at

    def _emit_log(self, version: int, event: AnyEvent) -> list[Out]:
        out: list[Out] = []
        produced = self.view.apply(event)
        for k, named in enumerate(produced):
            out += self._emit(Position(version, k), named)
        opened = self.view.opens(event)
        if opened is not None:
            rv, rk = self._resume
            have = 0 if rv < version else (max(0, rk - 2) if rv == version else ALL)
            self._item = OpenItem(opened[0], opened[1], version, have)
            for d in self._early.pop(opened[0], []):
                out += self._on_delta(d)
        return out

    def _on_delta(self, d: delta_format.Delta) -> list[Out]:
        item = self._item
        if item is None or item.item_id != d.item:
            if item is None and not self._finished:
                self._early.setdefault(d.item, []).append(d)
            return []
        if d.end <= item.end:
            return []
        item.waiting[_start(d)] = d
        out: list[Out] = []
        while item.end in item.waiting:  # emit every delta that now follows on
            nxt = item.waiting.pop(item.end)
            item.end = nxt.end
            out += self._emit(Position(item.anchor, 2 + nxt.end), self.view.delta(item.item_id, nxt))
        return out
