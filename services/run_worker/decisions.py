"""Pure decisions of the run-worker: (thread state, what happened) -> events. No I/O."""

from __future__ import annotations

from typing import Literal

from shared.events import (
    ContentBlock,
    Event,
    LastError,
    MessageCompleted,
    MessageCreated,
    MessageIncomplete,
    RunCancelled,
    RunCompleted,
    RunExpired,
    RunFailed,
    RunIncomplete,
    RunRequiresAction,
    RunStarted,
    StepCompleted,
    StepCreated,
    StepEnded,
    ToolCall,
    Usage,
)
from shared.ids import new_id
from shared.state import RunState, ThreadState

Action = Literal["execute", "drop", "wait", "busy"]


class SupersededError(Exception):
    """The run moved on without us (taken over, or ended): stop, append nothing."""


def claim(state: ThreadState, run_id: str, worker_id: str, now: int, holder_alive: bool) -> tuple[list[Event], Action]:
    """What a delivery about `run_id` should do now, and the events that start doing it."""
    run = state.runs.get(run_id)
    if run is None or not run.active or not state.live:
        return [], "drop"
    if run.status == "cancelling":
        return ([], "busy") if holder_alive else (ended(state, run, now, "cancelled"), "drop")
    if now >= run.config.expires_at:
        if holder_alive:
            return [], "busy"  # the holder checks the deadline itself
        return ended(state, run, now, "expired"), "drop"
    if run.status == "requires_action":
        return [], "wait"
    if run.status == "in_progress" and holder_alive:
        return [], "busy"
    return [RunStarted(thread_id=state.thread_id, run_id=run_id, started_at=now, attempt=run.attempt + 1,
                       worker_id=worker_id)], "execute"


def ours(state: ThreadState, run_id: str, attempt: int) -> RunState:
    """The run, if this attempt still holds it; else SupersededError."""
    run = state.runs.get(run_id)
    if run is None or run.attempt != attempt or run.status not in ("in_progress", "cancelling") or not state.live:
        raise SupersededError(run_id)
    return run


def start_message(state: ThreadState, run_id: str, attempt: int, now: int) -> list[Event]:
    """The message step a text answer streams into. A takeover reuses the one already created."""
    run = ours(state, run_id, attempt)
    if run.message_id is not None and run.step_type == "message_creation":
        return []
    step_id, message_id = new_id("step"), new_id("msg")
    c = run.config
    return [
        StepCreated(thread_id=state.thread_id, run_id=run_id, step_id=step_id, assistant_id=c.assistant_id,
                    created_at=now, step_type="message_creation", message_id=message_id),
        MessageCreated(thread_id=state.thread_id, message_id=message_id, created_at=now, role="assistant", content=[],
                       assistant_id=c.assistant_id, run_id=run_id, status="in_progress"),
    ]


def start_tool_calls(state: ThreadState, run_id: str, attempt: int, now: int) -> list[Event]:
    run = ours(state, run_id, attempt)
    if run.step_id is not None and run.step_type == "tool_calls":
        return []
    return [StepCreated(thread_id=state.thread_id, run_id=run_id, step_id=new_id("step"),
                        assistant_id=run.config.assistant_id, created_at=now, step_type="tool_calls")]


def _close_message(state: ThreadState, run: RunState, content: list[ContentBlock], now: int, usage: Usage,
                   complete: bool) -> list[Event]:
    if run.message_id is None or run.step_id is None or run.step_type != "message_creation":
        return []
    message: Event = (MessageCompleted(thread_id=state.thread_id, message_id=run.message_id, content=content,
                                       completed_at=now) if complete else
                      MessageIncomplete(thread_id=state.thread_id, message_id=run.message_id, content=content,
                                        incomplete_at=now, reason="max_tokens"))
    return [message, StepCompleted(thread_id=state.thread_id, run_id=run.run_id, step_id=run.step_id,
                                   completed_at=now, usage=usage)]


