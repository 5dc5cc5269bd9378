"""The console's own read routes under /v1/console: authenticated like every /v1 path, scoped to the key's project.

Writes are not here: the console cancels runs, edits metadata and deletes threads through the public API, so
those actions are the same events as any client's.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from shared.errors import InvalidRequestError, NotFoundError

from ..http import metadata_filter, respond, thread_id_of, unix_param
from ..keys import POOL, PRINCIPAL, QUERIES
from .chain_check import check_thread
from .listing import ThreadFilter, check_filter, summaries, summary
from .timeline import timeline

routes = web.RouteTableDef()
LIST_PARAMS = frozenset({"q", "status", "created_after", "created_before", "after", "limit"})
DEFAULT_LIMIT = 25


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise InvalidRequestError(f"Invalid 'limit': expected an integer between 1 and 100, got '{raw}'.",
                                  param="limit", code="invalid_value")
    return int(raw)


def _refuse_unknown(request: web.Request) -> None:
    for name in request.query:
        if name not in LIST_PARAMS and not (name.startswith("metadata[") and name.endswith("]")):
            raise InvalidRequestError(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")


@routes.get("/v1/console/me")
async def me(request: web.Request) -> web.Response:
    """Who the key is: the console shows which project (or all of them) the reader is looking at."""
    p = request[PRINCIPAL]
    return respond(msgspec.json.encode({"object": "console.principal", "project_id": p.project_id,
                                        "key_id": p.key_id, "is_admin": p.is_admin}))


@routes.get("/v1/console/threads")
async def list_threads(request: web.Request) -> web.Response:
    _refuse_unknown(request)
    q = request.query
    f = check_filter(ThreadFilter(
        tenant_id=request[PRINCIPAL].scope, metadata=metadata_filter(request), text=q.get("q") or None,
        status=q.get("status") or None, created_after=unix_param(request, "created_after"),
        created_before=unix_param(request, "created_before")))
    page = await summaries(request.app[POOL], f, limit=_limit(request), after=q.get("after") or None)
    return respond(msgspec.json.encode(page))


@routes.get("/v1/console/threads/{thread_id}")
async def thread_timeline(request: web.Request) -> web.Response:
    thread_id, tenant = thread_id_of(request), request[PRINCIPAL].scope
    thread = await request.app[QUERIES].thread(thread_id, tenant)  # 404 unless this key may see it
    found = await summary(request.app[POOL], thread_id, tenant)
    if found is None:  # deleted between the two reads
        raise NotFoundError(f"No thread found with id '{thread_id}'.", param="thread_id")
    return respond(msgspec.json.encode(await timeline(request.app[POOL], thread, found)))


@routes.get("/v1/console/threads/{thread_id}/chain")
async def thread_chain(request: web.Request) -> web.Response:
    thread_id = thread_id_of(request)
    await request.app[QUERIES].thread(thread_id, request[PRINCIPAL].scope)
    return respond(msgspec.json.encode(await check_thread(request.app[POOL], thread_id)))
