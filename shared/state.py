"""What a stream says now: pure folds over its events, used to decide commands. No I/O.

The fold mutates the state it is given (each state is private to its cache entry) and bumps `version`.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from shared.events import (
    AnyEvent,
    AssistantConfig,
    AssistantCreated,
    AssistantDeleted,
    AssistantModified,
    FunctionCallItem,
    FunctionCallOutputItem,
    ItemDeleted,
    MessageCreated,
    MessageDeleted,
    ResponseCancelled,
    ResponseCancelling,
    ResponseCompleted,
    ResponseCreated,
    ResponseDeleted,
    ResponseFailed,
    ResponseIncomplete,
    ResponseStarted,
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
    ThreadCreated,
    ThreadDeleted,
    ThreadErased,
    ThreadModified,
    ToolCall,
    ToolOutput,
    ToolOutputsSubmitted,
    Usage,
)

RunStatus = Literal["queued", "in_progress", "requires_action", "cancelling", "cancelled", "failed", "completed",
                    "incomplete", "expired"]
ACTIVE_STATUSES = frozenset({"queued", "in_progress", "requires_action", "cancelling"})


class ToolRound(msgspec.Struct, kw_only=True):
    """One round trip of function calls inside a run: what the model asked and what the client answered."""

    step_id: str
    tool_calls: list[ToolCall]
    outputs: list[ToolOutput] | None = None
    usage: Usage = msgspec.field(default_factory=Usage)


class RunState(msgspec.Struct, kw_only=True):
    config: RunCreated
    created_version: int = 0  # the stream version of its creation: where a stream of the run starts
    status: RunStatus = "queued"
    attempt: int = 0
    worker_id: str | None = None
    # The step and message the current model call writes into; reused by a takeover, never duplicated.
    step_id: str | None = None
    step_type: str | None = None
    message_id: str | None = None
    rounds: list[ToolRound] = msgspec.field(default_factory=list)
    usage: Usage = msgspec.field(default_factory=Usage)

    @property
    def run_id(self) -> str:
        return self.config.run_id

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def pending_round(self) -> ToolRound | None:
        return self.rounds[-1] if self.rounds and self.rounds[-1].outputs is None else None


class ResponseState(msgspec.Struct, kw_only=True):
    config: ResponseCreated
    created_version: int = 0
    status: str = "queued"
    attempt: int = 0
    worker_id: str | None = None
    message_id: str | None = None  # the output message being written, reused by a takeover
    output_item_ids: list[str] = msgspec.field(default_factory=list)
    usage: Usage = msgspec.field(default_factory=Usage)
    deleted: bool = False

    @property
    def response_id(self) -> str:
        return self.config.response_id

    @property
    def active(self) -> bool:
        return self.status in ("queued", "in_progress", "cancelling")


class ThreadState(msgspec.Struct, kw_only=True):
    thread_id: str
    tenant_id: str | None = None
    version: int = 0
    exists: bool = False
    deleted: bool = False
    created_at: int = 0
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    message_ids: set[str] = msgspec.field(default_factory=set)
    runs: dict[str, RunState] = msgspec.field(default_factory=dict)
    responses: dict[str, ResponseState] = msgspec.field(default_factory=dict)
    # The run or response under way: one turn at a time per conversation.
    active_run_id: str | None = None
    # Conversation items (every message, function call and output) and the calls still unanswered.
    item_ids: set[str] = msgspec.field(default_factory=set)
    open_calls: dict[str, str] = msgspec.field(default_factory=dict)  # call id -> function_call item id

    @property
    def live(self) -> bool:
        return self.exists and not self.deleted


def _run_event(state: ThreadState, event: AnyEvent) -> None:
    run = state.runs.get(getattr(event, "run_id", ""))
    if run is None:
        return
    match event:
        case RunStarted(attempt=attempt, worker_id=worker_id):
            run.status, run.attempt, run.worker_id = "in_progress", attempt, worker_id
        case StepCreated(step_id=step_id, step_type=step_type, message_id=message_id):
            run.step_id, run.step_type, run.message_id = step_id, step_type, message_id
        case RunRequiresAction(step_id=step_id, tool_calls=calls, call_usage=usage):
            run.status = "requires_action"
            run.rounds.append(ToolRound(step_id=step_id, tool_calls=list(calls), usage=usage))
            run.usage = run.usage + usage
        case ToolOutputsSubmitted(tool_outputs=outputs):
            if run.rounds:
                run.rounds[-1].outputs = list(outputs)
            run.status = "queued"
        case StepCompleted() | StepEnded():
            run.step_id = run.step_type = run.message_id = None
        case RunCancelling():
            run.status = "cancelling"
        case RunModified():
            pass
        case RunCompleted(usage=usage):
            run.status, run.usage = "completed", usage
        case RunIncomplete(usage=usage):
            run.status, run.usage = "incomplete", usage
        case RunFailed(usage=usage):
            run.status, run.usage = "failed", usage
        case RunCancelled(usage=usage):
            run.status, run.usage = "cancelled", usage
        case RunExpired(usage=usage):
            run.status, run.usage = "expired", usage
    if not run.active and state.active_run_id == run.run_id:
        state.active_run_id = None


def _response_event(state: ThreadState, event: AnyEvent) -> None:
    response = state.responses.get(getattr(event, "response_id", ""))
    if response is None:
        return
    match event:
        case ResponseStarted(attempt=attempt, worker_id=worker_id):
            response.status, response.attempt, response.worker_id = "in_progress", attempt, worker_id
        case ResponseCancelling():
            response.status = "cancelling"
        case ResponseCompleted() | ResponseIncomplete() | ResponseFailed() | ResponseCancelled():
            response.status = {ResponseCompleted: "completed", ResponseIncomplete: "incomplete",
                               ResponseFailed: "failed", ResponseCancelled: "cancelled"}[type(event)]
            response.usage = event.usage
            response.output_item_ids = list(event.output_item_ids)
            response.message_id = None
        case ResponseDeleted():
            response.deleted = True
    if not response.active and state.active_run_id == response.response_id:
        state.active_run_id = None


def evolve(state: ThreadState, event: AnyEvent, tenant_id: str) -> ThreadState:
    if state.tenant_id is None:
        state.tenant_id = tenant_id  # a response's hidden stream has no thread.created
    match event:
        case ThreadCreated(metadata=metadata, created_at=created_at):
            state.exists, state.tenant_id, state.created_at = True, tenant_id, created_at
            state.metadata = dict(metadata)
        case ThreadModified(metadata=metadata):
            state.metadata = dict(metadata)
        case ThreadDeleted() | ThreadErased():
            state.deleted = True
        case MessageCreated(message_id=message_id, role=role, response_id=response_id):
            if role in ("user", "assistant"):
                state.message_ids.add(message_id)
            state.item_ids.add(message_id)
            response = state.responses.get(response_id or "")
            if response is not None and role == "assistant" and response.active:
                response.message_id = message_id
        case MessageDeleted(message_id=message_id) | ItemDeleted(item_id=message_id):
            state.message_ids.discard(message_id)
            state.item_ids.discard(message_id)
            # A deleted call is no longer waiting for its output.
            for call_id in [c for c, item_id in state.open_calls.items() if item_id == message_id]:
                del state.open_calls[call_id]
        case FunctionCallItem(item_id=item_id, call_id=call_id):
            state.item_ids.add(item_id)
            state.open_calls[call_id] = item_id
        case FunctionCallOutputItem(item_id=item_id, call_id=call_id):
            state.item_ids.add(item_id)
            state.open_calls.pop(call_id, None)
        case ResponseCreated(response_id=response_id, conversation_id=conversation_id):
            state.responses[response_id] = ResponseState(config=event, created_version=state.version + 1)
            if conversation_id is not None:
                state.active_run_id = response_id
        case RunCreated(run_id=run_id):
            state.runs[run_id] = RunState(config=event, created_version=state.version + 1)
            state.active_run_id = run_id
        case _:
            _run_event(state, event)
            _response_event(state, event)
    state.version += 1
    return state


class AssistantState(msgspec.Struct, kw_only=True):
    assistant_id: str
    tenant_id: str | None = None
    version: int = 0
    exists: bool = False
    deleted: bool = False
    created_at: int = 0
    config: AssistantConfig | None = None

    @property
    def live(self) -> bool:
        return self.exists and not self.deleted


def evolve_assistant(state: AssistantState, event: AnyEvent, tenant_id: str) -> AssistantState:
    match event:
        case AssistantCreated(created_at=created_at, config=config):
            state.exists, state.tenant_id, state.created_at, state.config = True, tenant_id, created_at, config
        case AssistantModified(config=config):
            state.config = config
        case AssistantDeleted():
            state.deleted = True
    state.version += 1
    return state
