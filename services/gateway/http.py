"""Request decoding, list parameters and JSON answers: the HTTP edges every route shares."""

from __future__ import annotations

import re
from typing import Literal, TypeVar

import msgspec
from aiohttp import web

from shared.errors import InvalidRequestError
from shared.wire_responses import to_thread_id

T = TypeVar("T")
_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]*)`")


def validation_error(e: msgspec.ValidationError | msgspec.DecodeError) -> InvalidRequestError:
    """msgspec already names the path (`$.messages[0].role`): turn it into OpenAI's `param`."""
    text = str(e)
    match = _PATH.search(text)
    path = match.group("path") if match else ""
    unknown = _UNKNOWN.search(text)
    if unknown:
        param = f"{path}.{unknown.group('field')}" if path else unknown.group("field")
        return InvalidRequestError(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")
    if isinstance(e, msgspec.DecodeError) and not isinstance(e, msgspec.ValidationError):
        return InvalidRequestError(
            "We could not parse the JSON body of your request. The body must be a JSON object.", code="invalid_json")
    message = _PATH.sub("", text)
    return InvalidRequestError(f"Invalid '{path or 'body'}': {message}", param=path or None,
                               code="invalid_value")


async def decode_body(request: web.Request, decoder: msgspec.json.Decoder[T]) -> T:
    body = await request.read()
    if not body.strip():
        body = b"{}"
    if b"\\u0000" in body:
        # PostgreSQL text and jsonb cannot hold NUL: refuse it here rather than store what cannot be projected.
        raise InvalidRequestError("Invalid body: strings may not contain the null character (\\u0000).",
                                  code="invalid_value")
    try:
        return decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise validation_error(e) from None


def respond(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


class ListParams(msgspec.Struct, frozen=True):
    limit: int
    order: Literal["asc", "desc"]
    after: str | None
    before: str | None


def list_params(request: web.Request) -> ListParams:
    query = request.query
    raw_limit = query.get("limit", "20")
    try:
        limit = int(raw_limit)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequestError(
            f"Invalid 'limit': expected an integer between 1 and 100, got '{raw_limit}'.", param="limit",
            code="invalid_value")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError(f"Invalid 'order': expected 'asc' or 'desc', got '{order}'.", param="order",
                                  code="invalid_value")
    after, before = query.get("after") or None, query.get("before") or None
    if after and before:
        raise InvalidRequestError("Pass either 'after' or 'before', not both.", param="before",
                                  code="invalid_value")
    return ListParams(limit, order, after, before)  # type: ignore[arg-type]


def unix_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value < 2**53:
        raise InvalidRequestError(f"Invalid '{name}': expected a unix timestamp in seconds, got '{raw}'.",
                                  param=name, code="invalid_value")
    return value


def metadata_filter(request: web.Request) -> dict[str, str]:
    """`metadata[user_id]=u1` pairs from the query string."""
    out: dict[str, str] = {}
    for key, value in request.query.items():
        if key.startswith("metadata[") and key.endswith("]"):
            out[key[9:-1]] = value
    return out


def thread_id_of(request: web.Request) -> str:
    """The thread in the path: a conversation id (`conv_X`) names the same stream as `thread_X`."""
    return to_thread_id(request.match_info["thread_id"])
