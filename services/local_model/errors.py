"""OpenAI-shaped error bodies, so the SDK raises the same exception classes it would against OpenAI."""

from __future__ import annotations

import msgspec
from aiohttp import web

from .schema import ErrorBody, ErrorDetail

# (type, code) per status, following what OpenAI sends; unlisted statuses fall back by class.
_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "service_unavailable"),
}


def error_response(status: int, message: str, *, param: str | None = None, code: str | None = None) -> web.Response:
    fallback = ("server_error" if status >= 500 else "invalid_request_error", None)
    kind, default_code = _KINDS.get(status, fallback)
    detail = ErrorDetail(message=message, type=kind, param=param, code=code or default_code)
    return web.Response(
        status=status, body=msgspec.json.encode(ErrorBody(error=detail)), content_type="application/json"
    )
