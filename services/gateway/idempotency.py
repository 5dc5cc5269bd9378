"""Safe retries: a POST with an `Idempotency-Key` is carried out once; a retry gets the first answer.

The first request claims the key (one INSERT); concurrent retries wait for its answer. The same key with a
different request is refused (422, not retryable). Every event the first request appended carries its
request id as correlation id, so a claim left behind by a crashed gateway can be told apart: committed (the
retry is told so, 409 not retryable) or not (the retry carries the request out).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid

import asyncpg
import msgspec
from aiohttp import web

from shared.errors import InvalidRequestError, ServiceError

# A claim whose gateway stopped renewing it this long ago is abandoned (that gateway died, or lost PostgreSQL).
ABANDONED_S = 6.0
RENEW_S = 2.0
POLL_S = 0.05


class KeyReusedError(ServiceError):
    status = 422
    kind = "invalid_request_error"
    retryable = False


class OutcomeLostError(ServiceError):
    status = 409
    kind = "invalid_request_error"
    retryable = False


class Stored(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    content_type: str


class StreamFlag(msgspec.Struct):
    stream: bool | None = None


_STREAM = msgspec.json.Decoder(StreamFlag)


def request_hash(request: web.Request, body: bytes) -> bytes:
    return hashlib.sha256(f"{request.method} {request.path_qs}\n".encode() + body).digest()


def refuse_streams(body: bytes) -> None:
    try:
        streaming = bool(_STREAM.decode(body or b"{}").stream)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return  # the handler refuses a malformed body itself
    if streaming:
        raise InvalidRequestError("Idempotency-Key is not supported with stream: true; resume the stream "
                                  "with Last-Event-ID instead.", param="stream", code="unsupported_parameter")


class IdempotencyKeys:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim(self, tenant: str, key: str, digest: bytes, request_id: uuid.UUID) -> Stored | uuid.UUID:
        """Our request id if this request is the one to carry it out; else the first answer, once known."""
        deadline = time.monotonic() + ABANDONED_S + 5
        while True:
            row = await self._pool.fetchrow(
                "INSERT INTO idempotency_keys (tenant_id, key, request_hash, request_id) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (tenant_id, key) DO NOTHING RETURNING request_id", tenant, key, digest, request_id)
            if row is not None:
                return request_id
            found = await self._pool.fetchrow(
                "SELECT request_hash, status, body, content_type, request_id, now() - created_at > $3 * interval"
                " '1 second' FROM idempotency_keys WHERE tenant_id = $1 AND key = $2", tenant, key, ABANDONED_S)
            if found is None:
                continue  # released meanwhile: claim it
            if bytes(found[0]) != digest:
                raise KeyReusedError(
                    "This Idempotency-Key was already used with a different request. Use a new key.",
                    param="Idempotency-Key", code="idempotency_key_reused")
            if found[1] is not None:
                return Stored(found[1], bytes(found[2]), found[3])
            if found[5]:
                return await self._take_over(tenant, key, found[4], request_id)
            if time.monotonic() > deadline:
                raise OutcomeLostError("The first request with this Idempotency-Key is still in progress.",
                                       code="idempotency_in_progress")
            await asyncio.sleep(POLL_S)

    async def _take_over(self, tenant: str, key: str, old: uuid.UUID, new: uuid.UUID) -> uuid.UUID:
        committed = await self._pool.fetchval("SELECT EXISTS (SELECT 1 FROM events WHERE correlation_id = $1)", old)
        if committed:
            raise OutcomeLostError(
                f"The first request with this Idempotency-Key was recorded (request {old}) but its answer was "
                "lost; read the object instead of retrying.", code="idempotency_outcome_lost")
        await self._pool.execute(
            "UPDATE idempotency_keys SET request_id = $4, created_at = now() WHERE tenant_id = $1 AND key = $2"
            " AND request_id = $3 AND status IS NULL", tenant, key, old, new)
        return new

    async def renew_while(self, tenant: str, key: str, request_id: uuid.UUID) -> None:
        """While the request is being carried out, say so (long requests, e.g. foreground responses)."""
        while True:
            await asyncio.sleep(RENEW_S)
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._pool.execute(
                    "UPDATE idempotency_keys SET created_at = now() WHERE tenant_id = $1 AND key = $2"
                    " AND request_id = $3 AND status IS NULL", tenant, key, request_id)

    async def store(self, tenant: str, key: str, request_id: uuid.UUID, answer: Stored) -> None:
        await self._pool.execute(
            "UPDATE idempotency_keys SET status = $4, body = $5, content_type = $6"
            " WHERE tenant_id = $1 AND key = $2 AND request_id = $3", tenant, key, request_id, answer.status,
            answer.body, answer.content_type)

    async def release(self, tenant: str, key: str, request_id: uuid.UUID) -> None:
        """Forget a claim whose request failed on our side (5xx) before appending: a retry may carry it out.
        If it did append, the claim stays: a retry is then told the outcome was recorded."""
        await self._pool.execute(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND request_id = $3"
            " AND NOT EXISTS (SELECT 1 FROM events WHERE correlation_id = $3)", tenant, key, request_id)
