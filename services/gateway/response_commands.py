"""POST /v1/responses: the request, checked, and the events that start a response."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from shared import wire_responses
from shared.errors import InvalidRequestError
from shared.events import Event, FunctionDef, FunctionTool, ResponseCreated
from shared.state import ThreadState

from .commands import Strict, check_metadata
from .items import check_calls, item_events, item_id_of
from .validation import check_sampling, check_tool_choice

UNSUPPORTED = ("reasoning", "prompt", "max_tool_calls", "top_logprobs", "prompt_cache_key", "safety_identifier",
               "prompt_cache_retention", "context_management", "conversation_reference")


class FlatFunctionTool(Strict, tag_field="type", tag="function"):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CreateResponse(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    model: str | None = None
    input: str | list[Any] | None = None
    instructions: str | None = None
    conversation: str | dict[str, Any] | None = None
    previous_response_id: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    background: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    temperature: float | None = None
    top_p: float | None = None
    text: dict[str, Any] | None = None
    include: list[str] | None = None
    user: str | None = None
    service_tier: str | None = None
    reasoning: Any = None
    prompt: Any = None
    max_tool_calls: Any = None
    top_logprobs: Any = None
    prompt_cache_key: Any = None
    safety_identifier: Any = None
    prompt_cache_retention: Any = None
    context_management: Any = None
    conversation_reference: Any = None


def conversation_id(cmd: CreateResponse) -> str | None:
    raw = cmd.conversation
    if raw is None:
        return None
    value = raw.get("id") if isinstance(raw, dict) else raw
    if not isinstance(value, str) or not value:
        raise InvalidRequestError("Invalid 'conversation': expected an id or {'id': ...}.", param="conversation",
                                  code="invalid_value")
    return wire_responses.to_thread_id(value)


def check_request(cmd: CreateResponse) -> None:
    if not cmd.model:
        raise InvalidRequestError("Missing required parameter: 'model'.", param="model",
                                  code="missing_required_parameter")
    for name in UNSUPPORTED:
        if getattr(cmd, name) is not None:
            raise InvalidRequestError(f"'{name}' is not supported by threadlog.", param=name,
                                      code="unsupported_parameter")
    if cmd.include:
        raise InvalidRequestError("'include' values are not available on threadlog.", param="include",
                                  code="unsupported_parameter")
    if cmd.conversation is not None and cmd.previous_response_id is not None:
        raise InvalidRequestError("'conversation' and 'previous_response_id' cannot be used together.",
                                  param="previous_response_id", code="invalid_value")
    if cmd.store is False and (cmd.conversation is not None or cmd.background):
        raise InvalidRequestError("'store: false' cannot be combined with 'conversation' or 'background'.",
                                  param="store", code="invalid_value")
    if cmd.max_output_tokens is not None and cmd.max_output_tokens < 16:
        raise InvalidRequestError("Invalid 'max_output_tokens': the minimum is 16.", param="max_output_tokens",
                                  code="integer_below_min_value")
    if cmd.service_tier not in (None, "auto", "default"):
        raise InvalidRequestError("Only the default service tier exists here.", param="service_tier",
                                  code="unsupported_parameter")
    check_sampling(cmd.temperature, cmd.top_p)


def tools_of(cmd: CreateResponse) -> list[FunctionTool]:
    out: list[FunctionTool] = []
    for i, raw in enumerate(cmd.tools or []):
        if raw.get("type") != "function" or "function" in raw:
            raise InvalidRequestError(
                f"Invalid 'tools[{i}]': only flat function tools ({{'type': 'function', 'name': ...}}) are supported.",
                param=f"tools[{i}]", code="invalid_value")
        try:
            t = msgspec.convert(raw, FlatFunctionTool)
        except msgspec.ValidationError as e:
            raise InvalidRequestError(f"Invalid 'tools[{i}]': {e}", param=f"tools[{i}]", code="invalid_value") from None
        out.append(FunctionTool(function=FunctionDef(name=t.name, description=t.description, parameters=t.parameters,
                                                     strict=t.strict)))
    return out


def text_format(cmd: CreateResponse) -> dict[str, Any] | None:
    if cmd.text is None:
        return None
    extra = set(cmd.text) - {"format"}
    fmt = cmd.text.get("format")
    if extra or (fmt is not None and fmt.get("type") not in ("text", "json_object", "json_schema")):
        raise InvalidRequestError("Invalid 'text': only 'format' (text, json_object, json_schema) is supported.",
                                  param="text", code="unsupported_parameter")
    return fmt if isinstance(fmt, dict) else None


def response_event(cmd: CreateResponse, *, stream_id: str, response_id: str, conversation: str | None,
                   input_ids: list[str], now: int, expires_s: int) -> ResponseCreated:
    tools = tools_of(cmd)
    choice = cmd.tool_choice
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        choice = {"type": "function", "function": {"name": choice["name"]}}
    return ResponseCreated(
        thread_id=stream_id, response_id=response_id, created_at=now, expires_at=now + expires_s,
        model=cmd.model or "", input_item_ids=input_ids, conversation_id=conversation,
        previous_response_id=cmd.previous_response_id, instructions=cmd.instructions, tools=tools,
        tool_choice=check_tool_choice(choice, tools),
        parallel_tool_calls=True if cmd.parallel_tool_calls is None else cmd.parallel_tool_calls,
        max_output_tokens=cmd.max_output_tokens, temperature=cmd.temperature, top_p=cmd.top_p,
        truncation=cmd.truncation or "disabled", text_format=text_format(cmd), metadata=check_metadata(cmd.metadata),
        store=cmd.store is not False, background=bool(cmd.background), user=cmd.user,
    )


def input_events(cmd: CreateResponse, stream_id: str, now: int) -> list[Event]:
    raw = cmd.input
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    return item_events(stream_id, raw, "input", now)


def decide_response(state: ThreadState, inputs: list[Event], created: ResponseCreated,
                    open_calls: set[str]) -> list[Event]:
    """The events of a new response in `state`'s stream: its input items, then the response itself."""
    if created.conversation_id is not None and state.active_run_id is not None:
        raise InvalidRequestError("Another process is currently operating on this conversation. Please retry in a "
                                  "few seconds.", param="conversation", code="conversation_locked")
    check_calls(open_calls | set(state.open_calls), inputs)
    ids = [item_id_of(e) for e in inputs]
    return [*inputs, msgspec.structs.replace(created, input_item_ids=ids)]
