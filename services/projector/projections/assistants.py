"""The `assistants` read model: each event carries the whole configuration, so a change replaces the body."""

from __future__ import annotations

from shared import wire
from shared.events import AnyEvent, AssistantCreated, AssistantDeleted, AssistantModified
from shared.store import Recorded

from . import Statement, as_json

INSERT_ASSISTANT = """INSERT INTO assistants (assistant_id, tenant_id, position, body)
VALUES ($1, $2, $3, $4::jsonb)"""
REPLACE_ASSISTANT = """UPDATE assistants
SET body = $2::jsonb || jsonb_build_object('created_at', body->'created_at') WHERE assistant_id = $1"""
DELETE_ASSISTANT = "DELETE FROM assistants WHERE assistant_id = $1"


def project(record: Recorded, event: AnyEvent) -> list[Statement]:
    match event:
        case AssistantCreated():
            body = as_json(wire.assistant_object(event.assistant_id, event.created_at, event.config))
            return [(INSERT_ASSISTANT, (event.assistant_id, record.tenant_id, record.position, body))]
        case AssistantModified():
            body = as_json(wire.assistant_object(event.assistant_id, 0, event.config))
            return [(REPLACE_ASSISTANT, (event.assistant_id, body))]
        case AssistantDeleted():
            return [(DELETE_ASSISTANT, (event.assistant_id,))]
    return []
