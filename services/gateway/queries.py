"""Reads of the read-model tables, with OpenAI's cursor pagination. Never writes; never reads the log."""

from __future__ import annotations

import asyncpg
import msgspec

from shared import wire
from shared.errors import NotFoundError

from .http import ListParams


class Page(msgspec.Struct, frozen=True):
    body: bytes


def _direction(params: ListParams) -> tuple[str, str, bool]:
    """(comparison against the cursor, SQL order, reverse the rows after fetching)."""
    ascending = params.order == "asc"
    if params.before is None:
        return (">" if ascending else "<"), ("ASC" if ascending else "DESC"), False
    return ("<" if ascending else ">"), ("DESC" if ascending else "ASC"), True


def _page(rows: list[asyncpg.Record], params: ListParams, reverse: bool) -> bytes:
    has_more = len(rows) > params.limit
    rows = rows[: params.limit]
    if reverse:
        rows.reverse()
    ids = [r[0] for r in rows]
    return wire.list_page([r[1].encode() for r in rows], ids[0] if ids else None, ids[-1] if ids else None, has_more)


class Queries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def thread(self, thread_id: str, tenant_id: str) -> bytes:
        body = await self._pool.fetchval(
            "SELECT body::text FROM threads WHERE thread_id = $1 AND tenant_id = $2", thread_id, tenant_id)
        if body is None:
            raise NotFoundError(f"No thread found with id '{thread_id}'.", param="thread_id")
        return str(body).encode()

    async def message(self, thread_id: str, message_id: str, tenant_id: str) -> bytes:
        body = await self._pool.fetchval(
            "SELECT body::text FROM messages WHERE message_id = $1 AND thread_id = $2 AND tenant_id = $3",
            message_id, thread_id, tenant_id)
        if body is None:
            raise NotFoundError(f"No message found with id '{message_id}'.", param="message_id")
        return str(body).encode()

    async def messages(self, thread_id: str, tenant_id: str, params: ListParams, run_id: str | None) -> bytes:
        """One round trip: the thread's existence and the page, seeking by (thread_id, seq) in the index."""
        op, order, reverse = _direction(params)
        cursor = params.after or params.before
        conditions = ["m.thread_id = t.thread_id"]
        args: list[object] = [thread_id, tenant_id, params.limit + 1]
        if cursor is not None:
            args.append(cursor)
            conditions.append(f"m.seq {op} (SELECT seq FROM messages WHERE message_id = ${len(args)}"
                              " AND thread_id = $1)")
        if run_id is not None:
            args.append(run_id)
            conditions.append(f"m.run_id = ${len(args)}")
        sql = f"""
            SELECT m.message_id, m.body::text FROM threads t
            LEFT JOIN LATERAL (SELECT message_id, body, seq FROM messages m WHERE {' AND '.join(conditions)}
                               ORDER BY seq {order} LIMIT $3) m ON true
            WHERE t.thread_id = $1 AND t.tenant_id = $2"""
        rows = await self._pool.fetch(sql, *args)
        if not rows:
            raise NotFoundError(f"No thread found with id '{thread_id}'.", param="thread_id")
        return _page([r for r in rows if r[0] is not None], params, reverse)

    async def threads(self, tenant_id: str, params: ListParams, metadata: dict[str, str],
                      created_after: int | None, created_before: int | None) -> bytes:
        op, order, reverse = _direction(params)
        cursor = params.after or params.before
        conditions = ["tenant_id = $1"]
        args: list[object] = [tenant_id, params.limit + 1]
        if cursor is not None:
            args.append(cursor)
            conditions.append(f"position {op} (SELECT position FROM threads WHERE thread_id = ${len(args)})")
        if metadata:
            args.append(msgspec.json.encode(metadata).decode())
            conditions.append(f"metadata @> ${len(args)}::jsonb")
        if created_after is not None:
            args.append(created_after)
            conditions.append(f"created_at >= ${len(args)}")
        if created_before is not None:
            args.append(created_before)
            conditions.append(f"created_at < ${len(args)}")
        sql = (f"SELECT thread_id, body::text FROM threads WHERE {' AND '.join(conditions)}"
               f" ORDER BY position {order} LIMIT $2")
        rows = await self._pool.fetch(sql, *args)
        return _page(list(rows), params, reverse)
