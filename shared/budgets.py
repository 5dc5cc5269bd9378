"""Token budgets: a project may cap its tokens per period, and each thread's. Checked before a model call.

Spending is read from the `run_usage` read model (finished runs); the check asks whether the tokens already
spent plus what the next call needs would pass a budget.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Literal

import asyncpg
import msgspec

Period = Literal["day", "month", "total"]
CACHE_S = 5.0


class Budget(msgspec.Struct, frozen=True):
    scope: Literal["project", "thread"]
    period: Period
    tokens: int


def period_start(period: Period, now: float) -> int:
    today = dt.datetime.fromtimestamp(now, dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return int(today.timestamp())
    if period == "month":
        return int(today.replace(day=1).timestamp())
    return 0


class Budgets:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._cache: dict[str, tuple[float, list[Budget]]] = {}

    async def of(self, tenant_id: str) -> list[Budget]:
        hit = self._cache.get(tenant_id)
        if hit is None or time.monotonic() - hit[0] > CACHE_S:
            rows = await self._pool.fetch("SELECT scope, period, tokens FROM budgets WHERE tenant_id = $1", tenant_id)
            hit = self._cache[tenant_id] = (time.monotonic(), [Budget(r[0], r[1], r[2]) for r in rows])
        return hit[1]

    async def refusal(self, tenant_id: str, thread_id: str, needed: int) -> str | None:
        """Why a call needing `needed` tokens must not happen now, or None if every budget allows it."""
        now = time.time()
        for budget in await self.of(tenant_id):
            start = period_start(budget.period, now)
            if budget.scope == "project":
                used = await self._pool.fetchval(
                    "SELECT coalesce(sum(total_tokens), 0) FROM run_usage WHERE tenant_id = $1 AND ended_at >= $2",
                    tenant_id, start)
            else:
                used = await self._pool.fetchval(
                    "SELECT coalesce(sum(total_tokens), 0) FROM run_usage WHERE thread_id = $1 AND ended_at >= $2",
                    thread_id, start)
            if used + needed > budget.tokens:
                what = "project's" if budget.scope == "project" else "thread's"
                span = {"day": "daily", "month": "monthly", "total": "total"}[budget.period]
                return (f"The {what} {span} token budget of {budget.tokens} would be exceeded: {used} tokens used, "
                        f"this request needs about {needed}.")
        return None


async def set_budget(conn: asyncpg.Pool | asyncpg.Connection, tenant_id: str, scope: str, period: str,
                     tokens: int) -> None:
    await conn.execute(
        "INSERT INTO budgets (tenant_id, scope, period, tokens) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant_id, scope) DO UPDATE SET period = $3, tokens = $4", tenant_id, scope, period, tokens)


async def clear_budgets(conn: asyncpg.Pool | asyncpg.Connection, tenant_id: str) -> None:
    await conn.execute("DELETE FROM budgets WHERE tenant_id = $1", tenant_id)
