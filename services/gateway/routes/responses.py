"""/v1/responses: responses are turns carried out by the run-worker, through events like runs.

A foreground request waits for the response's end in the log; a background one returns at once; a streamed
one is served from the log and the deltas, like a run. `store: false` erases the response's hidden stream
once it ends: the log keeps that it happened (types, ids, times, usage), not what was said.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web

from shared import wire_responses
from shared.errors import InvalidRequestError, NotFoundError
from shared.events import (
    Event,
    ResponseCancelled,
    ResponseCancelling,
    ResponseCompleted,
    ResponseCreated,
    ResponseDeleted,
    ResponseFailed,
    ResponseIncomplete,
    ThreadErased,
)
from shared.ids import new_id
from shared.state import ThreadState
from shared.store import Cursor

from ..commands import now_s
from ..http import decode_body, list_params, respond
from ..keys import BUS, CONSISTENCY, PRINCIPAL, QUERIES, RETAINED, SETTINGS, STORE, THREADS
from ..response_commands import (
    CreateResponse,
    check_request,
    conversation_id,
    decide_response,
    input_events,
    response_event,
)
from ..streaming.live import Live
from ..streaming.merge import StreamMerger
from ..streaming.response_view import ResponseView
from ..streaming.serve import SEQUENCE_STRIDE, responses_frame
from ..streaming.sse import Position
from ..writes import commit
from .conversations import require_conversation
from .history import erase_content
from .streams import serve_turn

routes = web.RouteTableDef()
CREATE = msgspec.json.Decoder(CreateResponse)
TERMINAL = (ResponseCompleted, ResponseIncomplete, ResponseFailed, ResponseCancelled)


def not_found(response_id: str) -> NotFoundError:
    return NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")


@routes.post("/v1/responses")
async def create_response(request: web.Request) -> web.StreamResponse:
    cmd = await decode_body(request, CREATE)
    check_request(cmd)
    principal, now, response_id = request[PRINCIPAL], now_s(), new_id("resp")
    conversation = conversation_id(cmd)
    open_calls: set[str] = set()
    if conversation is not None:
        stream_id, owner = conversation, principal.scope
    else:
        stream_id, owner = response_id, principal.project_id  # its own hidden stream
        if cmd.previous_response_id is not None:
            open_calls = await _unanswered_calls(request, cmd.previous_response_id)
    inputs = input_events(cmd, stream_id, now)
    created = response_event(cmd, stream_id=stream_id, response_id=response_id, conversation=conversation,
                             input_ids=[], now=now, expires_s=request.app[SETTINGS].run_expires_s)

    def decide(state: ThreadState) -> list[Event]:
        if conversation is not None:
            require_conversation(state, principal.scope)
        return decide_response(state, inputs, created, open_calls)

    outcome = await commit(request, stream_id, owner, decide, new=conversation is None)
    assert outcome.result is not None
    created_version = outcome.result.version  # ResponseCreated is the last event appended
    if cmd.stream:
        merger = StreamMerger(store=request.app[STORE], bus=request.app[BUS], retained=request.app[RETAINED],
                              stream_id=stream_id, turn_id=response_id, view=ResponseView(response_id),
                              from_version=created_version, resume=None)
        answer = await serve_turn(request, merger, stream_id, done=False, framer=responses_frame)
        if not created.store:
            # The client may have left early: erase only once the response has ended, or its last events
            # (the completed message) would be appended after the erasure, unredacted.
            await _wait_for_end(request, stream_id, response_id, created_version, created.expires_at)
            await _forget(request, stream_id)
        return answer
    if created.background:  # answered as created (queued), whatever the worker has done since
        recorded = outcome.events[-1]
        assert isinstance(recorded, ResponseCreated)
        return respond(msgspec.json.encode(wire_responses.response_object(recorded)))
    ended = await _wait_for_end(request, stream_id, response_id, created_version, created.expires_at)
    await request.app[CONSISTENCY].wait(ended, stream_id)
    body = await request.app[QUERIES].response(response_id, None)
    if not created.store:
        await _forget(request, stream_id)
    return respond(body)


async def _unanswered_calls(request: web.Request, previous_id: str) -> set[str]:
    row = await request.app[QUERIES].response_row(previous_id, request[PRINCIPAL].scope)
    if row is None:
        raise InvalidRequestError(f"Previous response with id '{previous_id}' not found.",
                                  param="previous_response_id", code="previous_response_not_found")
    output = msgspec.json.decode(row[7])["output"]
    calls = {i["call_id"] for i in output if i.get("type") == "function_call"}
    answered = {i["call_id"] for i in output if i.get("type") == "function_call_output"}
    return calls - answered


async def _wait_for_end(request: web.Request, stream_id: str, response_id: str, after_version: int,
                        expires_at: int) -> Cursor:
    """Follow the stream in the log until the response's terminal event; its place in the global order."""
    store = request.app[STORE]
    live = await Live.open(request.app[BUS], stream_id)
    version = after_version
    try:
        while time.time() < expires_at + 30:
            for record in await store.read_stream(stream_id, version):
                version = record.stream_version
                event = store.load(record)
                if isinstance(event, TERMINAL) and event.response_id == response_id:
                    return record.cursor
            await live.next(1.0)
    finally:
        await live.close()
    raise InvalidRequestError("The response did not finish in time.", code="response_timeout")


