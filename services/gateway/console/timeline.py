"""A thread as a person reads it: messages, runs (with their steps), responses and tool calls, in stream order.

The public API lists these separately, and their `created_at` (whole seconds) cannot say whether a user's
message came before or after a run started in the same second. The read models keep the stream version that
created each row (`seq`; items keep version * 1000 + index), which is the exact order, so the console reads
them here in one snapshot and one round trip.

Threads driven by the Assistants API carry their tool calls in run steps; conversations driven by the Responses
API carry them as conversation items, so items are included only when no run step already shows that call.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import asyncpg
import msgspec

from .listing import ThreadSummary

# A console page, not an export: a very long thread shows its latest turns and says that it is cut.
LIMIT = 500

_MESSAGES = "SELECT seq, 0 AS sub, body::text FROM messages WHERE thread_id = $1 ORDER BY seq DESC LIMIT $2"
_RUNS = "SELECT seq, 0 AS sub, run_id, body::text FROM runs WHERE thread_id = $1 ORDER BY seq DESC LIMIT $2"
# responses.position is the log position of its response.created event: the stream version comes from there.
_RESPONSES = """SELECT e.stream_version AS seq, 0 AS sub, r.body::text FROM responses r
JOIN events e ON e.position = r.position WHERE r.thread_id = $1 ORDER BY r.position DESC LIMIT $2"""
# items.seq is stream version * 1000 + the item's index within its event.
_TOOL_ITEMS = """SELECT i.seq / 1000 AS seq, i.seq % 1000 AS sub, i.body::text FROM items i
WHERE i.thread_id = $1 AND i.body->>'type' IN ('function_call', 'function_call_output')
  AND NOT EXISTS (SELECT 1 FROM run_steps s WHERE s.thread_id = i.thread_id
                  AND s.body->'step_details'->'tool_calls' @> jsonb_build_array(
                      jsonb_build_object('id', i.body->>'call_id')))
ORDER BY i.seq DESC LIMIT $2"""


class MessageEntry(msgspec.Struct, frozen=True, tag="message", tag_field="kind"):
    seq: int
    message: msgspec.Raw


class RunEntry(msgspec.Struct, frozen=True, tag="run", tag_field="kind"):
    seq: int
    run: msgspec.Raw
    steps: list[msgspec.Raw]


class ResponseEntry(msgspec.Struct, frozen=True, tag="response", tag_field="kind"):
    seq: int
    response: msgspec.Raw


class ItemEntry(msgspec.Struct, frozen=True, tag="item", tag_field="kind"):
    seq: int
    item: msgspec.Raw


Entry = MessageEntry | RunEntry | ResponseEntry | ItemEntry


class Timeline(msgspec.Struct, frozen=True):
    thread: msgspec.Raw
    summary: ThreadSummary
    entries: list[Entry]
    truncated: bool
    object: str = "console.thread_timeline"


def _raw(text: str) -> msgspec.Raw:
    return msgspec.Raw(text.encode())


def _kept(rows: list[Any]) -> tuple[list[Any], tuple[int, int] | None]:
    """The newest LIMIT rows, and (when there were more) the oldest place they reach back to."""
    if len(rows) <= LIMIT:
        return rows, None
    return rows[:LIMIT], (rows[LIMIT - 1]["seq"], rows[LIMIT - 1]["sub"])


async def timeline(pool: asyncpg.Pool, thread: bytes, summary: ThreadSummary) -> Timeline:
    thread_id = summary.id
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        # One snapshot: a run and the steps read for it agree even while the projector applies more.
        fetched = [await conn.fetch(q, thread_id, LIMIT + 1) for q in (_MESSAGES, _RUNS, _RESPONSES, _TOOL_ITEMS)]
        (messages, m_cut), (runs, r_cut), (responses, p_cut), (items, i_cut) = (_kept(rows) for rows in fetched)
        steps = await conn.fetch(
            "SELECT run_id, body::text FROM run_steps WHERE thread_id = $1 AND run_id = ANY($2::text[])"
            " ORDER BY run_id, seq", thread_id, [r["run_id"] for r in runs])
    steps_of: dict[str, list[msgspec.Raw]] = defaultdict(list)
    for s in steps:
        steps_of[s["run_id"]].append(_raw(s["body"]))
    placed: list[tuple[tuple[int, int], Entry]] = []
    placed += [((m["seq"], 0), MessageEntry(seq=m["seq"], message=_raw(m["body"]))) for m in messages]
    placed += [((r["seq"], 0), RunEntry(seq=r["seq"], run=_raw(r["body"]), steps=steps_of[r["run_id"]]))
               for r in runs]
    placed += [((p["seq"], 0), ResponseEntry(seq=p["seq"], response=_raw(p["body"]))) for p in responses]
    placed += [((i["seq"], i["sub"]), ItemEntry(seq=i["seq"], item=_raw(i["body"]))) for i in items]
    placed.sort(key=lambda pair: pair[0])
    cuts = [c for c in (m_cut, r_cut, p_cut, i_cut) if c is not None]
    if cuts:
        # Keep one contiguous stretch: nothing older than where the first cut-off list stops.
        start = max(cuts)
        placed = [pair for pair in placed if pair[0] >= start]
    return Timeline(thread=msgspec.Raw(thread), summary=summary, entries=[e for _, e in placed],
                    truncated=bool(cuts))
