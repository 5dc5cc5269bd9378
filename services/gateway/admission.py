"""Whether a new run may start: the project's active-run limit and its token budgets, checked up front."""

from __future__ import annotations

import asyncpg
import msgspec

from shared.budgets import Budgets
from shared.errors import ServiceError
from shared.events import RunCreated
from shared.tokens import count_tokens

ACTIVE_RUNS = ("SELECT count(*) FROM runs WHERE tenant_id = $1"
               " AND status IN ('queued', 'in_progress', 'requires_action', 'cancelling')")


class QuotaExceededError(ServiceError):
    """A budget would be passed: retrying will not help until the period turns or the budget is raised."""

    status = 429
    kind = "insufficient_quota"
    retryable = False


class TooManyRunsError(ServiceError):
    status = 429
    kind = "requests"
    retryable = True
    retry_after_s = 1.0


async def estimate_prompt_tokens(pool: asyncpg.Pool, run: RunCreated, extra_texts: list[str]) -> int:
    """What the model will be sent, about: instructions plus the thread's messages (as truncation keeps them)."""
    strategy = run.truncation_strategy
    limit = strategy.last_messages if strategy.type == "last_messages" else None
    rows = await pool.fetch(
        "SELECT body->'content' FROM messages WHERE thread_id = $1 ORDER BY seq DESC LIMIT $2", run.thread_id, limit)
    total = count_tokens(run.instructions) + sum(count_tokens(t) for t in extra_texts)
    for row in rows:
        for block in msgspec.json.decode(row[0] or "[]"):
            if block.get("type") == "text":
                total += count_tokens(block["text"]["value"]) + 4
    if run.max_prompt_tokens is not None:
        total = min(total, run.max_prompt_tokens)
    return total


async def admit_run(pool: asyncpg.Pool, budgets: Budgets, tenant_id: str, run: RunCreated, max_active: int,
                    extra_texts: list[str]) -> None:
    active = await pool.fetchval(ACTIVE_RUNS, tenant_id)
    if active >= max_active:
        raise TooManyRunsError(f"This project already has {active} active runs (the limit is {max_active}). "
                               "Retry when one has finished.", code="too_many_active_runs")
    if await budgets.of(tenant_id):
        refusal = await budgets.refusal(tenant_id, run.thread_id, await estimate_prompt_tokens(pool, run, extra_texts))
        if refusal is not None:
            raise QuotaExceededError(refusal, code="insufficient_quota")
