"""Every event threadlog records: msgspec Structs in one tagged union, each with a schema version.

Ids, positions and times of recording live on the stored row (see store.py), not in the event.
An event's tag reuses OpenAI's stream event name where one exists, so SSE mapping is a lookup.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

Metadata = dict[str, str]


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


# --- events ---------------------------------------------------------------------------------------


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    # Bump it, and add an upcast step in upcast.py, when a field changes meaning.
    schema_version: ClassVar[int] = 1


class ThreadCreated(Event, frozen=True, tag="thread.created"):
    thread_id: str
    created_at: int
    metadata: Metadata = msgspec.field(default_factory=dict)


class ThreadModified(Event, frozen=True, tag="thread.modified"):
    thread_id: str
    metadata: Metadata


class ThreadDeleted(Event, frozen=True, tag="thread.deleted"):
    thread_id: str


class MessageCreated(Event, frozen=True, tag="thread.message.created"):
    thread_id: str
    message_id: str
    created_at: int
    role: Literal["user", "assistant"]
    content: list[ContentBlock]
    metadata: Metadata = msgspec.field(default_factory=dict)
    assistant_id: str | None = None
    run_id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] = "completed"


class MessageModified(Event, frozen=True, tag="thread.message.modified"):
    thread_id: str
    message_id: str
    metadata: Metadata


class MessageDeleted(Event, frozen=True, tag="thread.message.deleted"):
    thread_id: str
    message_id: str


AnyEvent = ThreadCreated | ThreadModified | ThreadDeleted | MessageCreated | MessageModified | MessageDeleted

EVENT_TYPES: dict[str, type[Event]] = {
    str(cls.__struct_config__.tag): cls for cls in AnyEvent.__args__
}
CURRENT_SCHEMA: dict[str, int] = {tag: cls.schema_version for tag, cls in EVENT_TYPES.items()}


def event_type(event: Event) -> str:
    tag = event.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


class Codec:
    """Encoder and decoder built once and reused (msgspec's advice): the hot path of every append and read."""

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)

    def encode(self, event: Event) -> bytes:
        return self._encoder.encode(event)

    def decode(self, payload: bytes) -> AnyEvent:
        return self._decoder.decode(payload)
