"""`threadlog keys …` and `threadlog budgets …`: operator commands on projects' keys and token budgets."""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from shared.apikeys import create_key, list_keys, revoke_key
from shared.budgets import clear_budgets, set_budget


async def _with_conn(database_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(database_url)


def keys_create(database_url: str, project: str, admin: bool) -> int:
    async def go() -> str:
        conn = await _with_conn(database_url)
        try:
            return await create_key(conn, project, is_admin=admin)
        finally:
            await conn.close()

    key = asyncio.run(go())
    print(key)
    print(f"(a new {'ADMIN ' if admin else ''}key of project {project}; it is shown only once)", file=sys.stderr)
    return 0


def keys_list(database_url: str, project: str | None) -> int:
    async def go() -> None:
        conn = await _with_conn(database_url)
        try:
            for k in await list_keys(conn, project):
                state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
                print(f"{k.key_id}\t{k.project_id}\t{k.hint}\t{'admin' if k.is_admin else 'project'}\t"
                      f"created {k.created_at}\t{state}")
        finally:
            await conn.close()

    asyncio.run(go())
    return 0


def keys_revoke(database_url: str, key_id: str) -> int:
    async def go() -> bool:
        conn = await _with_conn(database_url)
        try:
            return await revoke_key(conn, key_id)
        finally:
            await conn.close()

    if asyncio.run(go()):
        print(f"revoked {key_id} (gateways stop accepting it within 10 s)")
        return 0
    print(f"no active key {key_id}", file=sys.stderr)
    return 1


def budgets_set(database_url: str, project: str, tokens: int, period: str, per_thread: bool) -> int:
    async def go() -> None:
        conn = await _with_conn(database_url)
        try:
            await set_budget(conn, project, "thread" if per_thread else "project", period, tokens)
        finally:
            await conn.close()

    asyncio.run(go())
    print(f"budget of {project}: {tokens} tokens per {'thread, ' if per_thread else ''}{period}")
    return 0


def budgets_clear(database_url: str, project: str) -> int:
    async def go() -> None:
        conn = await _with_conn(database_url)
        try:
            await clear_budgets(conn, project)
        finally:
            await conn.close()

    asyncio.run(go())
    print(f"budgets of {project} cleared")
    return 0
