"""Every error leaves the gateway in OpenAI's shape, from this one place."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from shared.db import DATABASE_ERRORS
from shared.errors import ServiceError

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(message: str, kind: str, param: str | None, code: str | None) -> bytes:
    return msgspec.json.encode({"error": {"message": message, "type": kind, "param": param, "code": code}})


def error_response(status: int, message: str, kind: str, param: str | None = None, code: str | None = None,
                   retry: bool | None = None, retry_after_s: float | None = None) -> web.Response:
    headers = {} if retry is None else {"x-should-retry": "true" if retry else "false"}
    if retry_after_s is not None:
        headers["retry-after"] = str(max(1, round(retry_after_s)))
        headers["retry-after-ms"] = str(int(retry_after_s * 1000))
    return web.Response(status=status, body=error_body(message, kind, param, code), content_type="application/json",
                        headers=headers)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ServiceError as e:
        return error_response(e.status, e.message, e.kind, e.param, e.code, e.retryable,
                              getattr(e, "retry_after_s", None))
    except web.HTTPNotFound:
        return error_response(404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error",
                              code="unknown_url")
    except web.HTTPMethodNotAllowed:
        return error_response(405, f"Method {request.method} is not allowed on {request.path}",
                              "invalid_request_error", code="method_not_allowed")
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "Request body too large.", "invalid_request_error", code="request_too_large")
    except web.HTTPException:
        raise
    except DATABASE_ERRORS as e:
        # The database is down or restarting: answer at once rather than hang; the SDK retries 503s.
        log.warning("dependency unavailable", extra={"path": request.path, "error": e.__class__.__name__})
        return error_response(503, "The service is temporarily unavailable. Please retry.", "server_error",
                              code="service_unavailable")
    except Exception:
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return error_response(500, "The server had an error while processing your request.", "server_error")
