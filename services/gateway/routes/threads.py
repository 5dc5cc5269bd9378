"""/v1/threads: create, retrieve, modify, delete, and list (which the hosted API could not do)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from shared import wire
from shared.events import ThreadCreated
from shared.ids import new_id

from ..commands import (
    CreateThread,
    ModifyThread,
    decide_create_thread,
    decide_delete_thread,
    decide_modify_thread,
    now_s,
)
from ..http import decode_body, list_params, metadata_filter, respond, thread_id_of, unix_param
from ..keys import PRINCIPAL, QUERIES
from ..writes import commit

routes = web.RouteTableDef()
CREATE_THREAD = msgspec.json.Decoder(CreateThread)
MODIFY_THREAD = msgspec.json.Decoder(ModifyThread)


@routes.post("/v1/threads")
async def create_thread(request: web.Request) -> web.Response:
    cmd = await decode_body(request, CREATE_THREAD)
    tenant = request[PRINCIPAL].project_id
    thread_id = new_id("thread")
    events = decide_create_thread(thread_id, cmd, now_s())
    await commit(request, thread_id, tenant, lambda _: events, new=True)
    created = events[0]
    assert isinstance(created, ThreadCreated)
    return respond(wire.encode(wire.thread_object(created)))


@routes.get("/v1/threads")
async def list_threads(request: web.Request) -> web.Response:
    params = list_params(request)
    body = await request.app[QUERIES].threads(
        request[PRINCIPAL].scope, params, metadata_filter(request),
        unix_param(request, "created_after"), unix_param(request, "created_before"))
    return respond(body)


@routes.get("/v1/threads/{thread_id}")
async def retrieve_thread(request: web.Request) -> web.Response:
    return respond(await request.app[QUERIES].thread(thread_id_of(request), request[PRINCIPAL].scope))


@routes.post("/v1/threads/{thread_id}")
async def modify_thread(request: web.Request) -> web.Response:
    cmd = await decode_body(request, MODIFY_THREAD)
    thread_id, tenant = thread_id_of(request), request[PRINCIPAL].scope
    await commit(request, thread_id, tenant, lambda s: decide_modify_thread(s, tenant, cmd))
    return respond(await request.app[QUERIES].thread(thread_id, tenant))


@routes.delete("/v1/threads/{thread_id}")
async def delete_thread(request: web.Request) -> web.Response:
    thread_id, tenant = thread_id_of(request), request[PRINCIPAL].scope
    await commit(request, thread_id, tenant, lambda s: decide_delete_thread(s, tenant))
    return respond(wire.encode(wire.Deleted(id=thread_id, object="thread.deleted")))
