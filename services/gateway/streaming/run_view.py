"""A run as a client watching it sees it: its wire objects, patched event by event, and the SSE each event makes.

Uses the same patches as the projector, so what a stream says and what a later read returns agree.
"""

from __future__ import annotations

from typing import Any

import msgspec

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
    ToolOutputsSubmitted,
)
from shared.patches import message_patch, run_patch, step_patch

Obj = dict[str, Any]
TERMINAL = frozenset({"completed", "incomplete", "failed", "cancelled", "expired"})


def _plain(obj: object) -> Obj:
    value: Obj = msgspec.to_builtins(obj)
    return value


class RunView:
    def __init__(self, run_id: str, include_thread: bool = False) -> None:
        self.run_id = run_id
        self.include_thread = include_thread
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

    def finished(self, stop_at_action: bool) -> bool:
        status = self.status
        return status in TERMINAL or (stop_at_action and status == "requires_action")
