"""OpenAI Assistants v2 wire objects, built from events. Read models store exactly these bytes.

Every nullable key is sent, as null when empty: OpenAI's schemas require them and the Node SDK relies on it.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from shared.events import ContentBlock, MessageCreated, Metadata, ThreadCreated


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


ENCODER = msgspec.json.Encoder()


def encode(obj: msgspec.Struct) -> bytes:
    return ENCODER.encode(obj)


def list_page(items: list[bytes], first_id: str | None, last_id: str | None, has_more: bool) -> bytes:
    """A cursor page from already-encoded items: the read path never decodes stored bodies."""
    head = b'{"object":"list","data":[' + b",".join(items) + b"],"
    tail = ENCODER.encode({"first_id": first_id, "last_id": last_id, "has_more": has_more})
    return head + tail[1:]
