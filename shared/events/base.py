"""The event base class and the value types events are built from (content blocks, tools, usage)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

Metadata = dict[str, str]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    # Bump it, and add an upcast step in upcast.py, when a field changes meaning.
    schema_version: ClassVar[int] = 1


# --- message content, as stored (the Assistants wire shape of output content blocks) ---------------


class TextValue(msgspec.Struct, frozen=True, kw_only=True):
    value: str
    annotations: list[Any] = msgspec.field(default_factory=list)


class TextBlock(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="text"):
    text: TextValue


class ImageUrl(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    detail: Literal["auto", "low", "high"] = "auto"


class ImageUrlBlock(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="image_url"):
    image_url: ImageUrl


class RefusalBlock(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="refusal"):
    refusal: str


ContentBlock = TextBlock | ImageUrlBlock | RefusalBlock


def text_of(content: list[ContentBlock]) -> str:
    return "".join(b.text.value for b in content if isinstance(b, TextBlock))


# --- tools, tool calls and usage ------------------------------------------------------------------


class FunctionDef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="function"):
    function: FunctionDef


class FunctionCall(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    arguments: str


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ToolOutput(msgspec.Struct, frozen=True, kw_only=True):
    tool_call_id: str
    output: str


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(prompt_tokens=self.prompt_tokens + other.prompt_tokens,
                     completion_tokens=self.completion_tokens + other.completion_tokens,
                     total_tokens=self.total_tokens + other.total_tokens)


class TruncationStrategy(msgspec.Struct, frozen=True, kw_only=True):
    type: Literal["auto", "last_messages"] = "auto"
    last_messages: int | None = None


class LastError(msgspec.Struct, frozen=True, kw_only=True):
    code: Literal["server_error", "rate_limit_exceeded", "invalid_prompt"]
    message: str


# "auto" | {"type": "text"} | {"type": "json_object"} | {"type": "json_schema", "json_schema": {...}}
ResponseFormat = str | dict[str, Any]
# "none" | "auto" | "required" | {"type": "function", "function": {"name": ...}}
ToolChoice = str | dict[str, Any]
