"""/v1/conversations: the Conversations surface over the same streams as threads (`conv_X` is `thread_X`)."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from shared import wire_responses
from shared.errors import InvalidRequestError, NotFoundError
from shared.events import Event, ItemDeleted, MessageDeleted, ThreadCreated, ThreadDeleted, ThreadModified
from shared.ids import new_id
from shared.state import ThreadState

from ..commands import Strict, check_metadata, now_s, require_thread
from ..http import decode_body, list_params, metadata_filter, respond, unix_param
from ..items import check_calls, item_events, item_id_of
from ..keys import PRINCIPAL, QUERIES
from ..writes import commit

routes = web.RouteTableDef()
KNOWN_INCLUDES: set[str] = set()  # logprobs, encrypted reasoning, tool results: nothing threadlog produces


class CreateConversation(Strict):
    items: list[Any] | None = None
    metadata: dict[str, str] | None = None


class UpdateConversation(Strict):
    metadata: dict[str, str] | None


class AddItems(Strict):
    items: list[Any]


CREATE = msgspec.json.Decoder(CreateConversation)
UPDATE = msgspec.json.Decoder(UpdateConversation)
ADD_ITEMS = msgspec.json.Decoder(AddItems)


def check_includes(request: web.Request) -> None:
    for value in request.query.getall("include[]", []) + request.query.getall("include", []):
        if value not in KNOWN_INCLUDES:
            raise InvalidRequestError(f"Invalid 'include': '{value}' is not available on threadlog's items.",
                                      param="include", code="unsupported_parameter")


def conversation_body(thread_body: bytes) -> dict[str, Any]:
    thread = msgspec.json.decode(thread_body)
    return wire_responses.conversation_object(thread["id"], thread["created_at"], thread["metadata"])


def require_conversation(state: ThreadState, scope: str | None) -> None:
    try:
        require_thread(state, scope)
    except NotFoundError:
        raise NotFoundError(f"Conversation with id '{wire_responses.to_conversation_id(state.thread_id)}' not "
                            "found.", param="conversation_id") from None


def refuse_if_busy(state: ThreadState) -> None:
    if state.active_run_id is not None:
        raise InvalidRequestError("Another process is currently operating on this conversation. Please retry in a "
                                  "few seconds.", param="conversation", code="conversation_locked")


@routes.post("/v1/conversations")
async def create_conversation(request: web.Request) -> web.Response:
    cmd = await decode_body(request, CREATE)
    thread_id, now = new_id("thread"), now_s()
    items = item_events(thread_id, cmd.items or [], "items", now)
    check_calls(set(), items, param="items")
    created = ThreadCreated(thread_id=thread_id, created_at=now, metadata=check_metadata(cmd.metadata))
    events: list[Event] = [created, *items]
    await commit(request, thread_id, request[PRINCIPAL].project_id, lambda _: events, new=True)
    return respond(msgspec.json.encode(wire_responses.conversation_object(thread_id, now, created.metadata)))


@routes.get("/v1/conversations")
async def list_conversations(request: web.Request) -> web.Response:
    params = list_params(request)
    params = msgspec.structs.replace(  # cursors are conversation ids here; the rows are keyed by thread id
        params, after=params.after and wire_responses.to_thread_id(params.after),
        before=params.before and wire_responses.to_thread_id(params.before))
    page = msgspec.json.decode(await request.app[QUERIES].threads(
        request[PRINCIPAL].scope, params, metadata_filter(request),
        unix_param(request, "created_after"), unix_param(request, "created_before")))
    page["data"] = [wire_responses.conversation_object(t["id"], t["created_at"], t["metadata"]) for t in page["data"]]
    for key in ("first_id", "last_id"):
        if page[key]:
            page[key] = wire_responses.to_conversation_id(page[key])
    return respond(msgspec.json.encode(page))


def _thread_id(request: web.Request) -> str:
    return wire_responses.to_thread_id(request.match_info["conversation_id"])


@routes.get("/v1/conversations/{conversation_id}")
async def retrieve_conversation(request: web.Request) -> web.Response:
    body = await _thread_or_404(request, _thread_id(request))
    return respond(msgspec.json.encode(conversation_body(body)))


async def _thread_or_404(request: web.Request, thread_id: str) -> bytes:
    try:
        return await request.app[QUERIES].thread(thread_id, request[PRINCIPAL].scope)
    except NotFoundError:
        raise NotFoundError(f"Conversation with id '{wire_responses.to_conversation_id(thread_id)}' not found.",
                            param="conversation_id") from None


@routes.post("/v1/conversations/{conversation_id}")
async def update_conversation(request: web.Request) -> web.Response:
    cmd = await decode_body(request, UPDATE)
    thread_id, scope = _thread_id(request), request[PRINCIPAL].scope

    def decide(state: ThreadState) -> list[Event]:
        require_conversation(state, scope)
        return [ThreadModified(thread_id=thread_id, metadata=check_metadata(cmd.metadata))]

    await commit(request, thread_id, scope, decide)
    return respond(msgspec.json.encode(conversation_body(await _thread_or_404(request, thread_id))))


@routes.delete("/v1/conversations/{conversation_id}")
async def delete_conversation(request: web.Request) -> web.Response:
    thread_id, scope = _thread_id(request), request[PRINCIPAL].scope

    def decide(state: ThreadState) -> list[Event]:
        require_conversation(state, scope)
        return [ThreadDeleted(thread_id=thread_id)]

    await commit(request, thread_id, scope, decide)
    return respond(msgspec.json.encode({"id": wire_responses.to_conversation_id(thread_id),
                                        "object": "conversation.deleted", "deleted": True}))


@routes.post("/v1/conversations/{conversation_id}/items")
async def add_items(request: web.Request) -> web.Response:
    check_includes(request)
    cmd = await decode_body(request, ADD_ITEMS)
    thread_id, scope = _thread_id(request), request[PRINCIPAL].scope
    if not cmd.items:
        raise InvalidRequestError("Invalid 'items': empty array.", param="items", code="empty_array")
    items = item_events(thread_id, cmd.items, "items", now_s())

    def decide(state: ThreadState) -> list[Event]:
        require_conversation(state, scope)
        refuse_if_busy(state)
        check_calls(set(state.open_calls), items, param="items", require_answers=False)
        return list(items)

    await commit(request, thread_id, scope, decide)
    ids = [item_id_of(e) for e in items]
    bodies = await request.app[QUERIES].items_by_id(thread_id, ids)
    return respond(msgspec.json.encode({"object": "list", "data": bodies, "first_id": ids[0], "last_id": ids[-1],
                                        "has_more": False}))


@routes.get("/v1/conversations/{conversation_id}/items")
async def list_items(request: web.Request) -> web.Response:
    check_includes(request)
    thread_id = _thread_id(request)
    await _thread_or_404(request, thread_id)
    return respond(await request.app[QUERIES].items(thread_id, request[PRINCIPAL].scope, list_params(request)))


@routes.get("/v1/conversations/{conversation_id}/items/{item_id}")
async def retrieve_item(request: web.Request) -> web.Response:
    check_includes(request)
    thread_id = _thread_id(request)
    await _thread_or_404(request, thread_id)
    return respond(await request.app[QUERIES].item(thread_id, request.match_info["item_id"],
                                                   request[PRINCIPAL].scope))


@routes.delete("/v1/conversations/{conversation_id}/items/{item_id}")
async def delete_item(request: web.Request) -> web.Response:
    thread_id, item_id, scope = _thread_id(request), request.match_info["item_id"], request[PRINCIPAL].scope

    def decide(state: ThreadState) -> list[Event]:
        require_conversation(state, scope)
        if item_id not in state.item_ids:
            raise NotFoundError(f"Item with id '{item_id}' not found.", param="item_id")
        if item_id.startswith("msg_"):
            return [MessageDeleted(thread_id=thread_id, message_id=item_id)]
        return [ItemDeleted(thread_id=thread_id, item_id=item_id)]

    await commit(request, thread_id, scope, decide)
    return respond(msgspec.json.encode(conversation_body(await _thread_or_404(request, thread_id))))

