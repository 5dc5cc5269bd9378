"""Checks one thread's events against the tamper-evident hash chain (see shared/chain.py).

`threadlog audit verify` walks the whole chain; a support person wants the answer for the thread on screen. For
each of the thread's events that the sealer has reached, the stored payload hash must match the payload (unless
the payload was redacted by an erasure) and the chain hash must be link(previous chain hash, event hash). Events
the sealer has not reached yet are counted, not blamed, unless the sealer's checkpoint is already past them.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from shared.chain import GENESIS, Problem, event_hash, link, payload_hash

BATCH = 1000
_EVENTS = """
SELECT e.position, e.txid, e.stream_id, e.stream_version, e.event_id, e.event_type, e.schema_version, e.tenant_id,
       e.recorded_at, e.correlation_id, e.causation_id, e.payload, e.redacted,
       c.seq, c.payload_hash, c.chain_hash, prev.seq AS previous_seq, prev.chain_hash AS previous_hash
FROM events e
LEFT JOIN event_chain c ON c.position = e.position
LEFT JOIN event_chain prev ON prev.seq = c.seq - 1
WHERE e.stream_id = $1 AND e.stream_version > $2
ORDER BY e.stream_version LIMIT $3
"""


class ChainCheck(msgspec.Struct, kw_only=True):
    object: str = "console.chain_check"
    thread_id: str
    ok: bool = True
    events: int = 0
    sealed: int = 0
    unsealed: int = 0  # not reached by the sealer yet: normal for events a second or two old
    head_seq: int | None = None  # the thread's last sealed event in the global chain
    head_hash: str | None = None
    problems: list[Problem] = msgspec.field(default_factory=list)


def _check_sealed(row: Any, erased: bool, out: ChainCheck) -> None:
    seq, position = row["seq"], row["position"]
    stored_payload_hash = bytes(row["payload_hash"])
    if row["redacted"]:
        if not erased:
            out.problems.append(Problem(position=position, seq=seq, kind="bad_redaction",
                                        detail="payload marked redacted with no erasure recorded"))
    elif payload_hash(bytes(row["payload"])) != stored_payload_hash:
        out.problems.append(Problem(position=position, seq=seq, kind="payload_changed",
                                    detail=f"the payload at position {position} was changed"))
    if seq == 1:
        previous = GENESIS
    elif row["previous_seq"] is None:
        out.problems.append(Problem(position=position, seq=seq, kind="chain_gap",
                                    detail=f"chain row {seq - 1} (before this event's) is missing"))
        return
    else:
        previous = bytes(row["previous_hash"])
    if link(previous, event_hash(row, stored_payload_hash)) != bytes(row["chain_hash"]):
        out.problems.append(Problem(position=position, seq=seq, kind="envelope_changed",
                                    detail=f"the event or chain row at position {position} was changed"))


async def check_thread(pool: asyncpg.Pool, thread_id: str) -> ChainCheck:
    out = ChainCheck(thread_id=thread_id)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        sealed_to = await conn.fetchrow("SELECT txid, position FROM checkpoints WHERE name = 'audit_chain'")
        erased = bool(await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = $1 AND event_type = 'thread.erased'"
            " AND NOT redacted)", thread_id))
        version = 0
        while True:
            rows = await conn.fetch(_EVENTS, thread_id, version, BATCH)
            for row in rows:
                if row["stream_version"] != version + 1:
                    out.problems.append(Problem(
                        position=row["position"], seq=row["seq"] or 0, kind="event_missing",
                        detail=f"stream versions {version + 1}..{row['stream_version'] - 1} of the thread are gone"))
                version = row["stream_version"]
                out.events += 1
                if row["seq"] is not None:
                    out.sealed += 1
                    out.head_seq, out.head_hash = row["seq"], bytes(row["chain_hash"]).hex()
                    _check_sealed(row, erased, out)
                elif sealed_to is not None and (row["txid"], row["position"]) <= (sealed_to[0], sealed_to[1]):
                    out.problems.append(Problem(position=row["position"], seq=0, kind="unsealed_event",
                                                detail=f"the event at position {row['position']} is inside the "
                                                       "sealed range but not in the chain (inserted afterwards)"))
                else:
                    out.unsealed += 1
            if len(rows) < BATCH:
                break
    out.ok = not out.problems
    return out
