"""Events of an assistant's stream. Each carries the assistant's whole configuration after the change."""

from __future__ import annotations

import msgspec

from .base import Event, FunctionTool, Metadata, ResponseFormat


class AssistantConfig(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    tools: list[FunctionTool] = msgspec.field(default_factory=list)
    metadata: Metadata = msgspec.field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    response_format: ResponseFormat = "auto"


class AssistantCreated(Event, frozen=True, tag="assistant.created"):
    assistant_id: str
    created_at: int
    config: AssistantConfig


class AssistantModified(Event, frozen=True, tag="assistant.modified"):
    assistant_id: str
    config: AssistantConfig


class AssistantDeleted(Event, frozen=True, tag="assistant.deleted"):
    assistant_id: str
