"""/v1/usage: tokens spent by finished runs, in total and grouped by thread, assistant or day."""

from __future__ import annotations

import msgspec
from aiohttp import web

from shared.errors import InvalidRequestError

from ..http import respond, unix_param
from ..keys import POOL, PRINCIPAL

routes = web.RouteTableDef()
GROUPS = {"thread": "thread_id", "assistant": "assistant_id",
          "day": "to_char(to_timestamp(ended_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"}
# sum(bigint) is numeric: cast back, or the JSON would carry strings.
SUMS = ("count(*) AS runs, coalesce(sum(prompt_tokens), 0)::bigint, coalesce(sum(completion_tokens), 0)::bigint,"
        " coalesce(sum(total_tokens), 0)::bigint")


def _bucket(row: tuple[object, ...], offset: int) -> dict[str, object]:
    runs, prompt, completion, total = row[offset:offset + 4]
    return {"runs": runs, "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


@routes.get("/v1/usage")
async def usage(request: web.Request) -> web.Response:
    group_by = request.query.get("group_by")
    if group_by is not None and group_by not in GROUPS:
        raise InvalidRequestError(f"Invalid 'group_by': expected one of {sorted(GROUPS)}.", param="group_by",
                                  code="invalid_value")
    principal = request[PRINCIPAL]
    values: list[object] = []
    conditions: list[str] = []
    if principal.scope is not None:
        values.append(principal.scope)
        conditions.append(f"tenant_id = ${len(values)}")
    for name, op in (("start_time", ">="), ("end_time", "<")):
        bound = unix_param(request, name)
        if bound is not None:
            values.append(bound)
            conditions.append(f"ended_at {op} ${len(values)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    pool = request.app[POOL]
    total = await pool.fetchrow(f"SELECT {SUMS} FROM run_usage{where}", *values)
    data: list[dict[str, object]] = []
    if group_by is not None:
        key = GROUPS[group_by]
        rows = await pool.fetch(
            f"SELECT {key} AS key, tenant_id, {SUMS} FROM run_usage{where} GROUP BY 1, 2 ORDER BY 1, 2", *values)
        for r in rows:
            data.append({"object": "usage.bucket", "group_by": group_by, "key": r[0], "project_id": r[1],
                         **_bucket(tuple(r), 2)})
    budgets = []
    if principal.scope is not None:
        budgets = [{"scope": r[0], "period": r[1], "tokens": r[2]} for r in await pool.fetch(
            "SELECT scope, period, tokens FROM budgets WHERE tenant_id = $1 ORDER BY scope", principal.scope)]
    assert total is not None
    body = {"object": "usage", "total": _bucket(tuple(total), 0), "data": data, "budgets": budgets}
    return respond(msgspec.json.encode(body))
