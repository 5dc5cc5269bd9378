"""Events of a run and its steps. They live in the thread's stream: one order for the whole conversation."""

from __future__ import annotations

from typing import ClassVar, Literal

import msgspec

from .base import (
    Event,
    FunctionTool,
    LastError,
    Metadata,
    ResponseFormat,
    ToolCall,
    ToolChoice,
    ToolOutput,
    TruncationStrategy,
    Usage,
)


class RunCreated(Event, frozen=True, tag="thread.run.created"):
    """A run was requested and queued, with its configuration resolved (assistant defaults + overrides)."""

    thread_id: str
    run_id: str
    assistant_id: str
    created_at: int
    expires_at: int
    model: str
    instructions: str
    tools: list[FunctionTool] = msgspec.field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    temperature: float | None = None
    top_p: float | None = None
    response_format: ResponseFormat = "auto"
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncation_strategy: TruncationStrategy = msgspec.field(default_factory=TruncationStrategy)
    metadata: Metadata = msgspec.field(default_factory=dict)


class RunStarted(Event, frozen=True, tag="thread.run.in_progress"):
    """A worker claimed the run. A later attempt (after a lease lapsed) takes it over."""

    thread_id: str
    run_id: str
    started_at: int
    attempt: int
    worker_id: str


class RunRequiresAction(Event, frozen=True, tag="thread.run.requires_action"):
    """Version 2 renamed `usage` to `call_usage`: it is the usage of the one model call that asked for the
    tools, not the run's total (which is what `usage` means on every other run event)."""

    schema_version: ClassVar[int] = 2

    thread_id: str
    run_id: str
    step_id: str
    tool_calls: list[ToolCall]
    call_usage: Usage


class ToolOutputsSubmitted(Event, frozen=True, tag="thread.run.tool_outputs_submitted"):
    thread_id: str
    run_id: str
    step_id: str
    tool_outputs: list[ToolOutput]
    submitted_at: int


class RunModified(Event, frozen=True, tag="thread.run.modified"):
    thread_id: str
    run_id: str
    metadata: Metadata


class RunCancelling(Event, frozen=True, tag="thread.run.cancelling"):
    thread_id: str
    run_id: str


class RunCompleted(Event, frozen=True, tag="thread.run.completed"):
    thread_id: str
    run_id: str
    completed_at: int
    usage: Usage


class RunIncomplete(Event, frozen=True, tag="thread.run.incomplete"):
    thread_id: str
    run_id: str
    at: int
    reason: Literal["max_completion_tokens", "max_prompt_tokens"]
    usage: Usage


class RunFailed(Event, frozen=True, tag="thread.run.failed"):
    thread_id: str
    run_id: str
    failed_at: int
    last_error: LastError
    usage: Usage


class RunCancelled(Event, frozen=True, tag="thread.run.cancelled"):
    thread_id: str
    run_id: str
    cancelled_at: int
    usage: Usage


class RunExpired(Event, frozen=True, tag="thread.run.expired"):
    thread_id: str
    run_id: str
    expired_at: int
    usage: Usage


class StepCreated(Event, frozen=True, tag="thread.run.step.created"):
    thread_id: str
    run_id: str
    step_id: str
    assistant_id: str
    created_at: int
    step_type: Literal["message_creation", "tool_calls"]
    message_id: str | None = None


class StepCompleted(Event, frozen=True, tag="thread.run.step.completed"):
    thread_id: str
    run_id: str
    step_id: str
    completed_at: int
    usage: Usage
    tool_calls: list[ToolCall] | None = None
    tool_outputs: list[ToolOutput] | None = None


class StepEnded(Event, frozen=True, tag="thread.run.step.ended"):
    """A step stopped without completing: its run failed, was cancelled or expired."""

    thread_id: str
    run_id: str
    step_id: str
    status: Literal["failed", "cancelled", "expired"]
    at: int
    last_error: LastError | None = None


RunTerminal = RunCompleted | RunIncomplete | RunFailed | RunCancelled | RunExpired
