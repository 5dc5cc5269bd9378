"""/v1/threads/{thread_id}/runs (+ steps) and /v1/threads/runs: runs are events in the thread's stream."""

from __future__ import annotations

import msgspec
from aiohttp import web

from shared import wire
from shared.errors import InvalidRequestError
from shared.events import Event, RunCreated
from shared.ids import new_id

from ..admission import admit_run
from ..assistant_commands import require_assistant
from ..commands import CreateMessage, CreateThread, decide_create_thread, now_s, plain_text, require_thread
from ..http import decode_body, list_params, respond, thread_id_of
from ..keys import ASSISTANTS, BUDGETS, POOL, PRINCIPAL, QUERIES, SETTINGS, THREADS
from ..run_commands import (
    CreateRun,
    CreateThreadAndRun,
    ModifyRun,
    SubmitToolOutputs,
    decide_cancel_run,
    decide_create_run,
    decide_modify_run,
    decide_submit_tool_outputs,
    resolve_run,
)
from ..streaming.sse import Position
from ..writes import commit
from .streams import run_stream, serve_turn

routes = web.RouteTableDef()
CREATE_RUN = msgspec.json.Decoder(CreateRun)
CREATE_THREAD_AND_RUN = msgspec.json.Decoder(CreateThreadAndRun)
MODIFY_RUN = msgspec.json.Decoder(ModifyRun)
SUBMIT_TOOL_OUTPUTS = msgspec.json.Decoder(SubmitToolOutputs)
# The only value OpenAI defines: file-search result content, which threadlog never produces.
KNOWN_INCLUDES = {"step_details.tool_calls[*].file_search.results[*].content"}


def check_includes(request: web.Request) -> None:
    for value in request.query.getall("include[]", []):
        if value not in KNOWN_INCLUDES:
            raise InvalidRequestError(f"Invalid 'include[]': unknown value '{value}'.", param="include",
                                      code="invalid_value")


async def admit(request: web.Request, thread_id: str, run: RunCreated, extra: list[CreateMessage], *,
                owner: str | None = None) -> None:
    """The project's active-run limit and token budgets, before anything is appended or any model called."""
    tenant = owner
    if tenant is None:
        state = await request.app[THREADS].load(thread_id)
        require_thread(state, request[PRINCIPAL].scope)  # 404 first: limits never tell about others' threads
        tenant = state.tenant_id
    if tenant is None:
        return
    await admit_run(request.app[POOL], request.app[BUDGETS], tenant, run, request.app[SETTINGS].max_active_runs,
                    [plain_text(m.content) for m in extra])


def run_response(request: web.Request, body: bytes) -> web.Response:
    response = respond(body)
    # The SDK's poll helpers wait this long between reads of a non-terminal run.
    response.headers["openai-poll-after-ms"] = str(request.app[SETTINGS].poll_after_ms)
    return response



@routes.post("/v1/threads/{thread_id}/runs")
async def create_run(request: web.Request) -> web.StreamResponse:
    check_includes(request)
    cmd = await decode_body(request, CREATE_RUN)
    thread_id, tenant = thread_id_of(request), request[PRINCIPAL].scope
    assistant = require_assistant(await request.app[ASSISTANTS].load(cmd.assistant_id), tenant)
    now = now_s()
    run = resolve_run(thread_id, cmd.assistant_id, assistant, cmd, now, request.app[SETTINGS].run_expires_s)
    await admit(request, thread_id, run, cmd.additional_messages or [])
    outcome = await commit(request, thread_id, tenant, lambda s: decide_create_run(s, tenant, run, cmd, now))
    if cmd.stream:
        assert outcome.result is not None
        stream = run_stream(request, thread_id, run.run_id, outcome.result.version, None, stop_at_action=True)
        return await serve_turn(request, stream, thread_id)
    return run_response(request, wire.encode(wire.run_object(run)))


