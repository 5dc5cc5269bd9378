"""The `runs` and `run_steps` read models: rows inserted at creation, then patched (`body || patch`)."""

from __future__ import annotations

from typing import Any

from shared import wire
from shared.events import (
    AnyEvent,
    RunCancelled,
    RunCancelling,
    RunCompleted,
    RunCreated,
    RunExpired,
    RunFailed,
    RunIncomplete,
    RunModified,
    RunRequiresAction,
    RunStarted,
    StepCompleted,
    StepCreated,
    StepEnded,
    ToolOutputsSubmitted,
)
from shared.store import Recorded

from . import Statement

INSERT_RUN = """INSERT INTO runs (run_id, thread_id, tenant_id, assistant_id, seq, status, body)
VALUES ($1, $2, $3, $4, $5, 'queued', $6::jsonb)"""
PATCH_RUN = "UPDATE runs SET status = coalesce($2, status), body = body || $3::jsonb WHERE run_id = $1"
INSERT_STEP = """INSERT INTO run_steps (step_id, run_id, thread_id, tenant_id, seq, body)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)"""
PATCH_STEP = "UPDATE run_steps SET body = body || $2::jsonb WHERE step_id = $1"

_ENDED = {"expires_at": None, "required_action": None}


def _patch_run(run_id: str, status: str | None, patch: dict[str, Any]) -> Statement:
    return (PATCH_RUN, (run_id, status, wire.encode(patch).decode()))


def _patch_step(step_id: str, patch: dict[str, Any]) -> Statement:
    return (PATCH_STEP, (step_id, wire.encode(patch).decode()))


def project(record: Recorded, event: AnyEvent) -> list[Statement]:
    match event:
        case RunCreated():
            body = wire.encode(wire.run_object(event)).decode()
            return [(INSERT_RUN, (event.run_id, event.thread_id, record.tenant_id, event.assistant_id,
                                  record.stream_version, body))]
        case RunStarted():
            return [_patch_run(event.run_id, "in_progress", {"status": "in_progress", "started_at": event.started_at})]
        case RunRequiresAction():
            action = wire.required_action(event.tool_calls)
            return [
                _patch_run(event.run_id, "requires_action", {"status": "requires_action", "required_action": action}),
                _patch_step(event.step_id, {"step_details": wire.tool_calls_details(event.tool_calls, None)}),
            ]
        case ToolOutputsSubmitted():
            return [_patch_run(event.run_id, "queued", {"status": "queued", "required_action": None})]
        case RunCancelling():
            return [_patch_run(event.run_id, "cancelling", {"status": "cancelling"})]
        case RunModified():
            return [_patch_run(event.run_id, None, {"metadata": event.metadata})]
        case RunCompleted():
            return [_patch_run(event.run_id, "completed", {"status": "completed", "completed_at": event.completed_at,
                                                           "usage": event.usage, **_ENDED})]
        case RunIncomplete():
            return [_patch_run(event.run_id, "incomplete", {
                "status": "incomplete", "incomplete_details": {"reason": event.reason}, "usage": event.usage,
                **_ENDED})]
        case RunFailed():
            return [_patch_run(event.run_id, "failed", {"status": "failed", "failed_at": event.failed_at,
                                                        "last_error": event.last_error, "usage": event.usage,
                                                        **_ENDED})]
        case RunCancelled():
            return [_patch_run(event.run_id, "cancelled", {"status": "cancelled", "cancelled_at": event.cancelled_at,
                                                           "usage": event.usage, **_ENDED})]
        case RunExpired():
            return [_patch_run(event.run_id, "expired", {"status": "expired", "usage": event.usage,
                                                         "required_action": None})]
        case StepCreated():
            body = wire.encode(wire.step_object(event)).decode()
            return [(INSERT_STEP, (event.step_id, event.run_id, event.thread_id, record.tenant_id,
                                   record.stream_version, body))]
        case StepCompleted():
            patch: dict[str, Any] = {"status": "completed", "completed_at": event.completed_at, "usage": event.usage}
            if event.tool_calls is not None:
                patch["step_details"] = wire.tool_calls_details(event.tool_calls, event.tool_outputs)
            return [_patch_step(event.step_id, patch)]
        case StepEnded():
            at_key = {"failed": "failed_at", "cancelled": "cancelled_at", "expired": "expired_at"}[event.status]
            return [_patch_step(event.step_id, {"status": event.status, at_key: event.at,
                                                "last_error": event.last_error})]
    return []
