"""Reads of the read-model tables, with OpenAI's cursor pagination. Never writes; never reads the log.

Lists seek by an indexed order column: their cost does not grow with the length of a thread.
SQL is assembled only from constant fragments chosen here; every value travels as a $n parameter.
"""

from __future__ import annotations

import asyncpg
import msgspec

from shared import wire
from shared.errors import NotFoundError

from .http import ListParams


class Params:
    """Collects values and hands out their $n placeholders."""

    def __init__(self, *values: object) -> None:
        self.values = list(values)

    def add(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


class Parent(msgspec.Struct, frozen=True):
    """The object a list hangs under: it must exist (and belong to the tenant), or the list is a 404."""

    table: str
    id_col: str
    id: str
    kind: str


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

    async def one(self, table: str, id_col: str, object_id: str, tenant_id: str | None, kind: str,
                  scope: tuple[str, str] | None = None) -> bytes:
        p = Params(object_id)
        extra = f" AND {scope[0]} = {p.add(scope[1])}" if scope else ""
        if tenant_id is not None:  # None: an admin key, which sees every project
            extra += f" AND tenant_id = {p.add(tenant_id)}"
        body = await self._pool.fetchval(f"SELECT body::text FROM {table} WHERE {id_col} = $1{extra}", *p.values)
        if body is None:
            raise NotFoundError(f"No {kind} found with id '{object_id}'.", param=f"{kind}_id")
        return str(body).encode()

    async def page(self, *, table: str, id_col: str, order_col: str, tenant_id: str | None, params: ListParams,
                   filters: list[tuple[str, object]] | None = None, parent: Parent | None = None,
                   link_col: str | None = None) -> bytes:
        """One page of `table`, newest or oldest first, after/before a cursor id, in one round trip."""
        op, order, reverse = _direction(params)
        p = Params(params.limit + 1)
        conditions = []
        tenant = p.add(tenant_id) if tenant_id is not None else None  # None: an admin key sees every project
        if tenant is not None:
            conditions.append(f"x.tenant_id = {tenant}")
        if parent is not None:
            conditions.append(f"x.{link_col} = p.{parent.id_col}")
        cursor = params.after or params.before
        if cursor is not None:
            scope = (f" AND {link_col} = p.{parent.id_col}" if parent is not None
                     else f" AND tenant_id = {tenant}" if tenant is not None else "")
            conditions.append(f"x.{order_col} {op} (SELECT {order_col} FROM {table} WHERE {id_col} = "
                              f"{p.add(cursor)}{scope})")
        for fragment, value in filters or []:
            conditions.append(fragment.format(p.add(value)))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        inner = f"SELECT x.{id_col}, x.body::text FROM {table} x{where} ORDER BY x.{order_col} {order} LIMIT $1"
        if parent is None:
            return _page(list(await self._pool.fetch(inner, *p.values)), params, reverse)
        parent_id = p.add(parent.id)
        parent_tenant = f" AND p.tenant_id = {tenant}" if tenant is not None else ""
        rows = await self._pool.fetch(
            f"SELECT i.* FROM {parent.table} p LEFT JOIN LATERAL ({inner}) i ON true"
            f" WHERE p.{parent.id_col} = {parent_id}{parent_tenant}", *p.values)
        if not rows:
            raise NotFoundError(f"No {parent.kind} found with id '{parent.id}'.", param=f"{parent.kind}_id")
        return _page([r for r in rows if r[0] is not None], params, reverse)

    # --- the resources --------------------------------------------------------------------------

    async def thread(self, thread_id: str, tenant_id: str | None) -> bytes:
        return await self.one("threads", "thread_id", thread_id, tenant_id, "thread")

    async def threads(self, tenant_id: str | None, params: ListParams, metadata: dict[str, str],
                      created_after: int | None, created_before: int | None) -> bytes:
        filters: list[tuple[str, object]] = []
        if metadata:
            filters.append(("x.metadata @> {}::jsonb", msgspec.json.encode(metadata).decode()))
        if created_after is not None:
            filters.append(("x.created_at >= {}", created_after))
        if created_before is not None:
            filters.append(("x.created_at < {}", created_before))
        return await self.page(table="threads", id_col="thread_id", order_col="position", tenant_id=tenant_id,
                               params=params, filters=filters)

    async def message(self, thread_id: str, message_id: str, tenant_id: str | None) -> bytes:
        return await self.one("messages", "message_id", message_id, tenant_id, "message", ("thread_id", thread_id))

    async def messages(self, thread_id: str, tenant_id: str | None, params: ListParams, run_id: str | None) -> bytes:
        filters: list[tuple[str, object]] = [("x.run_id = {}", run_id)] if run_id is not None else []
        return await self.page(table="messages", id_col="message_id", order_col="seq", tenant_id=tenant_id,
                               params=params, filters=filters, link_col="thread_id",
                               parent=Parent("threads", "thread_id", thread_id, "thread"))

    async def assistant(self, assistant_id: str, tenant_id: str | None) -> bytes:
        return await self.one("assistants", "assistant_id", assistant_id, tenant_id, "assistant")

    async def assistants(self, tenant_id: str | None, params: ListParams) -> bytes:
        return await self.page(table="assistants", id_col="assistant_id", order_col="position", tenant_id=tenant_id,
                               params=params)

    async def run(self, thread_id: str, run_id: str, tenant_id: str | None) -> bytes:
        return await self.one("runs", "run_id", run_id, tenant_id, "run", ("thread_id", thread_id))

    async def runs(self, thread_id: str, tenant_id: str | None, params: ListParams) -> bytes:
        return await self.page(table="runs", id_col="run_id", order_col="seq", tenant_id=tenant_id, params=params,
                               link_col="thread_id", parent=Parent("threads", "thread_id", thread_id, "thread"))

    async def items(self, thread_id: str, tenant_id: str | None, params: ListParams) -> bytes:
        return await self.page(table="items", id_col="item_id", order_col="seq", tenant_id=tenant_id, params=params,
                               link_col="thread_id", parent=Parent("threads", "thread_id", thread_id, "conversation"))

    async def item(self, thread_id: str, item_id: str, tenant_id: str | None) -> bytes:
        return await self.one("items", "item_id", item_id, tenant_id, "item", ("thread_id", thread_id))

    async def items_by_id(self, thread_id: str, item_ids: list[str]) -> list[object]:
        rows = await self._pool.fetch(
            "SELECT body::text FROM items WHERE thread_id = $1 AND item_id = ANY($2::text[]) ORDER BY seq",
            thread_id, item_ids)
        return [msgspec.json.decode(r[0]) for r in rows]

    async def response(self, response_id: str, tenant_id: str | None) -> bytes:
        return await self.one("responses", "response_id", response_id, tenant_id, "response")

    async def response_row(self, response_id: str, tenant_id: str | None) -> asyncpg.Record | None:
        """The stored response with its stream and links (None: unknown, deleted or not visible)."""
        row = await self._pool.fetchrow(
            "SELECT response_id, thread_id, tenant_id, conversation_id, previous_response_id, status, input_item_ids,"
            " body::text FROM responses WHERE response_id = $1", response_id)
        if row is None or (tenant_id is not None and row[2] != tenant_id):
            return None
        return row

    async def history(self, stream_id: str, params: ListParams) -> bytes:
        """A stream's events as `thread.event` objects, by stream version; cursors are event ids."""
        op, order, reverse = _direction(params)
        p = Params(stream_id, params.limit + 1)
        cursor = params.after or params.before
        condition = ""
        if cursor is not None:
            condition = (f" AND stream_version {op} (SELECT stream_version FROM events WHERE stream_id = $1"
                         f" AND event_id::text = {p.add(cursor)})")
        rows = await self._pool.fetch(
            f"""SELECT event_id::text, json_build_object(
                    'object', 'thread.event', 'id', event_id, 'position', position, 'stream_version', stream_version,
                    'type', event_type, 'schema_version', schema_version,
                    'recorded_at', extract(epoch FROM recorded_at), 'correlation_id', correlation_id,
                    'causation_id', causation_id, 'redacted', redacted,
                    'data', convert_from(payload, 'UTF8')::json)::text
                FROM events WHERE stream_id = $1{condition} ORDER BY stream_version {order} LIMIT $2""", *p.values)
        return _page(list(rows), params, reverse)

    async def step(self, thread_id: str, run_id: str, step_id: str, tenant_id: str | None) -> bytes:
        body = await self.one("run_steps", "step_id", step_id, tenant_id, "step", ("run_id", run_id))
        await self.run(thread_id, run_id, tenant_id)
        return body

    async def steps(self, thread_id: str, run_id: str, tenant_id: str | None, params: ListParams) -> bytes:
        await self.run(thread_id, run_id, tenant_id)
        return await self.page(table="run_steps", id_col="step_id", order_col="seq", tenant_id=tenant_id,
                               params=params, link_col="run_id", parent=Parent("runs", "run_id", run_id, "run"))
