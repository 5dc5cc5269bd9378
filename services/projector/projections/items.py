"""The `items` read model: a conversation's items (messages of every role, function calls and outputs,
including a run's tool calls), in the thread's order."""

from __future__ import annotations

from shared import wire_responses
from shared.events import (
    AnyEvent,
    FunctionCallItem,
    FunctionCallOutputItem,
    ItemDeleted,
    MessageCompleted,
    MessageCreated,
    MessageDeleted,
    MessageIncomplete,
    RunRequiresAction,
    ThreadDeleted,
    ThreadErased,
    ToolOutputsSubmitted,
)
from shared.store import Recorded

from . import Statement, as_json

INSERT_ITEM = "INSERT INTO items (item_id, thread_id, tenant_id, seq, body) VALUES ($1, $2, $3, $4, $5::jsonb)"
PATCH_ITEM = "UPDATE items SET body = body || $2::jsonb WHERE item_id = $1"
DELETE_ITEM = "DELETE FROM items WHERE item_id = $1"
DELETE_THREAD_ITEMS = "DELETE FROM items WHERE thread_id = $1"



def _insert(record: Recorded, index: int, item_id: str, body: object) -> Statement:
    return (INSERT_ITEM, (item_id, record.stream_id, record.tenant_id, record.stream_version * 1000 + index,
                          as_json(body)))


def project(record: Recorded, event: AnyEvent) -> list[Statement]:
    match event:
        case MessageCreated():
            return [_insert(record, 0, event.message_id, wire_responses.message_item(event))]
        case MessageCompleted() | MessageIncomplete():
            status = "completed" if isinstance(event, MessageCompleted) else "incomplete"
            patch = {"status": status, "content": wire_responses.parts("assistant", event.content)}
            return [(PATCH_ITEM, (event.message_id, as_json(patch)))]
        case MessageDeleted(message_id=item_id) | ItemDeleted(item_id=item_id):
            return [(DELETE_ITEM, (item_id,))]
        case FunctionCallItem():
            return [_insert(record, 0, event.item_id, wire_responses.function_call_item(event))]
        case FunctionCallOutputItem():
            return [_insert(record, 0, event.item_id, wire_responses.function_output_item(event))]
        case RunRequiresAction():
            return [_insert(record, i, item["id"], item)
                    for i, item in enumerate(wire_responses.run_call_items(event.tool_calls))]
        case ToolOutputsSubmitted():
            return [_insert(record, i, item["id"], item)
                    for i, item in enumerate(wire_responses.run_output_items(event.tool_outputs))]
        case ThreadDeleted() | ThreadErased():
            return [(DELETE_THREAD_ITEMS, (event.thread_id,))]
    return []