async def _forget(request: web.Request, stream_id: str) -> None:
    """store: false — erase the hidden stream now that the response has ended."""
    state = await request.app[THREADS].load(stream_id)
    outcome = await commit(request, stream_id, state.tenant_id,
                           lambda _: [ThreadErased(thread_id=stream_id, erased_at=now_s())])
    if outcome.result is not None:
        await erase_content(request.app, stream_id, outcome.result)


async def _state_of(request: web.Request, response_id: str) -> tuple[str, ThreadState]:
    row = await request.app[QUERIES].response_row(response_id, request[PRINCIPAL].scope)
    if row is None:
        raise not_found(response_id)
    return row[1], await request.app[THREADS].load(row[1])


@routes.get("/v1/responses/{response_id}")
async def retrieve_response(request: web.Request) -> web.StreamResponse:
    response_id = request.match_info["response_id"]
    if request.query.get("stream") in ("true", "1"):
        stream_id, state = await _state_of(request, response_id)
        starting_after = request.query.get("starting_after")
        resume = None
        if starting_after:
            try:
                n = int(starting_after)
            except ValueError:
                raise InvalidRequestError("Invalid 'starting_after': expected a sequence number.",
                                          param="starting_after", code="invalid_value") from None
            resume = Position(n // SEQUENCE_STRIDE, n % SEQUENCE_STRIDE)
        merger = StreamMerger(store=request.app[STORE], bus=request.app[BUS], retained=request.app[RETAINED],
                              stream_id=stream_id, turn_id=response_id, view=ResponseView(response_id),
                              from_version=state.responses[response_id].created_version, resume=resume)
        return await serve_turn(request, merger, stream_id, done=False, framer=responses_frame)
    try:
        return respond(await request.app[QUERIES].response(response_id, request[PRINCIPAL].scope))
    except NotFoundError:
        raise not_found(response_id) from None


@routes.delete("/v1/responses/{response_id}")
async def delete_response(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    stream_id, _ = await _state_of(request, response_id)

    def decide(state: ThreadState) -> list[Event]:
        response = state.responses.get(response_id)
        if response is None or response.deleted:
            raise not_found(response_id)
        return [ResponseDeleted(thread_id=stream_id, response_id=response_id)]

    await commit(request, stream_id, request[PRINCIPAL].scope, decide)
    return respond(msgspec.json.encode({"id": response_id, "object": "response", "deleted": True}))


@routes.post("/v1/responses/{response_id}/cancel")
async def cancel_response(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    stream_id, _ = await _state_of(request, response_id)

    def decide(state: ThreadState) -> list[Event]:
        response = state.responses.get(response_id)
        if response is None or response.deleted:
            raise not_found(response_id)
        if not response.config.background:
            raise InvalidRequestError("Only background responses can be cancelled.", param="response_id",
                                      code="invalid_value")
        if not response.active or response.status == "cancelling":
            return []  # already ended (answered unchanged) or already being cancelled
        return [ResponseCancelling(thread_id=stream_id, response_id=response_id)]

    outcome = await commit(request, stream_id, request[PRINCIPAL].scope, decide)
    if outcome.result is not None:
        state = await request.app[THREADS].load(stream_id)
        ended = await _wait_for_end(request, stream_id, response_id, outcome.result.version,
                                    min(state.responses[response_id].config.expires_at, int(time.time()) + 5))
        await request.app[CONSISTENCY].wait(ended, stream_id)
    return respond(await request.app[QUERIES].response(response_id, request[PRINCIPAL].scope))


@routes.get("/v1/responses/{response_id}/input_items")
async def input_items(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    row = await request.app[QUERIES].response_row(response_id, request[PRINCIPAL].scope)
    if row is None:
        raise not_found(response_id)
    params = list_params(request)
    items: list[Any] = await request.app[QUERIES].items_by_id(row[1], list(row[6]))
    ordered = items if params.order == "asc" else list(reversed(items))
    ids = [i["id"] for i in ordered]
    start = ids.index(params.after) + 1 if params.after in ids else (len(ids) if params.after else 0)
    window = ordered[start:start + params.limit]
    return respond(msgspec.json.encode({
        "object": "list", "data": window, "first_id": window[0]["id"] if window else None,
        "last_id": window[-1]["id"] if window else None, "has_more": start + params.limit < len(ordered)}))


