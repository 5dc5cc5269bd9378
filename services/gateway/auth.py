"""API keys: `Authorization: Bearer …` resolved to a project. Keys are stored as SHA-256 hashes only."""

from __future__ import annotations

import hmac
import time

import asyncpg
import msgspec

from shared.apikeys import hash_key
from shared.errors import AuthenticationError

# A revoked key stops working within this long on every gateway.
CACHE_TTL_S = 10.0


class Principal(msgspec.Struct, frozen=True):
    project_id: str
    key_id: str
    is_admin: bool = False

    @property
    def scope(self) -> str | None:
        """The project whose objects this key sees; None (every project) for an admin key."""
        return None if self.is_admin else self.project_id


class PrincipalCache:
    """Resolves keys with a short-lived cache, so a request costs no extra round trip."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}

    async def resolve(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthenticationError(
                "You didn't provide an API key. Provide it in an Authorization header (Bearer <key>).",
                code="missing_api_key",
            )
        digest = hash_key(authorization[7:].strip())
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is None or now - hit[0] > CACHE_TTL_S:
            row = await self._pool.fetchrow(
                "SELECT key_id, project_id, is_admin, key_hash FROM api_keys"
                " WHERE key_hash = $1 AND revoked_at IS NULL", digest)
            # The lookup is by hash; compare again in constant time so timing says nothing about the key.
            principal = (Principal(row[1], row[0], row[2])
                         if row is not None and hmac.compare_digest(bytes(row[3]), digest) else None)
            if len(self._cache) > 10_000:
                self._cache.clear()
            hit = self._cache[digest] = (now, principal)
        if hit[1] is None:
            raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
        return hit[1]
