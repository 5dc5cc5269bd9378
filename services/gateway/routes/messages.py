"""/v1/threads/{thread_id}/messages: create, list (also by run_id), retrieve, modify, delete."""

from __future__ import annotations

import msgspec
from aiohttp import web

from shared import wire

from ..commands import (
    CreateMessage,
    ModifyMessage,
    decide_create_message,
    decide_delete_message,
    decide_modify_message,
    message_event,
    now_s,
)
from ..http import decode_body, list_params, respond, thread_id_of
from ..keys import PRINCIPAL, QUERIES
from ..writes import commit
from .history import as_of_bound, messages_at

routes = web.RouteTableDef()
CREATE_MESSAGE = msgspec.json.Decoder(CreateMessage)
MODIFY_MESSAGE = msgspec.json.Decoder(ModifyMessage)


@routes.post("/v1/threads/{thread_id}/messages")
async def create_message(request: web.Request) -> web.Response:
    cmd = await decode_body(request, CREATE_MESSAGE)
    thread_id, tenant = thread_id_of(request), request[PRINCIPAL].scope
    event = message_event(thread_id, cmd, "", now_s())
    await commit(request, thread_id, tenant, lambda s: decide_create_message(s, tenant, event))
    return respond(wire.encode(wire.message_object(event)))


@routes.get("/v1/threads/{thread_id}/messages")
async def list_messages(request: web.Request) -> web.Response:
    params = list_params(request)
    thread_id, tenant = thread_id_of(request), request[PRINCIPAL].scope
    bound = as_of_bound(request)
    if bound is not None:  # the thread as it was then, folded from the log
        return respond(await messages_at(request, thread_id, tenant, bound))
    run_id = request.query.get("run_id") or None
    return respond(await request.app[QUERIES].messages(thread_id, tenant, params, run_id))


@routes.get("/v1/threads/{thread_id}/messages/{message_id}")
async def retrieve_message(request: web.Request) -> web.Response:
    info = request.match_info
    return respond(await request.app[QUERIES].message(thread_id_of(request), info["message_id"],
                                                      request[PRINCIPAL].scope))


@routes.post("/v1/threads/{thread_id}/messages/{message_id}")
async def modify_message(request: web.Request) -> web.Response:
    cmd = await decode_body(request, MODIFY_MESSAGE)
    thread_id, message_id = thread_id_of(request), request.match_info["message_id"]
    tenant = request[PRINCIPAL].scope
    await commit(request, thread_id, tenant, lambda s: decide_modify_message(s, tenant, message_id, cmd))
    return respond(await request.app[QUERIES].message(thread_id, message_id, tenant))


@routes.delete("/v1/threads/{thread_id}/messages/{message_id}")
async def delete_message(request: web.Request) -> web.Response:
    thread_id, message_id = thread_id_of(request), request.match_info["message_id"]
    tenant = request[PRINCIPAL].scope
    await commit(request, thread_id, tenant, lambda s: decide_delete_message(s, tenant, message_id))
    return respond(wire.encode(wire.Deleted(id=message_id, object="thread.message.deleted")))
