"""One run as a stream of SSE events: durable events from the log, token deltas from NATS, merged in one
deterministic order, so a resumed stream continues exactly where the first one stopped.

The canonical order: log events by stream version; an item's deltas (a message's text, a tool step's calls)
right after the event that created it and before any later log event. Live, a log event that lands while an
item is still streaming is held until the item ends. Delta ids are `<anchor version>.<2 + end>`, `end` being
how much of the item the client holds after it; at the item's end whatever deltas did not arrive (lost, or
expired from the retained stream) are sent as one remainder, so the concatenation always equals the log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from shared import deltas as delta_format
from shared.bus import Bus
from shared.events import (
    AnyEvent,
    MessageCompleted,
    MessageCreated,
    MessageIncomplete,
    RunRequiresAction,
    StepCreated,
    StepEnded,
    ToolCall,
    text_of,
)
from shared.store import EventStore

from .live import Live
from .run_view import Obj, RunView
from .sse import Position

Out = tuple[str, str, Obj]  # (id, event name, payload)
HEARTBEAT_S = 15.0
POLL_S = 1.0  # read the log even without a nudge, now and then: nudges are best-effort


class OpenItem:
    """The message or tool step whose deltas are streaming now."""

    def __init__(self, item_id: str, kind: str, anchor: int, have: int) -> None:
        self.item_id = item_id
        self.kind = kind
        self.anchor = anchor
        self.end = have  # how much of the item the client holds
        self.waiting: dict[int, delta_format.Delta] = {}  # deltas that do not follow on yet, by start
        self.started_calls: set[int] = set()


def _start(d: delta_format.Delta) -> int:
    return d.end - len(d.text) - (1 if d.kind == "tool" and d.call_id is not None else 0)


def text_delta(message_id: str, fragment: str) -> Obj:
    return {"id": message_id, "object": "thread.message.delta", "delta": {"content": [
        {"index": 0, "type": "text", "text": {"value": fragment, "annotations": []}}]}}


def tool_delta(step_id: str, index: int, call_id: str | None, name: str | None, arguments: str) -> Obj:
    function: dict[str, Any] = {"arguments": arguments}
    call: dict[str, Any] = {"index": index, "type": "function", "function": function}
    if call_id is not None:
        call["id"] = call_id
        function["name"] = name or ""
        function["output"] = None
    return {"id": step_id, "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}}}


def tool_remainder(step_id: str, calls: list[ToolCall], have: int) -> list[tuple[int, Obj]]:
    """The deltas (end, payload) a client holding `have` of the step still needs to hold all of `calls`."""
    out: list[tuple[int, Obj]] = []
    pos = 0
    for index, call in enumerate(calls):
        args = call.function.arguments
        start_end, args_end = pos + 1, pos + 1 + len(args)
        if have < start_end:
            out.append((args_end, tool_delta(step_id, index, call.id, call.function.name, args)))
        elif have < args_end:
            out.append((args_end, tool_delta(step_id, index, None, None, args[have - start_end:])))
        pos = args_end
    return out


class RunStream:
    def __init__(self, *, store: EventStore, bus: Bus, thread_id: str, run_id: str, from_version: int,
                 resume: Position | None, stop_at_action: bool, include_thread: bool = False) -> None:
        self._store = store
        self._bus = bus
        self._thread_id = thread_id
        self._run_id = run_id
        self._version = from_version - 1
        self._resume = resume.key() if resume else (-1, -1)
        self._stop_at_action = stop_at_action
        self.view = RunView(run_id, include_thread)
        self._item: OpenItem | None = None
        self._held: list[tuple[int, AnyEvent]] = []
        self._early: dict[str, list[delta_format.Delta]] = {}  # deltas seen before their item's creation
        self._finished = False

    async def events(self) -> AsyncIterator[Out | None]:
        """SSE events after the resume point, then None for each heartbeat; ends after the run's last event."""
        live = await Live.open(self._bus, self._thread_id, self._bus.subjects.deltas(self._thread_id, self._run_id))
        try:
            for d in await delta_format.retained(self._bus, self._thread_id, self._run_id):
                self._remember_early(d)
            idle = 0.0
            while True:
                for out in await self._read_log():
                    yield out
                if self._finished:
                    return
                item = await live.next(POLL_S)
                while item is not None:
                    idle = 0.0
                    if item[0] == "delta":
                        for out in self._on_delta(delta_format.decode(item[1])):
                            yield out
                    else:
                        break  # the log grew: read it
                    item = await live.next(0) if not live.queue.empty() else None
                if item is None:
                    idle += POLL_S
                    if idle >= HEARTBEAT_S:
                        idle = 0.0
                        yield None
        finally:
            await live.close()

    async def _read_log(self) -> list[Out]:
        out: list[Out] = []
        for record in await self._store.read_stream(self._thread_id, self._version):
            self._version = record.stream_version
            event = self._store.load(record)
            if self.view.concerns(event) and not self._finished:
                out.extend(self._on_log(record.stream_version, event))
        return out

    def _emit(self, position: Position, name: str, payload: Obj) -> list[Out]:
        if position.key() <= self._resume:
            return []
        # Encode now: later patches mutate the view's objects.
        return [(str(position), name, msgspec.json.decode(msgspec.json.encode(payload)))]

    def _on_log(self, version: int, event: AnyEvent) -> list[Out]:
        item = self._item
        if item is not None and not self._ends(item, event):
            self._held.append((version, event))
            return []
        out: list[Out] = []
        if item is not None:
            out += self._close_item(item, event)
            self._item = None
            for held_version, held in self._held:
                out += self._emit_log(held_version, held)
            self._held.clear()
        out += self._emit_log(version, event)
        return out

    def _emit_log(self, version: int, event: AnyEvent) -> list[Out]:
        out: list[Out] = []
        produced = self.view.apply(event)
        for k, (name, payload) in enumerate(produced):
            out += self._emit(Position(version, k), name, payload)
        if isinstance(event, MessageCreated):
            self._open(event.message_id, "text", version)
        elif isinstance(event, StepCreated) and event.step_type == "tool_calls":
            self._open(event.step_id, "tool", version)
        if self._item is not None:
            for d in self._early.pop(self._item.item_id, []):
                out += self._on_delta(d)
        # Finished once the ending event is at or past the resume point (a resume may start after an old
        # requires_action, which ended an earlier stream of the same run).
        if self.view.finished(self._stop_at_action) and self._item is None and \
                (version, len(produced) - 1) >= self._resume:
            self._finished = True
        return out

    def _open(self, item_id: str, kind: str, anchor: int) -> None:
        rv, rk = self._resume
        have = 0 if rv < anchor else (max(0, rk - 2) if rv == anchor else 1 << 60)
        self._item = OpenItem(item_id, kind, anchor, have)

    @staticmethod
    def _ends(item: OpenItem, event: AnyEvent) -> bool:
        if item.kind == "text":
            return isinstance(event, MessageCompleted | MessageIncomplete) and event.message_id == item.item_id
        return (isinstance(event, RunRequiresAction) and event.step_id == item.item_id) or (
            isinstance(event, StepEnded) and event.step_id == item.item_id)

    def _remember_early(self, d: delta_format.Delta) -> None:
        self._early.setdefault(d.item, []).append(d)

    def _on_delta(self, d: delta_format.Delta) -> list[Out]:
        item = self._item
        if item is None or item.item_id != d.item:
            if item is None and not self._finished:
                self._remember_early(d)
            return []
        if d.end <= item.end:
            return []
        item.waiting[_start(d)] = d
        out: list[Out] = []
        while item.end in item.waiting:  # emit every delta that now follows on
            nxt = item.waiting.pop(item.end)
            if nxt.kind == "text":
                name, payload = "thread.message.delta", text_delta(item.item_id, nxt.text)
            else:
                name = "thread.run.step.delta"
                payload = tool_delta(item.item_id, nxt.index, nxt.call_id, nxt.name, nxt.text)
            item.end = nxt.end
            out += self._emit(Position(item.anchor, 2 + nxt.end), name, payload)
        return out

    def _close_item(self, item: OpenItem, event: AnyEvent) -> list[Out]:
        """Before the item's end: whatever part of it the client does not hold yet, in one piece."""
        out: list[Out] = []
        if isinstance(event, MessageCompleted | MessageIncomplete):
            final = text_of(event.content)
            if item.end < len(final) and item.end <= (1 << 59):
                out += self._emit(Position(item.anchor, 2 + len(final)), "thread.message.delta",
                                  text_delta(item.item_id, final[item.end:]))
        elif isinstance(event, RunRequiresAction) and item.end <= (1 << 59):
            for end, payload in tool_remainder(item.item_id, event.tool_calls, item.end):
                out += self._emit(Position(item.anchor, 2 + end), "thread.run.step.delta", payload)
        return out
