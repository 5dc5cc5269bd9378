"""Pure decisions for responses, as decisions.py is for runs: (stream state, what happened) -> events."""

from __future__ import annotations

from typing import Literal

from shared import wire_responses
from shared.events import (
    ContentBlock,
    Event,
    FunctionCallItem,
    LastError,
    MessageCompleted,
    MessageCreated,
    MessageIncomplete,
    ResponseCancelled,
    ResponseCompleted,
    ResponseFailed,
    ResponseIncomplete,
    ResponseStarted,
    ToolCall,
    Usage,
)
from shared.ids import new_id
from shared.state import ResponseState, ThreadState

from .decisions import Action, SupersededError


def claim(state: ThreadState, response_id: str, worker_id: str, now: int,
          holder_alive: bool) -> tuple[list[Event], Action]:
    r = state.responses.get(response_id)
    if r is None or not r.active or r.deleted:
        return [], "drop"
    if r.status == "cancelling":
        return ([], "busy") if holder_alive else (ended(state, r, now, "cancelled"), "drop")
    if now >= r.config.expires_at:
        if holder_alive:
            return [], "busy"
        error = LastError(code="server_error", message="The response expired before it could finish.")
        return ended(state, r, now, "failed", error=error), "drop"
    if r.status == "in_progress" and holder_alive:
        return [], "busy"
    return [ResponseStarted(thread_id=state.thread_id, response_id=response_id, started_at=now,
                            attempt=r.attempt + 1, worker_id=worker_id)], "execute"


def ours(state: ThreadState, response_id: str, attempt: int) -> ResponseState:
    r = state.responses.get(response_id)
    if r is None or r.attempt != attempt or r.status not in ("in_progress", "cancelling") or r.deleted:
        raise SupersededError(response_id)
    return r


def start_message(state: ThreadState, response_id: str, attempt: int, now: int) -> list[Event]:
    r = ours(state, response_id, attempt)
    if r.message_id is not None:
        return []  # a takeover writes into the message the lapsed attempt created
    return [MessageCreated(thread_id=state.thread_id, message_id=new_id("msg"), created_at=now, role="assistant",
                           content=[], status="in_progress", response_id=response_id)]


def finish(state: ThreadState, response_id: str, attempt: int, content: list[ContentBlock], calls: list[ToolCall],
           usage: Usage, now: int, truncated: bool) -> list[Event]:
    r = ours(state, response_id, attempt)
    if r.status == "cancelling":
        return ended(state, r, now, "cancelled", content=content, call_usage=usage)
    events: list[Event] = []
    output: list[str] = []
    if r.message_id is not None:
        output.append(r.message_id)
        if truncated:
            events.append(MessageIncomplete(thread_id=state.thread_id, message_id=r.message_id, content=content,
                                            incomplete_at=now, reason="max_tokens"))
        else:
            events.append(MessageCompleted(thread_id=state.thread_id, message_id=r.message_id, content=content,
                                           completed_at=now))
    for call in calls:
        item = FunctionCallItem(thread_id=state.thread_id, item_id=wire_responses.call_item_id(call.id),
                                call_id=call.id, name=call.function.name, arguments=call.function.arguments,
                                response_id=response_id)
        events.append(item)
        output.append(item.item_id)
    total = r.usage + usage
    if truncated:
        events.append(ResponseIncomplete(thread_id=state.thread_id, response_id=response_id, at=now,
                                         reason="max_output_tokens", usage=total, output_item_ids=output))
    else:
        events.append(ResponseCompleted(thread_id=state.thread_id, response_id=response_id, completed_at=now,
                                        usage=total, output_item_ids=output))
    return events


def fail(state: ThreadState, response_id: str, attempt: int, now: int, error: LastError,
         content: list[ContentBlock] | None = None) -> list[Event]:
    r = ours(state, response_id, attempt)
    if r.status == "cancelling":
        return ended(state, r, now, "cancelled", content=content)
    return ended(state, r, now, "failed", content=content, error=error)


def ended(state: ThreadState, r: ResponseState, now: int, how: Literal["cancelled", "failed"], *,
          content: list[ContentBlock] | None = None, error: LastError | None = None,
          call_usage: Usage | None = None) -> list[Event]:
    events: list[Event] = []
    output: list[str] = []
    if r.message_id is not None:
        output.append(r.message_id)
        reason: Literal["run_cancelled", "run_failed"] = "run_cancelled" if how == "cancelled" else "run_failed"
        events.append(MessageIncomplete(thread_id=state.thread_id, message_id=r.message_id, content=content or [],
                                        incomplete_at=now, reason=reason))
    usage = r.usage + (call_usage or Usage())
    if how == "cancelled":
        events.append(ResponseCancelled(thread_id=state.thread_id, response_id=r.response_id, cancelled_at=now,
                                        usage=usage, output_item_ids=output))
    else:
        assert error is not None
        events.append(ResponseFailed(thread_id=state.thread_id, response_id=r.response_id, failed_at=now,
                                     error=error, usage=usage, output_item_ids=output))
    return events
