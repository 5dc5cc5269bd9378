"""Events of a thread's stream about the thread itself and its messages."""

from __future__ import annotations

from typing import Literal

import msgspec

from .base import ContentBlock, Event, Metadata


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
    # system and developer messages come from the Conversations surface; the Assistants view hides them.
    role: Literal["user", "assistant", "system", "developer"]
    content: list[ContentBlock]
    metadata: Metadata = msgspec.field(default_factory=dict)
    assistant_id: str | None = None
    run_id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    response_id: str | None = None


class MessageCompleted(Event, frozen=True, tag="thread.message.completed"):
    thread_id: str
    message_id: str
    content: list[ContentBlock]
    completed_at: int


class MessageIncomplete(Event, frozen=True, tag="thread.message.incomplete"):
    thread_id: str
    message_id: str
    content: list[ContentBlock]
    incomplete_at: int
    reason: Literal["content_filter", "max_tokens", "run_cancelled", "run_expired", "run_failed"]


class MessageModified(Event, frozen=True, tag="thread.message.modified"):
    thread_id: str
    message_id: str
    metadata: Metadata


class MessageDeleted(Event, frozen=True, tag="thread.message.deleted"):
    thread_id: str
    message_id: str


class ThreadErased(Event, frozen=True, tag="thread.erased"):
    """The thread's content was erased for privacy: its earlier events keep their place, not their content."""

    thread_id: str
    erased_at: int
