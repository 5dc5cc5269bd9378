"""The `threads` and `messages` read models."""

from __future__ import annotations

from shared import wire
from shared.events import (
    AnyEvent,
    MessageCompleted,
    MessageCreated,
    MessageDeleted,
    MessageIncomplete,
    MessageModified,
    ThreadCreated,
    ThreadDeleted,
    ThreadErased,
    ThreadModified,
)
from shared.patches import message_patch
from shared.store import Recorded

from . import Statement, as_json

INSERT_THREAD = """INSERT INTO threads (thread_id, tenant_id, position, created_at, metadata, body)
VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)"""
UPDATE_THREAD_METADATA = """UPDATE threads SET metadata = $2::jsonb, body = jsonb_set(body, '{metadata}', $2::jsonb)
WHERE thread_id = $1"""
DELETE_THREAD = "DELETE FROM threads WHERE thread_id = $1"
DELETE_THREAD_MESSAGES = "DELETE FROM messages WHERE thread_id = $1"
INSERT_MESSAGE = """INSERT INTO messages (message_id, thread_id, tenant_id, seq, run_id, body)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)"""
UPDATE_MESSAGE_METADATA = """UPDATE messages SET body = jsonb_set(body, '{metadata}', $2::jsonb)
WHERE message_id = $1"""
DELETE_MESSAGE = "DELETE FROM messages WHERE message_id = $1"
PATCH_MESSAGE = "UPDATE messages SET body = body || $2::jsonb WHERE message_id = $1"
DELETE_THREAD_RUNS = "DELETE FROM runs WHERE thread_id = $1"
DELETE_THREAD_STEPS = "DELETE FROM run_steps WHERE thread_id = $1"



def project(record: Recorded, event: AnyEvent) -> list[Statement]:
    match event:
        case ThreadCreated():
            body = as_json(wire.thread_object(event))
            return [(INSERT_THREAD, (event.thread_id, record.tenant_id, record.position, event.created_at,
                                     as_json(event.metadata), body))]
        case ThreadModified():
            return [(UPDATE_THREAD_METADATA, (event.thread_id, as_json(event.metadata)))]
        case ThreadDeleted() | ThreadErased():
            return [(DELETE_THREAD, (event.thread_id,)), (DELETE_THREAD_MESSAGES, (event.thread_id,)),
                    (DELETE_THREAD_RUNS, (event.thread_id,)), (DELETE_THREAD_STEPS, (event.thread_id,))]
        case MessageCreated(role="system" | "developer"):
            return []  # conversation-only roles: not messages of the Assistants view
        case MessageCreated():
            body = as_json(wire.message_object(event))
            return [(INSERT_MESSAGE, (event.message_id, event.thread_id, record.tenant_id, record.stream_version,
                                      event.run_id, body))]
        case MessageCompleted() | MessageIncomplete():
            changed = message_patch(event)
            assert changed is not None
            message_id, patch = changed
            return [(PATCH_MESSAGE, (message_id, as_json(patch)))]
        case MessageModified():
            return [(UPDATE_MESSAGE_METADATA, (event.message_id, as_json(event.metadata)))]
        case MessageDeleted():
            return [(DELETE_MESSAGE, (event.message_id,))]
    return []
