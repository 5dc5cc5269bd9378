"""The request pipeline around every handler: request ids, CORS, keys, rate limits, retries, admin audit.

Order (outermost first): request_ids -> observe -> errors_as_json -> refuse_nul -> cors -> authenticate
-> rate_limit -> idempotency -> audit_admin_reads -> handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid

from aiohttp import web

from shared.errors import InvalidRequestError, ServiceError
from shared.events import AdminRead
from shared.ids import new_event_id
from shared.store import NewEvent

from .errors import Handler, error_body
from .idempotency import IdempotencyKeys, Stored, refuse_streams, request_hash
from .keys import IDEMPOTENCY, PRINCIPAL, PRINCIPALS, RATE_LIMITER, REQUEST_ID, SETTINGS, STORE
from .limits import RateLimitedError


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request gets an id: the `x-request-id` header (errors included: this is the outermost
    middleware) and the correlation id of the events it appends."""
    request[REQUEST_ID] = uuid.uuid4()
    try:
        response = await handler(request)
    except web.HTTPException as e:
        e.headers["x-request-id"] = str(request[REQUEST_ID])
        raise
    if not response.prepared:
        response.headers["x-request-id"] = str(request[REQUEST_ID])
    return response


@web.middleware
async def refuse_nul(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A NUL in a path id or a query value can name nothing (PostgreSQL text cannot hold it): 400, not 500."""
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.query.items()):
        raise InvalidRequestError("The request's path or query contains a null character.", code="invalid_value")
    return await handler(request)


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Off unless THREADLOG_CORS_ORIGINS lists origins (or "*")."""
    allowed = request.app[SETTINGS].cors_origins
    origin = request.headers.get("Origin")
    if not allowed or origin is None:
        return await handler(request)
    origins = {o.strip() for o in allowed.split(",")}
    if "*" not in origins and origin not in origins:
        return await handler(request)
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
               "Access-Control-Expose-Headers": "x-request-id, openai-poll-after-ms, retry-after"}
    if request.method == "OPTIONS":
        headers.update({
            "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", "*"),
            "Access-Control-Max-Age": "600"})
        return web.Response(status=204, headers=headers)
    response = await handler(request)
    if not response.prepared:
        response.headers.update(headers)
    return response


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/v1/"):
        request[PRINCIPAL] = await request.app[PRINCIPALS].resolve(request.headers.get("Authorization"))
    return await handler(request)


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/v1/"):
        try:
            request.app[RATE_LIMITER].take(request[PRINCIPAL].key_id)
        except RateLimitedError as e:
            wait = max(e.retry_after_s, 0.001)
            return web.Response(
                status=429, body=error_body(e.message, e.kind, None, e.code), content_type="application/json",
                headers={"retry-after": str(math.ceil(wait)), "retry-after-ms": str(math.ceil(wait * 1000))})
    return await handler(request)


@web.middleware
async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.headers.get("Idempotency-Key")
    if not key or request.method not in ("POST", "DELETE") or not request.path.startswith("/v1/"):
        return await handler(request)
    body = await request.read()
    refuse_streams(body)
    keys: IdempotencyKeys = request.app[IDEMPOTENCY]
    tenant = request[PRINCIPAL].project_id
    claimed = await keys.claim(tenant, key, request_hash(request, body), request[REQUEST_ID])
    if isinstance(claimed, Stored):
        return web.Response(status=claimed.status, body=claimed.body, content_type=claimed.content_type,
                            headers={"idempotent-replayed": "true"})
    request[REQUEST_ID] = claimed
    renewing = asyncio.create_task(keys.renew_while(tenant, key, claimed))
    try:
        response = await handler(request)
    except ServiceError as e:
        if e.status >= 500:
            await keys.release(tenant, key, claimed)
            raise
        answer = Stored(e.status, error_body(e.message, e.kind, e.param, e.code), "application/json")
        await keys.store(tenant, key, claimed, answer)
        return web.Response(status=answer.status, body=answer.body, content_type=answer.content_type)
    except BaseException:
        with contextlib.suppress(Exception):
            await keys.release(tenant, key, claimed)
        raise
    finally:
        renewing.cancel()
    if isinstance(response, web.Response) and response.status < 500 and response.body is not None:
        content = response.body if isinstance(response.body, bytes) else bytes(response.body)  # type: ignore[arg-type]
        await keys.store(tenant, key, claimed, Stored(response.status, content, response.content_type))
    else:
        await keys.release(tenant, key, claimed)
    return response


@web.middleware
async def audit_admin_reads(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An admin key reads across projects; each such read is itself recorded in the log, before it happens."""
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.is_admin and request.method == "GET":
        event = AdminRead(key_id=principal.key_id, method=request.method, path=request.path,
                          query=request.query_string, at=int(time.time()))
        await request.app[STORE].append(f"adminread_{uuid.uuid4().hex}", 0,
                                        [NewEvent(event=event, event_id=new_event_id())],
                                        tenant_id=principal.project_id, correlation_id=request[REQUEST_ID])
    return await handler(request)