def finish_text(state: ThreadState, run_id: str, attempt: int, content: list[ContentBlock], usage: Usage,
                now: int, truncated: bool) -> list[Event]:
    """The model answered in text: complete the message, its step and the run (incomplete if cut short)."""
    run = ours(state, run_id, attempt)
    if run.status == "cancelling":
        return ended(state, run, now, "cancelled", content=content, call_usage=usage)
    total = run.usage + usage
    events = _close_message(state, run, content, now, usage, complete=not truncated)
    if truncated:
        events.append(RunIncomplete(thread_id=state.thread_id, run_id=run_id, at=now, reason="max_completion_tokens",
                                    usage=total))
    else:
        events.append(RunCompleted(thread_id=state.thread_id, run_id=run_id, completed_at=now, usage=total))
    return events


def finish_tool_calls(state: ThreadState, run_id: str, attempt: int, calls: list[ToolCall], usage: Usage,
                      now: int, content: list[ContentBlock]) -> list[Event]:
    """The model asked for functions: the run waits for the client's outputs."""
    run = ours(state, run_id, attempt)
    if run.status == "cancelling":
        return ended(state, run, now, "cancelled", content=content, call_usage=usage)
    events: list[Event] = []
    step_id = run.step_id if run.step_type == "tool_calls" else None
    if run.step_type == "message_creation":  # text the model said before asking for the calls
        events += _close_message(state, run, content, now, Usage(), complete=True)
    if step_id is None:
        created = StepCreated(thread_id=state.thread_id, run_id=run_id, step_id=new_id("step"),
                              assistant_id=run.config.assistant_id, created_at=now, step_type="tool_calls")
        events.append(created)
        step_id = created.step_id
    events.append(RunRequiresAction(thread_id=state.thread_id, run_id=run_id, step_id=step_id, tool_calls=calls,
                                    call_usage=usage))
    return events


def prompt_too_long(state: ThreadState, run_id: str, attempt: int, now: int) -> list[Event]:
    run = ours(state, run_id, attempt)
    return [RunIncomplete(thread_id=state.thread_id, run_id=run_id, at=now, reason="max_prompt_tokens",
                          usage=run.usage)]


def fail(state: ThreadState, run_id: str, attempt: int, now: int, error: LastError,
         content: list[ContentBlock] | None = None) -> list[Event]:
    run = ours(state, run_id, attempt)
    if run.status == "cancelling":
        return ended(state, run, now, "cancelled", content=content)
    return ended(state, run, now, "failed", content=content, error=error)


def ended(state: ThreadState, run: RunState, now: int, how: Literal["cancelled", "expired", "failed"], *,
          content: list[ContentBlock] | None = None, error: LastError | None = None,
          call_usage: Usage | None = None) -> list[Event]:
    """A run that stops without an answer: its open message and step end too, then the run."""
    events: list[Event] = []
    reason = {"cancelled": "run_cancelled", "expired": "run_expired", "failed": "run_failed"}[how]
    if run.message_id is not None and run.step_type == "message_creation":
        events.append(MessageIncomplete(thread_id=state.thread_id, message_id=run.message_id, content=content or [],
                                        incomplete_at=now, reason=reason))  # type: ignore[arg-type]
    if run.step_id is not None:
        events.append(StepEnded(thread_id=state.thread_id, run_id=run.run_id, step_id=run.step_id, status=how, at=now,
                                last_error=error))
    usage = run.usage + (call_usage or Usage())
    t, r = state.thread_id, run.run_id
    if how == "cancelled":
        events.append(RunCancelled(thread_id=t, run_id=r, cancelled_at=now, usage=usage))
    elif how == "expired":
        events.append(RunExpired(thread_id=t, run_id=r, expired_at=now, usage=usage))
    else:
        assert error is not None
        events.append(RunFailed(thread_id=t, run_id=r, failed_at=now, last_error=error, usage=usage))
    return events