@routes.post("/v1/threads/runs")
async def create_thread_and_run(request: web.Request) -> web.StreamResponse:
    cmd = await decode_body(request, CREATE_THREAD_AND_RUN)
    tenant = request[PRINCIPAL].project_id
    assistant = require_assistant(await request.app[ASSISTANTS].load(cmd.assistant_id), request[PRINCIPAL].scope)
    thread_cmd = cmd.thread or CreateThread()
    if cmd.tool_resources is not None:
        thread_cmd = msgspec.structs.replace(thread_cmd, tool_resources=cmd.tool_resources)
    thread_id, now = new_id("thread"), now_s()
    run = resolve_run(thread_id, cmd.assistant_id, assistant, cmd, now, request.app[SETTINGS].run_expires_s)
    events: list[Event] = [*decide_create_thread(thread_id, thread_cmd, now), run]
    await admit(request, thread_id, run, thread_cmd.messages or [], owner=tenant)
    await commit(request, thread_id, tenant, lambda _: events, new=True)
    if cmd.stream:
        stream = run_stream(request, thread_id, run.run_id, 1, None, stop_at_action=True, include_thread=True)
        return await serve_turn(request, stream, thread_id)
    return run_response(request, wire.encode(wire.run_object(run)))


@routes.get("/v1/threads/{thread_id}/runs")
async def list_runs(request: web.Request) -> web.Response:
    return respond(await request.app[QUERIES].runs(thread_id_of(request), request[PRINCIPAL].scope,
                                                   list_params(request)))


@routes.get("/v1/threads/{thread_id}/runs/{run_id}")
async def retrieve_run(request: web.Request) -> web.Response:
    info = request.match_info
    return run_response(request, await request.app[QUERIES].run(thread_id_of(request), info["run_id"],
                                                                request[PRINCIPAL].scope))


@routes.post("/v1/threads/{thread_id}/runs/{run_id}")
async def modify_run(request: web.Request) -> web.Response:
    cmd = await decode_body(request, MODIFY_RUN)
    thread_id, run_id, tenant = thread_id_of(request), request.match_info["run_id"], \
        request[PRINCIPAL].scope
    await commit(request, thread_id, tenant, lambda s: decide_modify_run(s, tenant, run_id, cmd))
    return run_response(request, await request.app[QUERIES].run(thread_id, run_id, tenant))


@routes.post("/v1/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(request: web.Request) -> web.Response:
    thread_id, run_id, tenant = thread_id_of(request), request.match_info["run_id"], \
        request[PRINCIPAL].scope
    await commit(request, thread_id, tenant, lambda s: decide_cancel_run(s, tenant, run_id))
    return run_response(request, await request.app[QUERIES].run(thread_id, run_id, tenant))


@routes.post("/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")
async def submit_tool_outputs(request: web.Request) -> web.StreamResponse:
    cmd = await decode_body(request, SUBMIT_TOOL_OUTPUTS)
    thread_id, run_id, tenant = thread_id_of(request), request.match_info["run_id"], \
        request[PRINCIPAL].scope
    now = now_s()
    outcome = await commit(request, thread_id, tenant,
                           lambda s: decide_submit_tool_outputs(s, tenant, run_id, cmd, now))
    if cmd.stream:
        assert outcome.result is not None
        state = await request.app[THREADS].load(thread_id)
        first = outcome.result.version - len(outcome.events) + 1
        # Fold the run from its creation, but send only what the submission started.
        stream = run_stream(request, thread_id, run_id, state.runs[run_id].created_version,
                            Position(first - 1, 1 << 30), stop_at_action=True)
        return await serve_turn(request, stream, thread_id)
    return run_response(request, await request.app[QUERIES].run(thread_id, run_id, tenant))


@routes.get("/v1/threads/{thread_id}/runs/{run_id}/steps")
async def list_steps(request: web.Request) -> web.Response:
    check_includes(request)
    info = request.match_info
    return respond(await request.app[QUERIES].steps(thread_id_of(request), info["run_id"], request[PRINCIPAL].scope,
                                                    list_params(request)))


@routes.get("/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
async def retrieve_step(request: web.Request) -> web.Response:
    check_includes(request)
    info = request.match_info
    return respond(await request.app[QUERIES].step(thread_id_of(request), info["run_id"], info["step_id"],
                                                   request[PRINCIPAL].scope))
