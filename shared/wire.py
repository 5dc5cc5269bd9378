"""OpenAI Assistants v2 wire objects, built from events. Read models store exactly these bodies.

Every nullable key is sent, as null when empty: OpenAI's schemas require them and the Node SDK relies on it.
Changes after creation are top-level patches (`body || patch` in SQL), built here too.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from shared.events import (
    AssistantConfig,
    ContentBlock,
    FunctionTool,
    LastError,
    MessageCreated,
    Metadata,
    ResponseFormat,
    RunCreated,
    StepCreated,
    ThreadCreated,
    ToolCall,
    ToolChoice,
    ToolOutput,
    TruncationStrategy,
    Usage,
)


class ThreadObject(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["thread"] = "thread"
    created_at: int
    metadata: Metadata
    tool_resources: dict[str, Any] = msgspec.field(default_factory=dict)


class IncompleteDetails(msgspec.Struct, kw_only=True):
    reason: str


class MessageObject(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["thread.message"] = "thread.message"
    created_at: int
    thread_id: str
    status: str
    incomplete_details: IncompleteDetails | None = None
    completed_at: int | None = None
    incomplete_at: int | None = None
    role: str
    content: list[ContentBlock]
    assistant_id: str | None = None
    run_id: str | None = None
    attachments: list[Any] = msgspec.field(default_factory=list)
    metadata: Metadata


class AssistantObject(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["assistant"] = "assistant"
    created_at: int
    name: str | None
    description: str | None
    model: str
    instructions: str | None
    tools: list[FunctionTool]
    metadata: Metadata
    top_p: float | None
    temperature: float | None
    tool_resources: dict[str, Any] = msgspec.field(default_factory=dict)
    response_format: ResponseFormat


class SubmitToolOutputs(msgspec.Struct, kw_only=True):
    tool_calls: list[ToolCall]


class RequiredAction(msgspec.Struct, kw_only=True):
    type: Literal["submit_tool_outputs"] = "submit_tool_outputs"
    submit_tool_outputs: SubmitToolOutputs


class RunObject(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["thread.run"] = "thread.run"
    created_at: int
    thread_id: str
    assistant_id: str
    status: str
    required_action: RequiredAction | None = None
    last_error: LastError | None = None
    expires_at: int | None
    started_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    incomplete_details: IncompleteDetails | None = None
    model: str
    instructions: str
    tools: list[FunctionTool]
    metadata: Metadata
    usage: Usage | None = None
    temperature: float | None
    top_p: float | None
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    truncation_strategy: TruncationStrategy
    tool_choice: ToolChoice
    parallel_tool_calls: bool
    response_format: ResponseFormat


class MessageCreation(msgspec.Struct, kw_only=True):
    message_id: str


class MessageCreationDetails(msgspec.Struct, kw_only=True):
    type: Literal["message_creation"] = "message_creation"
    message_creation: MessageCreation


class StepFunction(msgspec.Struct, kw_only=True):
    name: str
    arguments: str
    output: str | None = None


class StepToolCall(msgspec.Struct, kw_only=True):
    id: str
    type: Literal["function"] = "function"
    function: StepFunction


class ToolCallsDetails(msgspec.Struct, kw_only=True):
    type: Literal["tool_calls"] = "tool_calls"
    tool_calls: list[StepToolCall]


class RunStepObject(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["thread.run.step"] = "thread.run.step"
    created_at: int
    assistant_id: str
    thread_id: str
    run_id: str
    type: str
    status: str = "in_progress"
    step_details: MessageCreationDetails | ToolCallsDetails
    last_error: LastError | None = None
    expired_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)
    usage: Usage | None = None


class Deleted(msgspec.Struct, kw_only=True):
    id: str
    object: str
    deleted: bool = True


def thread_object(e: ThreadCreated) -> ThreadObject:
    return ThreadObject(id=e.thread_id, created_at=e.created_at, metadata=e.metadata)


def message_object(e: MessageCreated) -> MessageObject:
    return MessageObject(
        id=e.message_id, created_at=e.created_at, thread_id=e.thread_id, status=e.status,
        completed_at=e.created_at if e.status == "completed" else None, role=e.role, content=e.content,
        assistant_id=e.assistant_id, run_id=e.run_id, metadata=e.metadata,
    )


def assistant_object(assistant_id: str, created_at: int, c: AssistantConfig) -> AssistantObject:
    return AssistantObject(
        id=assistant_id, created_at=created_at, name=c.name, description=c.description, model=c.model,
        instructions=c.instructions, tools=c.tools, metadata=c.metadata, top_p=c.top_p, temperature=c.temperature,
        response_format=c.response_format,
    )


def run_object(e: RunCreated) -> RunObject:
    return RunObject(
        id=e.run_id, created_at=e.created_at, thread_id=e.thread_id, assistant_id=e.assistant_id, status="queued",
        expires_at=e.expires_at, model=e.model, instructions=e.instructions, tools=e.tools, metadata=e.metadata,
        temperature=e.temperature, top_p=e.top_p, max_prompt_tokens=e.max_prompt_tokens,
        max_completion_tokens=e.max_completion_tokens, truncation_strategy=e.truncation_strategy,
        tool_choice=e.tool_choice, parallel_tool_calls=e.parallel_tool_calls, response_format=e.response_format,
    )


def step_object(e: StepCreated) -> RunStepObject:
    details: MessageCreationDetails | ToolCallsDetails
    if e.step_type == "message_creation":
        assert e.message_id is not None
        details = MessageCreationDetails(message_creation=MessageCreation(message_id=e.message_id))
    else:
        details = ToolCallsDetails(tool_calls=[])
    return RunStepObject(id=e.step_id, created_at=e.created_at, assistant_id=e.assistant_id, thread_id=e.thread_id,
                         run_id=e.run_id, type=e.step_type, step_details=details)


def tool_calls_details(calls: list[ToolCall], outputs: list[ToolOutput] | None) -> ToolCallsDetails:
    answered = {o.tool_call_id: o.output for o in outputs or []}
    return ToolCallsDetails(tool_calls=[
        StepToolCall(id=c.id, function=StepFunction(name=c.function.name, arguments=c.function.arguments,
                                                    output=answered.get(c.id)))
        for c in calls
    ])


def required_action(calls: list[ToolCall]) -> RequiredAction:
    return RequiredAction(submit_tool_outputs=SubmitToolOutputs(tool_calls=calls))


ENCODER = msgspec.json.Encoder()


def encode(obj: object) -> bytes:
    return ENCODER.encode(obj)


def list_page(items: list[bytes], first_id: str | None, last_id: str | None, has_more: bool) -> bytes:
    """A cursor page from already-encoded items: the read path never decodes stored bodies."""
    head = b'{"object":"list","data":[' + b",".join(items) + b"],"
    tail = ENCODER.encode({"first_id": first_id, "last_id": last_id, "has_more": has_more})
    return head + tail[1:]
