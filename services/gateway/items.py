"""Conversation items in requests (the Responses `input` and the Conversations `items`), as events.

A message item becomes a MessageCreated (the Assistants view shows its user and assistant ones); a function
call and its output become item events. Unsupported kinds are refused on their exact `param`.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from shared.errors import InvalidRequestError
from shared.events import (
    ContentBlock,
    Event,
    FunctionCallItem,
    FunctionCallOutputItem,
    ImageUrl,
    ImageUrlBlock,
    MessageCreated,
    RefusalBlock,
    TextBlock,
    TextValue,
)
from shared.ids import new_id

from .commands import MAX_CONTENT_CHARS

MAX_ITEMS = 20


class Part(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high"] = "auto"
    refusal: str | None = None
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class MessageInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[Part]
    type: Literal["message"] = "message"
    id: str | None = None
    status: str | None = None


class FunctionCallInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[Part]
    id: str | None = None
    status: str | None = None


def _blocks(content: str | list[Part], param: str) -> list[ContentBlock]:
    if isinstance(content, str):
        return [TextBlock(text=TextValue(value=content))]
    blocks: list[ContentBlock] = []
    for i, part in enumerate(content):
        if part.type in ("input_text", "output_text", "text") and part.text is not None:
            blocks.append(TextBlock(text=TextValue(value=part.text)))
        elif part.type == "input_image" and part.image_url:
            blocks.append(ImageUrlBlock(image_url=ImageUrl(url=part.image_url, detail=part.detail)))
        elif part.type == "refusal" and part.refusal is not None:
            blocks.append(RefusalBlock(refusal=part.refusal))
        else:
            raise InvalidRequestError(
                f"Invalid '{param}[{i}]': content part type '{part.type}' is not supported (threadlog takes text "
                "and image URLs; it has no Files API).", param=f"{param}[{i}].type", code="unsupported_parameter")
    if sum(len(b.text.value) for b in blocks if isinstance(b, TextBlock)) > MAX_CONTENT_CHARS:
        raise InvalidRequestError(f"Invalid '{param}': string too long.", param=param, code="string_above_max_length")
    return blocks


def _convert(raw: Any, kind: type[Any], param: str) -> Any:
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as e:
        raise InvalidRequestError(f"Invalid '{param}': {e}", param=param, code="invalid_value") from None


def item_events(thread_id: str, raw_items: list[Any], param: str, now: int) -> list[Event]:
    """The events recording `raw_items` (as sent) in `thread_id`'s stream, in order."""
    if len(raw_items) > MAX_ITEMS:
        raise InvalidRequestError(f"Invalid '{param}': at most {MAX_ITEMS} items.", param=param,
                                  code="array_above_max_length")
    events: list[Event] = []
    for i, raw in enumerate(raw_items):
        where = f"{param}[{i}]"
        kind = raw.get("type", "message") if isinstance(raw, dict) else None
        if kind == "message":
            m: MessageInput = _convert(raw, MessageInput, where)
            events.append(MessageCreated(thread_id=thread_id, message_id=new_id("msg"), created_at=now, role=m.role,
                                         content=_blocks(m.content, f"{where}.content")))
        elif kind == "function_call":
            c: FunctionCallInput = _convert(raw, FunctionCallInput, where)
            events.append(FunctionCallItem(thread_id=thread_id, item_id=new_id("fc"), call_id=c.call_id, name=c.name,
                                           arguments=c.arguments))
        elif kind == "function_call_output":
            o: FunctionCallOutputInput = _convert(raw, FunctionCallOutputInput, where)
            text = o.output if isinstance(o.output, str) else "".join(p.text or "" for p in o.output)
            events.append(FunctionCallOutputItem(thread_id=thread_id, item_id=new_id("fco"), call_id=o.call_id,
                                                 output=text))
        else:
            raise InvalidRequestError(f"Invalid '{where}.type': item type '{kind}' is not supported.",
                                      param=f"{where}.type", code="unsupported_parameter")
    return events


def check_calls(open_calls: set[str], events: list[Event], *, param: str = "input",
                require_answers: bool = True) -> None:
    """Hosted rules: no output without its call; for a new turn, every open call answered first."""
    calls = set(open_calls)
    answered: set[str] = set()
    for e in events:
        if isinstance(e, FunctionCallItem):
            calls.add(e.call_id)
        elif isinstance(e, FunctionCallOutputItem):
            if e.call_id not in calls:
                raise InvalidRequestError(f"No tool call found for function call output with call_id {e.call_id}.",
                                          param=param, code="invalid_value")
            answered.add(e.call_id)
    missing = sorted(c for c in open_calls if c not in answered)
    if missing and require_answers:
        raise InvalidRequestError(f"No tool output found for function call {missing[0]}.", param=param,
                                  code="invalid_value")


def item_id_of(event: Event) -> str:
    if isinstance(event, MessageCreated):
        return event.message_id
    if isinstance(event, FunctionCallItem | FunctionCallOutputItem):
        return event.item_id
    raise TypeError(f"not an item event: {event!r}")
