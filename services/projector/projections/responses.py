"""The `responses` read model: each Response as retrieve returns it, its output set from its items."""

from __future__ import annotations

from shared import wire_responses
from shared.events import (
    AnyEvent,
    ResponseCancelled,
    ResponseCompleted,
    ResponseCreated,
    ResponseDeleted,
    ResponseFailed,
    ResponseIncomplete,
    ThreadErased,
)
from shared.patches import response_patch
from shared.store import Recorded

from . import Statement, as_json

INSERT_RESPONSE = """INSERT INTO responses (response_id, thread_id, tenant_id, conversation_id, previous_response_id,
                                       status, position, input_item_ids, body)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)"""
PATCH_RESPONSE = "UPDATE responses SET status = $2, body = body || $3::jsonb WHERE response_id = $1"
SET_OUTPUT = """UPDATE responses SET body = jsonb_set(body, '{output}', coalesce(
    (SELECT jsonb_agg(i.body ORDER BY i.seq) FROM items i WHERE i.item_id = ANY($2::text[])), '[]'::jsonb))
WHERE response_id = $1"""
DELETE_RESPONSE = "DELETE FROM responses WHERE response_id = $1"
DELETE_STREAM_RESPONSES = "DELETE FROM responses WHERE thread_id = $1"



def project(record: Recorded, event: AnyEvent) -> list[Statement]:
    match event:
        case ResponseCreated():
            body = wire_responses.response_object(event)
            return [(INSERT_RESPONSE, (event.response_id, event.thread_id, record.tenant_id, event.conversation_id,
                                       event.previous_response_id, body["status"], record.position,
                                       event.input_item_ids, as_json(body)))]
        case ResponseDeleted():
            return [(DELETE_RESPONSE, (event.response_id,))]
        case ThreadErased():
            return [(DELETE_STREAM_RESPONSES, (event.thread_id,))]
    patch = response_patch(event)
    if patch is None:
        return []
    response_id = str(getattr(event, "response_id", ""))
    statements: list[Statement] = [(PATCH_RESPONSE, (response_id, patch["status"], as_json(patch)))]
    if isinstance(event, ResponseCompleted | ResponseIncomplete | ResponseFailed | ResponseCancelled):
        statements.append((SET_OUTPUT, (response_id, event.output_item_ids)))
    return statements
