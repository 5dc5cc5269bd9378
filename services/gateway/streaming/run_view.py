"""A run as a client watching it sees it: its wire objects, patched event by event, and the SSE each event makes.

Uses the same patches as the projector, so what a stream says and what a later read returns agree.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shared import deltas as delta_format
from shared import wire
from shared.events import (
    AnyEvent,
    MessageCompleted,
    MessageCreated,
    MessageIncomplete,
    RunCreated,
    RunRequiresAction,
    StepCompleted,
    StepCreated,
    StepEnded,
    ThreadCreated,
    ToolCall,
    ToolOutputsSubmitted,
    text_of,
)
from shared.patches import message_patch, run_patch, step_patch

Obj = dict[str, Any]
TERMINAL = frozenset({"completed", "incomplete", "failed", "cancelled", "expired"})


def _plain(obj: object) -> Obj:
    value: Obj = msgspec.to_builtins(obj)
    return value


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


class RunView:
    """What a watcher of a run sees (Assistants v2 stream events)."""

    def __init__(self, run_id: str, include_thread: bool = False, stop_at_action: bool = False) -> None:
        self.run_id = run_id
        self.include_thread = include_thread
        self.stop_at_action = stop_at_action
        self.run: Obj | None = None
        self.steps: dict[str, Obj] = {}
        self.messages: dict[str, Obj] = {}

    def concerns(self, event: AnyEvent) -> bool:
        if isinstance(event, ThreadCreated):
            return self.include_thread
        if isinstance(event, MessageCompleted | MessageIncomplete):
            return event.message_id in self.messages
        return getattr(event, "run_id", None) == self.run_id

    @property
    def status(self) -> str | None:
        return self.run["status"] if self.run else None

    def apply(self, event: AnyEvent) -> list[tuple[str, Obj]]:
        """Fold the event in; return the SSE events (name, payload) it produces, in order."""
        match event:
            case ThreadCreated():
                return [("thread.created", _plain(wire.thread_object(event)))]
            case RunCreated():
                self.run = _plain(wire.run_object(event))
                return [("thread.run.created", self.run), ("thread.run.queued", self.run)]
            case StepCreated():
                step = self.steps[event.step_id] = _plain(wire.step_object(event))
                return [("thread.run.step.created", step), ("thread.run.step.in_progress", step)]
            case MessageCreated():
                message = self.messages[event.message_id] = _plain(wire.message_object(event))
                return [("thread.message.created", message), ("thread.message.in_progress", message)]
        out: list[tuple[str, Obj]] = []
        changed_message = message_patch(event)
        if changed_message is not None and changed_message[0] in self.messages:
            message = self.messages[changed_message[0]]
            message.update(_plain(changed_message[1]))
            out.append((f"thread.message.{message['status']}", message))
        changed_step = step_patch(event)
        if changed_step is not None and changed_step[0] in self.steps:
            step = self.steps[changed_step[0]]
            step.update(_plain(changed_step[1]))
            if isinstance(event, StepCompleted | StepEnded):
                out.append((f"thread.run.step.{step['status']}", step))
        patch = run_patch(event)
        if patch is not None and self.run is not None:
            self.run.update(_plain(patch))
            if isinstance(event, RunRequiresAction | ToolOutputsSubmitted) or "status" in patch:
                out.append((f"thread.run.{self.run['status']}", self.run))
        return out

    def finished(self) -> bool:
        status = self.status
        return status in TERMINAL or (self.stop_at_action and status == "requires_action")

    def opens(self, event: AnyEvent) -> tuple[str, str] | None:
        if isinstance(event, MessageCreated):
            return event.message_id, "text"
        if isinstance(event, StepCreated) and event.step_type == "tool_calls":
            return event.step_id, "tool"
        return None

    def ends(self, item_id: str, kind: str, event: AnyEvent) -> bool:
        if kind == "text":
            return isinstance(event, MessageCompleted | MessageIncomplete) and event.message_id == item_id
        return isinstance(event, RunRequiresAction | StepEnded) and event.step_id == item_id

    def delta(self, item_id: str, d: delta_format.Delta) -> tuple[str, Obj]:
        if d.kind == "text":
            return "thread.message.delta", text_delta(item_id, d.text)
        return "thread.run.step.delta", tool_delta(item_id, d.index, d.call_id, d.name, d.text)

    def remainder(self, item_id: str, kind: str, have: int, event: AnyEvent) -> list[tuple[int, tuple[str, Obj]]]:
        """Before the item's end: whatever part of it the client does not hold yet, in one piece."""
        if isinstance(event, MessageCompleted | MessageIncomplete):
            final = text_of(event.content)
            if have < len(final):
                return [(len(final), ("thread.message.delta", text_delta(item_id, final[have:])))]
        elif isinstance(event, RunRequiresAction):
            return [(end, ("thread.run.step.delta", payload))
                    for end, payload in tool_remainder(item_id, event.tool_calls, have)]
        return []
