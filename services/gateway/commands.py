"""Request bodies (msgspec Structs, strict) and the pure decisions that turn them into events."""

from __future__ import annotations

import time
from typing import Any, Literal

import msgspec

from shared.errors import InvalidRequestError, NotFoundError
from shared.events import (
    ContentBlock,
    Event,
    ImageUrl,
    ImageUrlBlock,
    MessageCreated,
    MessageDeleted,
    MessageModified,
    TextBlock,
    TextValue,
    ThreadCreated,
    ThreadDeleted,
    ThreadModified,
)
from shared.ids import new_id
from shared.state import ThreadState

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_CONTENT_CHARS = 256_000
MAX_INITIAL_MESSAGES = 100


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Unknown parameters are refused, never silently ignored."""


class TextPart(Strict, tag_field="type", tag="text"):
    text: str


class ImageUrlSpec(Strict):
    url: str
    detail: Literal["auto", "low", "high"] = "auto"


class ImageUrlPart(Strict, tag_field="type", tag="image_url"):
    image_url: ImageUrlSpec


class ImageFilePart(Strict, tag_field="type", tag="image_file"):
    image_file: dict[str, Any]


InputPart = TextPart | ImageUrlPart | ImageFilePart


class CreateMessage(Strict):
    role: Literal["user", "assistant"]
    content: str | list[InputPart]
    attachments: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None


class CreateThread(Strict):
    messages: list[CreateMessage] | None = None
    metadata: dict[str, str] | None = None
    tool_resources: dict[str, Any] | None = None


class ModifyThread(Strict):
    metadata: dict[str, str] | None = None
    tool_resources: dict[str, Any] | None = None


class ModifyMessage(Strict):
    metadata: dict[str, str] | None = None


# --- validation shared by every command ---------------------------------------------------------


def check_metadata(metadata: dict[str, str] | None, param: str = "metadata") -> dict[str, str]:
    if metadata is None:
        return {}
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidRequestError(
            f"Invalid '{param}': too many properties. Expected an object with at most {MAX_METADATA_PAIRS} "
            f"properties, but got an object with {len(metadata)} properties instead.", param=param,
            code="object_above_max_properties")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            raise InvalidRequestError(
                f"Invalid '{param}': key '{key[:20]}…' is longer than {MAX_METADATA_KEY} characters.",
                param=f"{param}.{key[:20]}", code="string_above_max_length")
        if len(value) > MAX_METADATA_VALUE:
            raise InvalidRequestError(
                f"Invalid '{param}.{key}': string too long. Expected at most {MAX_METADATA_VALUE} characters, "
                f"but got {len(value)} characters instead.", param=f"{param}.{key}", code="string_above_max_length")
    return dict(metadata)


def check_tool_resources(tool_resources: dict[str, Any] | None, param: str = "tool_resources") -> None:
    # Code interpreter and file search need files and vector stores, which threadlog does not provide.
    if tool_resources and any(v for v in tool_resources.values()):
        raise InvalidRequestError(
            f"'{param}' is not supported: threadlog has no files or vector stores.", param=param,
            code="unsupported_parameter")


def content_blocks(content: str | list[InputPart], param: str) -> list[ContentBlock]:
    """Input content (a string or parts) as stored output content blocks."""
    if isinstance(content, str):
        parts: list[InputPart] = [TextPart(text=content)]
    else:
        parts = content
    if not parts:
        raise InvalidRequestError(f"Invalid '{param}': empty array. Expected an array with minimum length 1.",
                                  param=param, code="empty_array")
    blocks: list[ContentBlock] = []
    total = 0
    for i, part in enumerate(parts):
        match part:
            case TextPart(text=text):
                total += len(text)
                blocks.append(TextBlock(text=TextValue(value=text)))
            case ImageUrlPart(image_url=spec):
                blocks.append(ImageUrlBlock(image_url=ImageUrl(url=spec.url, detail=spec.detail)))
            case ImageFilePart():
                raise InvalidRequestError(
                    "image_file content is not supported: threadlog has no Files API. Use image_url.",
                    param=f"{param}[{i}]", code="unsupported_parameter")
    if total == 0 and all(isinstance(b, TextBlock) for b in blocks):
        raise InvalidRequestError(f"Invalid '{param}': empty string. Expected a non-empty message.",
                                  param=param, code="empty_string")
    if total > MAX_CONTENT_CHARS:
        raise InvalidRequestError(
            f"Invalid '{param}': string too long. Expected at most {MAX_CONTENT_CHARS} characters, "
            f"but got {total} characters instead.", param=param, code="string_above_max_length")
    return blocks


def plain_text(content: str | list[InputPart]) -> str:
    if isinstance(content, str):
        return content
    return " ".join(p.text for p in content if isinstance(p, TextPart))


def message_event(thread_id: str, cmd: CreateMessage, param: str, now: int) -> MessageCreated:
    if cmd.attachments:
        raise InvalidRequestError("attachments are not supported: threadlog has no Files API.",
                                  param=f"{param}attachments", code="unsupported_parameter")
    return MessageCreated(
        thread_id=thread_id, message_id=new_id("msg"), created_at=now, role=cmd.role,
        content=content_blocks(cmd.content, f"{param}content"),
        metadata=check_metadata(cmd.metadata, f"{param}metadata"),
    )


def now_s() -> int:
    return int(time.time())


# --- decisions: (state, command) -> events; pure, may raise ServiceError ------------------------


def visible(owner: str | None, scope: str | None) -> bool:
    """An object is visible to a key of its own project, or to an admin key (scope None)."""
    return scope is None or owner == scope


def require_thread(state: ThreadState, tenant_id: str | None) -> None:
    if not state.live or not visible(state.tenant_id, tenant_id):
        raise NotFoundError(f"No thread found with id '{state.thread_id}'.", param="thread_id")


def decide_create_thread(thread_id: str, cmd: CreateThread, now: int) -> list[Event]:
    check_tool_resources(cmd.tool_resources)
    messages = cmd.messages or []
    if len(messages) > MAX_INITIAL_MESSAGES:
        raise InvalidRequestError(f"Invalid 'messages': at most {MAX_INITIAL_MESSAGES} messages.",
                                  param="messages", code="array_above_max_length")
    events: list[Event] = [ThreadCreated(thread_id=thread_id, created_at=now, metadata=check_metadata(cmd.metadata))]
    events.extend(message_event(thread_id, m, f"messages[{i}].", now) for i, m in enumerate(messages))
    return events


def decide_modify_thread(state: ThreadState, tenant_id: str | None, cmd: ModifyThread) -> list[Event]:
    require_thread(state, tenant_id)
    check_tool_resources(cmd.tool_resources)
    if cmd.metadata is None:
        return []
    return [ThreadModified(thread_id=state.thread_id, metadata=check_metadata(cmd.metadata))]


def decide_delete_thread(state: ThreadState, tenant_id: str | None) -> list[Event]:
    require_thread(state, tenant_id)
    return [ThreadDeleted(thread_id=state.thread_id)]


def require_message(state: ThreadState, tenant_id: str | None, message_id: str) -> None:
    require_thread(state, tenant_id)
    if message_id not in state.message_ids:
        raise NotFoundError(f"No message found with id '{message_id}'.", param="message_id")


def decide_create_message(state: ThreadState, tenant_id: str | None, event: MessageCreated) -> list[Event]:
    require_thread(state, tenant_id)
    if state.active_run_id is not None:
        raise InvalidRequestError(
            f"Can't add messages to {state.thread_id} while a run {state.active_run_id} is active.",
            param="thread_id", code="thread_locked")
    return [event]


def decide_modify_message(state: ThreadState, tenant_id: str | None, message_id: str,
                          cmd: ModifyMessage) -> list[Event]:
    require_message(state, tenant_id, message_id)
    if cmd.metadata is None:
        return []
    return [MessageModified(thread_id=state.thread_id, message_id=message_id,
                            metadata=check_metadata(cmd.metadata))]


def decide_delete_message(state: ThreadState, tenant_id: str | None, message_id: str) -> list[Event]:
    require_message(state, tenant_id, message_id)
    return [MessageDeleted(thread_id=state.thread_id, message_id=message_id)]
