"""Run requests and decisions: create (and create thread and run), modify, cancel, submit tool outputs."""

from __future__ import annotations

from typing import Any

from shared.errors import InvalidRequestError, NotFoundError
from shared.events import (
    AssistantConfig,
    Event,
    RunCancelling,
    RunCreated,
    RunModified,
    StepCompleted,
    ToolOutput,
    ToolOutputsSubmitted,
)
from shared.ids import new_id
from shared.state import RunState, ThreadState

from .commands import CreateMessage, CreateThread, Strict, check_metadata, message_event, require_thread
from .validation import (
    ToolSpec,
    TruncationSpec,
    check_response_format,
    check_sampling,
    check_token_limit,
    check_tool_choice,
    check_tools,
    check_truncation,
)

MAX_ADDITIONAL_MESSAGES = 32


class RunOptions(Strict):
    """What a run request may override, on both create run and create thread and run."""

    assistant_id: str
    model: str | None = None
    instructions: str | None = None
    tools: list[ToolSpec] | None = None
    metadata: dict[str, str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncation_strategy: TruncationSpec | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: str | dict[str, Any] | None = None


class CreateRun(RunOptions):
    additional_instructions: str | None = None
    additional_messages: list[CreateMessage] | None = None
    reasoning_effort: str | None = None


class CreateThreadAndRun(RunOptions):
    thread: CreateThread | None = None
    tool_resources: dict[str, Any] | None = None


class ModifyRun(Strict):
    metadata: dict[str, str] | None = None


class ToolOutputSpec(Strict):
    tool_call_id: str
    output: str


class SubmitToolOutputs(Strict):
    tool_outputs: list[ToolOutputSpec]
    stream: bool | None = None


def resolve_run(thread_id: str, assistant_id: str, assistant: AssistantConfig, cmd: RunOptions,
                now: int, expires_s: int) -> RunCreated:
    """The run's configuration: the request's overrides over the assistant's defaults, checked."""
    if isinstance(cmd, CreateRun) and cmd.reasoning_effort is not None:
        raise InvalidRequestError("'reasoning_effort' is not supported by threadlog's chat-completions models.",
                                  param="reasoning_effort", code="unsupported_parameter")
    tools = check_tools(cmd.tools) if cmd.tools is not None else assistant.tools
    check_sampling(cmd.temperature, cmd.top_p)
    instructions = cmd.instructions if cmd.instructions is not None else (assistant.instructions or "")
    extra = cmd.additional_instructions if isinstance(cmd, CreateRun) else None
    if extra:
        instructions = f"{instructions}\n\n{extra}" if instructions else extra
    return RunCreated(
        thread_id=thread_id, run_id=new_id("run"), assistant_id=assistant_id, created_at=now,
        expires_at=now + expires_s, model=cmd.model or assistant.model, instructions=instructions, tools=tools,
        tool_choice=check_tool_choice(cmd.tool_choice, tools),
        parallel_tool_calls=True if cmd.parallel_tool_calls is None else cmd.parallel_tool_calls,
        temperature=cmd.temperature if cmd.temperature is not None else assistant.temperature,
        top_p=cmd.top_p if cmd.top_p is not None else assistant.top_p,
        response_format=(check_response_format(cmd.response_format) if cmd.response_format is not None
                         else assistant.response_format),
        max_prompt_tokens=check_token_limit(cmd.max_prompt_tokens, "max_prompt_tokens"),
        max_completion_tokens=check_token_limit(cmd.max_completion_tokens, "max_completion_tokens"),
        truncation_strategy=check_truncation(cmd.truncation_strategy),
        metadata=check_metadata(cmd.metadata),
    )


def decide_create_run(state: ThreadState, tenant_id: str | None, run: RunCreated, cmd: CreateRun,
                      now: int) -> list[Event]:
    require_thread(state, tenant_id)
    if state.active_run_id is not None:
        raise InvalidRequestError(f"Thread {state.thread_id} already has an active run {state.active_run_id}.",
                                  param="thread_id", code="thread_locked")
    extra = cmd.additional_messages or []
    if len(extra) > MAX_ADDITIONAL_MESSAGES:
        raise InvalidRequestError(f"Invalid 'additional_messages': at most {MAX_ADDITIONAL_MESSAGES} messages.",
                                  param="additional_messages", code="array_above_max_length")
    events: list[Event] = [message_event(state.thread_id, m, f"additional_messages[{i}].", now)
                           for i, m in enumerate(extra)]
    events.append(run)
    return events


def require_run(state: ThreadState, tenant_id: str | None, run_id: str) -> RunState:
    require_thread(state, tenant_id)
    run = state.runs.get(run_id)
    if run is None:
        raise NotFoundError(f"No run found with id '{run_id}'.", param="run_id")
    return run


def decide_modify_run(state: ThreadState, tenant_id: str | None, run_id: str, cmd: ModifyRun) -> list[Event]:
    require_run(state, tenant_id, run_id)
    if cmd.metadata is None:
        return []
    return [RunModified(thread_id=state.thread_id, run_id=run_id, metadata=check_metadata(cmd.metadata))]


def decide_cancel_run(state: ThreadState, tenant_id: str | None, run_id: str) -> list[Event]:
    run = require_run(state, tenant_id, run_id)
    if run.status == "cancelling":
        return []
    if not run.active:
        raise InvalidRequestError(f"Cannot cancel run with status '{run.status}'.", param="run_id",
                                  code="run_not_active")
    return [RunCancelling(thread_id=state.thread_id, run_id=run_id)]


def decide_submit_tool_outputs(state: ThreadState, tenant_id: str | None, run_id: str, cmd: SubmitToolOutputs,
                               now: int) -> list[Event]:
    run = require_run(state, tenant_id, run_id)
    pending = run.pending_round
    if run.status != "requires_action" or pending is None:
        raise InvalidRequestError(f"Runs in status '{run.status}' do not accept tool outputs.", param="run_id",
                                  code="run_not_waiting_for_outputs")
    asked = [c.id for c in pending.tool_calls]
    given = [o.tool_call_id for o in cmd.tool_outputs]
    if sorted(given) != sorted(asked):
        missing, unknown = set(asked) - set(given), set(given) - set(asked)
        detail = (f"missing outputs for {sorted(missing)}" if missing else
                  f"no tool call with id {sorted(unknown)}" if unknown else "each tool call must be answered once")
        raise InvalidRequestError(f"Invalid 'tool_outputs': {detail}. Submit all outputs together.",
                                  param="tool_outputs", code="invalid_tool_outputs")
    outputs = [ToolOutput(tool_call_id=o.tool_call_id, output=o.output) for o in cmd.tool_outputs]
    return [
        ToolOutputsSubmitted(thread_id=state.thread_id, run_id=run_id, step_id=pending.step_id, tool_outputs=outputs,
                             submitted_at=now),
        StepCompleted(thread_id=state.thread_id, run_id=run_id, step_id=pending.step_id, completed_at=now,
                      usage=pending.usage, tool_calls=pending.tool_calls, tool_outputs=outputs),
    ]


