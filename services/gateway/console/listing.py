"""Thread summaries for the console: one page of threads, newest first, with what a support person scans for.

Everything is computed over the read models (`threads`, `messages`, `runs`, `run_usage`) in one round trip.
SQL is assembled only from the constant fragments below; every value travels as a $n parameter.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from shared.errors import InvalidRequestError

from ..queries import Params

RUN_STATUSES = ("queued", "in_progress", "requires_action", "cancelling", "cancelled", "failed", "completed",
                "incomplete", "expired")
# "none": threads that never had a run, which is its own kind of complaint ("nothing answered me").
STATUS_FILTERS = (*RUN_STATUSES, "none")
MAX_QUERY_CHARS = 200


class ThreadFilter(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str | None  # None: an admin key, every project
    metadata: dict[str, str] = {}
    text: str | None = None
    status: str | None = None
    created_after: int | None = None
    created_before: int | None = None
    thread_id: str | None = None  # one thread (its page's summary)


class LastRun(msgspec.Struct, frozen=True):
    id: str
    status: str


class ThreadSummary(msgspec.Struct, frozen=True, kw_only=True):
    object: str = "console.thread"
    id: str
    project_id: str
    created_at: int
    metadata: dict[str, str]
    message_count: int
    run_count: int
    total_tokens: int
    last_activity_at: int
    last_run: LastRun | None


class SummaryPage(msgspec.Struct, frozen=True):
    data: list[ThreadSummary]
    first_id: str | None
    last_id: str | None
    has_more: bool
    object: str = "list"


def check_filter(f: ThreadFilter) -> ThreadFilter:
    if f.status is not None and f.status not in STATUS_FILTERS:
        raise InvalidRequestError(f"Invalid 'status': expected one of {list(STATUS_FILTERS)}.", param="status",
                                  code="invalid_value")
    if f.text is not None and len(f.text) > MAX_QUERY_CHARS:
        raise InvalidRequestError(f"Invalid 'q': at most {MAX_QUERY_CHARS} characters.", param="q",
                                  code="string_above_max_length")
    return f


def like_pattern(text: str) -> str:
    """A substring pattern for ILIKE in which the user's own % and _ mean themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# Each timestamp column a message or run body can carry; GREATEST skips the NULLs (not yet happened).
_LAST_MESSAGE = """(SELECT max(GREATEST((m.body->>'created_at')::bigint, (m.body->>'completed_at')::bigint,
                                (m.body->>'incomplete_at')::bigint))
                    FROM messages m WHERE m.thread_id = t.thread_id)"""
_LAST_RUN = """(SELECT max(GREATEST((r.body->>'created_at')::bigint, (r.body->>'started_at')::bigint,
                            (r.body->>'completed_at')::bigint, (r.body->>'cancelled_at')::bigint,
                            (r.body->>'failed_at')::bigint))
                FROM runs r WHERE r.thread_id = t.thread_id)"""
_SELECT = f"""
SELECT t.thread_id, t.tenant_id, t.created_at, t.metadata::text,
       (SELECT count(*) FROM messages m WHERE m.thread_id = t.thread_id) AS message_count,
       (SELECT count(*) FROM runs r WHERE r.thread_id = t.thread_id) AS run_count,
       (SELECT coalesce(sum(u.total_tokens), 0) FROM run_usage u WHERE u.thread_id = t.thread_id) AS total_tokens,
       GREATEST(t.created_at, {_LAST_MESSAGE}, {_LAST_RUN}) AS last_activity_at,
       last.run_id, last.status
FROM threads t
LEFT JOIN LATERAL (SELECT r.run_id, r.status FROM runs r WHERE r.thread_id = t.thread_id
                   ORDER BY r.seq DESC LIMIT 1) last ON true
"""  # noqa: S608 (constant fragments only)
# Text search looks into every text block of every message of the thread (and matches a pasted thread id).
_TEXT = """({0} = t.thread_id OR EXISTS (
    SELECT 1 FROM messages m, jsonb_array_elements(m.body->'content') c
    WHERE m.thread_id = t.thread_id AND c->'text'->>'value' ILIKE {1} ESCAPE '\\'))"""


def _conditions(f: ThreadFilter, p: Params, after: str | None) -> list[str]:
    out: list[str] = []
    tenant = p.add(f.tenant_id) if f.tenant_id is not None else None
    if tenant is not None:
        out.append(f"t.tenant_id = {tenant}")
    if f.thread_id is not None:
        out.append(f"t.thread_id = {p.add(f.thread_id)}")
    if f.metadata:
        out.append(f"t.metadata @> {p.add(msgspec.json.encode(f.metadata).decode())}::jsonb")
    if f.created_after is not None:
        out.append(f"t.created_at >= {p.add(f.created_after)}")
    if f.created_before is not None:
        out.append(f"t.created_at < {p.add(f.created_before)}")
    if f.text:
        out.append(_TEXT.format(p.add(f.text.strip()), p.add(like_pattern(f.text.strip()))))
    if f.status == "none":
        out.append("last.status IS NULL")
    elif f.status is not None:
        out.append(f"last.status = {p.add(f.status)}")
    if after is not None:
        scope = f" AND tenant_id = {tenant}" if tenant is not None else ""
        cursor = f"(SELECT position FROM threads WHERE thread_id = {p.add(after)}{scope})"  # noqa: S608 ($n only)
        out.append(f"t.position < {cursor}")
    return out


def _summary(row: Any) -> ThreadSummary:
    last = LastRun(row["run_id"], row["status"]) if row["run_id"] is not None else None
    return ThreadSummary(id=row["thread_id"], project_id=row["tenant_id"], created_at=row["created_at"],
                         metadata=msgspec.json.decode(row["metadata"]), message_count=row["message_count"],
                         run_count=row["run_count"], total_tokens=int(row["total_tokens"]),
                         last_activity_at=int(row["last_activity_at"]), last_run=last)


async def summaries(pool: asyncpg.Pool, f: ThreadFilter, *, limit: int, after: str | None) -> SummaryPage:
    """Newest first (log position), `limit` threads after the cursor thread."""
    p = Params(limit + 1)
    conditions = _conditions(f, p, after)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = await pool.fetch(f"{_SELECT}{where} ORDER BY t.position DESC LIMIT $1", *p.values)
    data = [_summary(r) for r in rows[:limit]]
    return SummaryPage(data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None,
                       has_more=len(rows) > limit)


async def summary(pool: asyncpg.Pool, thread_id: str, tenant_id: str | None) -> ThreadSummary | None:
    page = await summaries(pool, ThreadFilter(tenant_id=tenant_id, thread_id=thread_id), limit=1, after=None)
    return page.data[0] if page.data else None
