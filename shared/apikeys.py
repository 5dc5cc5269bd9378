"""API keys: created, listed and revoked by `threadlog keys`; stored as SHA-256 hashes only."""

from __future__ import annotations

import hashlib
import secrets

import asyncpg
import msgspec

DEFAULT_PROJECT = "proj_default"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def new_key() -> str:
    return "tl-" + secrets.token_urlsafe(32)


def key_id_of(key: str) -> str:
    return "key_" + hashlib.sha256(b"id:" + key.encode()).hexdigest()[:16]


class KeyInfo(msgspec.Struct, frozen=True):
    key_id: str
    project_id: str
    hint: str
    is_admin: bool
    created_at: str
    revoked_at: str | None


async def ensure_key(pool: asyncpg.Pool | asyncpg.Connection, key: str, project_id: str = DEFAULT_PROJECT, *,
                     name: str | None = None, is_admin: bool = False) -> str:
    """Make `key` a working key of `project_id` (idempotent); returns its key id."""
    key_id = key_id_of(key)
    await pool.execute("INSERT INTO projects (project_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                       project_id, name or project_id)
    await pool.execute(
        "INSERT INTO api_keys (key_id, project_id, key_hash, key_hint, is_admin) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (key_hash) DO NOTHING", key_id, project_id, hash_key(key), key[-4:], is_admin)
    return key_id


async def create_key(conn: asyncpg.Pool | asyncpg.Connection, project_id: str, *, is_admin: bool = False) -> str:
    key = new_key()
    await ensure_key(conn, key, project_id, is_admin=is_admin)
    return key


async def list_keys(conn: asyncpg.Pool | asyncpg.Connection, project_id: str | None = None) -> list[KeyInfo]:
    rows = await conn.fetch(
        "SELECT key_id, project_id, key_hint, is_admin, created_at, revoked_at FROM api_keys"
        " WHERE $1::text IS NULL OR project_id = $1 ORDER BY created_at", project_id)
    return [KeyInfo(r[0], r[1], "…" + r[2], r[3], r[4].isoformat(), r[5].isoformat() if r[5] else None)
            for r in rows]


async def revoke_key(conn: asyncpg.Pool | asyncpg.Connection, key_id: str) -> bool:
    result: str = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id)
    return result.endswith(" 1")
