"""How each event changes a run, step or message wire object: top-level patches.

The projector applies them in SQL (`body || patch`); live streams apply them to their own copy, so an SSE
payload and a later read of the same object agree field for field.
"""

from __future__ import annotations

from typing import Any

from shared import wire, wire_responses
from shared.events import (
    AnyEvent,
    MessageCompleted,
    MessageIncomplete,
    ResponseCancelled,
    ResponseCompleted,
    ResponseFailed,
    ResponseIncomplete,
    ResponseStarted,
    RunCancelled,
    RunCancelling,
    RunCompleted,
    RunExpired,
    RunFailed,
    RunIncomplete,
    RunModified,
    RunRequiresAction,
    RunStarted,
    StepCompleted,
    StepEnded,
    ToolOutputsSubmitted,
)

Patch = dict[str, Any]
_ENDED: Patch = {"expires_at": None, "required_action": None}


def run_patch(event: AnyEvent) -> Patch | None:
    """The patch to the run object, with its new `status` key when the status changes."""
    match event:
        case RunStarted():
            return {"status": "in_progress", "started_at": event.started_at}
        case RunRequiresAction():
            return {"status": "requires_action", "required_action": wire.required_action(event.tool_calls)}
        case ToolOutputsSubmitted():
            return {"status": "queued", "required_action": None}
        case RunCancelling():
            return {"status": "cancelling"}
        case RunModified():
            return {"metadata": event.metadata}
        case RunCompleted():
            return {"status": "completed", "completed_at": event.completed_at, "usage": event.usage, **_ENDED}
        case RunIncomplete():
            return {"status": "incomplete", "incomplete_details": {"reason": event.reason}, "usage": event.usage,
                    **_ENDED}
        case RunFailed():
            return {"status": "failed", "failed_at": event.failed_at, "last_error": event.last_error,
                    "usage": event.usage, **_ENDED}
        case RunCancelled():
            return {"status": "cancelled", "cancelled_at": event.cancelled_at, "usage": event.usage, **_ENDED}
        case RunExpired():
            return {"status": "expired", "usage": event.usage, "required_action": None}
    return None


def response_patch(event: AnyEvent) -> Patch | None:
    """The patch to a Response object (its `output` is set separately, from the items it names)."""
    match event:
        case ResponseStarted():
            return {"status": "in_progress"}
        case ResponseCompleted():
            return {"status": "completed", "completed_at": event.completed_at,
                    "usage": wire_responses.response_usage(event.usage.prompt_tokens, event.usage.completion_tokens)}
        case ResponseIncomplete():
            return {"status": "incomplete", "incomplete_details": {"reason": event.reason},
                    "usage": wire_responses.response_usage(event.usage.prompt_tokens, event.usage.completion_tokens)}
        case ResponseFailed():
            return {"status": "failed", "error": {"code": event.error.code, "message": event.error.message},
                    "usage": wire_responses.response_usage(event.usage.prompt_tokens, event.usage.completion_tokens)}
        case ResponseCancelled():
            return {"status": "cancelled",
                    "usage": wire_responses.response_usage(event.usage.prompt_tokens, event.usage.completion_tokens)}
    return None


def step_patch(event: AnyEvent) -> tuple[str, Patch] | None:
    """(step id, patch) for events that change a step after its creation."""
    match event:
        case RunRequiresAction():
            return event.step_id, {"step_details": wire.tool_calls_details(event.tool_calls, None)}
        case StepCompleted():
            patch: Patch = {"status": "completed", "completed_at": event.completed_at, "usage": event.usage}
            if event.tool_calls is not None:
                patch["step_details"] = wire.tool_calls_details(event.tool_calls, event.tool_outputs)
            return event.step_id, patch
        case StepEnded():
            at_key = {"failed": "failed_at", "cancelled": "cancelled_at", "expired": "expired_at"}[event.status]
            return event.step_id, {"status": event.status, at_key: event.at, "last_error": event.last_error}
    return None


def message_patch(event: AnyEvent) -> tuple[str, Patch] | None:
    match event:
        case MessageCompleted():
            return event.message_id, {"status": "completed", "content": event.content,
                                      "completed_at": event.completed_at}
        case MessageIncomplete():
            return event.message_id, {"status": "incomplete", "content": event.content,
                                      "incomplete_at": event.incomplete_at,
                                      "incomplete_details": {"reason": event.reason}}
    return None
