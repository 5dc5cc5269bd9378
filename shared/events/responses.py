"""Events of the Responses surface: conversation items that are not messages, and responses themselves.

A response in a conversation lives in the conversation's (= the thread's) stream, so both surfaces see one
order; a response without one (alone, or chained by previous_response_id) has a hidden stream of its own,
named by its id. Its input and output items are item events of that stream (messages are MessageCreated).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from .base import Event, FunctionTool, LastError, Metadata, ToolChoice, Usage


class FunctionCallItem(Event, frozen=True, tag="conversation.item.function_call"):
    thread_id: str
    item_id: str  # fc_…
    call_id: str  # call_… (what the client answers with)
    name: str
    arguments: str
    response_id: str | None = None


class FunctionCallOutputItem(Event, frozen=True, tag="conversation.item.function_call_output"):
    thread_id: str
    item_id: str  # fco_…
    call_id: str
    output: str
    response_id: str | None = None


class ItemDeleted(Event, frozen=True, tag="conversation.item.deleted"):
    thread_id: str
    item_id: str


class ResponseCreated(Event, frozen=True, tag="response.created"):
    thread_id: str  # the stream: the conversation's thread, or the response's own hidden stream
    response_id: str
    created_at: int
    expires_at: int
    model: str
    input_item_ids: list[str]
    conversation_id: str | None = None  # the thread id, when the response continues a conversation
    previous_response_id: str | None = None
    instructions: str | None = None
    tools: list[FunctionTool] = msgspec.field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    truncation: Literal["auto", "disabled"] = "disabled"
    text_format: dict[str, Any] | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)
    store: bool = True
    background: bool = False
    user: str | None = None


class ResponseStarted(Event, frozen=True, tag="response.in_progress"):
    thread_id: str
    response_id: str
    started_at: int
    attempt: int
    worker_id: str


class ResponseCancelling(Event, frozen=True, tag="response.cancelling"):
    thread_id: str
    response_id: str


class ResponseCompleted(Event, frozen=True, tag="response.completed"):
    thread_id: str
    response_id: str
    completed_at: int
    usage: Usage
    output_item_ids: list[str]


class ResponseIncomplete(Event, frozen=True, tag="response.incomplete"):
    thread_id: str
    response_id: str
    at: int
    reason: Literal["max_output_tokens", "content_filter"]
    usage: Usage
    output_item_ids: list[str]


class ResponseFailed(Event, frozen=True, tag="response.failed"):
    thread_id: str
    response_id: str
    failed_at: int
    error: LastError
    usage: Usage
    output_item_ids: list[str]


class ResponseCancelled(Event, frozen=True, tag="response.cancelled"):
    thread_id: str
    response_id: str
    cancelled_at: int
    usage: Usage
    output_item_ids: list[str]


class ResponseDeleted(Event, frozen=True, tag="response.deleted"):
    thread_id: str
    response_id: str


ResponseTerminal = ResponseCompleted | ResponseIncomplete | ResponseFailed | ResponseCancelled
