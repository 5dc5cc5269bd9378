"""/v1/assistants: create, list, retrieve, modify, delete."""

from __future__ import annotations

import msgspec
from aiohttp import web

from shared import wire
from shared.events import AssistantCreated
from shared.ids import new_id

from ..assistant_commands import (
    CreateAssistant,
    ModifyAssistant,
    decide_create_assistant,
    decide_delete_assistant,
    decide_modify_assistant,
)
from ..commands import now_s
from ..http import decode_body, list_params, respond
from ..keys import PRINCIPAL, QUERIES
from ..writes import commit_assistant

routes = web.RouteTableDef()
CREATE_ASSISTANT = msgspec.json.Decoder(CreateAssistant)
MODIFY_ASSISTANT = msgspec.json.Decoder(ModifyAssistant)


@routes.post("/v1/assistants")
async def create_assistant(request: web.Request) -> web.Response:
    cmd = await decode_body(request, CREATE_ASSISTANT)
    tenant = request[PRINCIPAL].project_id
    assistant_id = new_id("asst")
    events = decide_create_assistant(assistant_id, cmd, now_s())
    await commit_assistant(request, assistant_id, tenant, lambda _: events, new=True)
    created = events[0]
    assert isinstance(created, AssistantCreated)
    return respond(wire.encode(wire.assistant_object(assistant_id, created.created_at, created.config)))


@routes.get("/v1/assistants")
async def list_assistants(request: web.Request) -> web.Response:
    return respond(await request.app[QUERIES].assistants(request[PRINCIPAL].scope, list_params(request)))


@routes.get("/v1/assistants/{assistant_id}")
async def retrieve_assistant(request: web.Request) -> web.Response:
    return respond(await request.app[QUERIES].assistant(request.match_info["assistant_id"],
                                                        request[PRINCIPAL].scope))


@routes.post("/v1/assistants/{assistant_id}")
async def modify_assistant(request: web.Request) -> web.Response:
    cmd = await decode_body(request, MODIFY_ASSISTANT)
    assistant_id, tenant = request.match_info["assistant_id"], request[PRINCIPAL].scope
    await commit_assistant(request, assistant_id, tenant, lambda s: decide_modify_assistant(s, tenant, cmd))
    return respond(await request.app[QUERIES].assistant(assistant_id, tenant))


@routes.delete("/v1/assistants/{assistant_id}")
async def delete_assistant(request: web.Request) -> web.Response:
    assistant_id, tenant = request.match_info["assistant_id"], request[PRINCIPAL].scope
    await commit_assistant(request, assistant_id, tenant, lambda s: decide_delete_assistant(s, tenant))
    return respond(wire.encode(wire.Deleted(id=assistant_id, object="assistant.deleted")))
