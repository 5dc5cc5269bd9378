"""The tamper-evident hash chain over the log: hashing, and verifying a stored chain against the events.

Each event's hash covers its envelope and the SHA-256 of its payload; the chain hash covers the previous chain
hash and that. The payload hash is stored with the chain, so an erased (redacted) payload still verifies:
the chain proves what was there and when, without keeping what it said.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable

import asyncpg
import msgspec

GENESIS = bytes(32)
_ENCODER = msgspec.json.Encoder()


class Problem(msgspec.Struct, frozen=True):
    position: int
    seq: int
    kind: str  # payload_changed | envelope_changed | event_missing | chain_gap | unsealed_event | bad_redaction
    detail: str


class Report(msgspec.Struct):
    checked: int = 0
    head_seq: int = 0
    head_position: int = 0
    head_hash: str = ""
    problems: list[Problem] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def payload_hash(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()


def event_hash(row: asyncpg.Record | dict[str, object], payload_digest: bytes) -> bytes:
    """The envelope (every column but the payload) and the payload's hash, in a fixed encoding."""
    envelope = [
        row["position"], row["stream_id"], row["stream_version"], str(row["event_id"]), row["event_type"],
        row["schema_version"], row["tenant_id"], row["recorded_at"].isoformat(),  # type: ignore[union-attr]
        str(row["correlation_id"]) if row["correlation_id"] else None,
        str(row["causation_id"]) if row["causation_id"] else None,
        payload_digest.hex(),
    ]
    return hashlib.sha256(_ENCODER.encode(envelope)).digest()


def link(previous: bytes, event_digest: bytes) -> bytes:
    return hashlib.sha256(previous + event_digest).digest()


_CHAIN = """
SELECT c.seq, c.position AS chain_position, c.payload_hash, c.chain_hash, e.position, e.stream_id, e.stream_version,
       e.event_id, e.event_type, e.schema_version, e.tenant_id, e.recorded_at, e.correlation_id, e.causation_id,
       e.payload, e.redacted
FROM event_chain c LEFT JOIN events e ON e.position = c.position
WHERE c.seq > $1 ORDER BY c.seq LIMIT $2
"""


async def _chain_rows(conn: asyncpg.Connection, batch: int) -> AsyncIterator[asyncpg.Record]:
    after = 0
    while True:
        rows = await conn.fetch(_CHAIN, after, batch)
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = rows[-1]["seq"]


async def verify(conn: asyncpg.Connection, *, batch: int = 10_000,
                 progress: Callable[[int], None] | None = None) -> Report:
    """Walk the whole chain: every event present and unchanged, links intact, no event slipped in unsealed."""
    report = Report()
    erased_streams = {r[0] for r in await conn.fetch(
        "SELECT DISTINCT stream_id FROM events WHERE event_type = 'thread.erased' AND NOT redacted")}
    previous, expected_seq = GENESIS, 1
    async for row in _chain_rows(conn, batch):
        seq, position = row["seq"], row["chain_position"]
        if seq != expected_seq:
            report.problems.append(Problem(position=position, seq=seq, kind="chain_gap",
                                           detail=f"chain rows {expected_seq}..{seq - 1} are missing"))
        expected_seq = seq + 1
        stored_payload_hash = bytes(row["payload_hash"])
        if row["position"] is None:
            report.problems.append(Problem(position=position, seq=seq, kind="event_missing",
                                           detail=f"the event at position {position} was deleted"))
        else:
            if row["redacted"]:
                if row["stream_id"] not in erased_streams:
                    report.problems.append(Problem(position=position, seq=seq, kind="bad_redaction",
                                                   detail="payload marked redacted with no erasure recorded"))
            elif payload_hash(bytes(row["payload"])) != stored_payload_hash:
                report.problems.append(Problem(position=position, seq=seq, kind="payload_changed",
                                               detail=f"the payload at position {position} was changed"))
            if link(previous, event_hash(row, stored_payload_hash)) != bytes(row["chain_hash"]):
                report.problems.append(Problem(position=position, seq=seq, kind="envelope_changed",
                                               detail=f"the event or chain row at position {position} was changed"))
        previous = bytes(row["chain_hash"])
        report.checked += 1
        report.head_seq, report.head_position, report.head_hash = seq, position, previous.hex()
        if progress and report.checked % batch == 0:
            progress(report.checked)
    sealed = await conn.fetchrow("SELECT txid, position FROM checkpoints WHERE name = 'audit_chain'")
    if sealed is not None:
        for r in await conn.fetch(
                "SELECT e.position FROM events e LEFT JOIN event_chain c ON c.position = e.position"
                " WHERE c.position IS NULL AND (e.txid, e.position) <= ($1, $2) ORDER BY e.position LIMIT 100",
                sealed[0], sealed[1]):
            report.problems.append(Problem(position=r[0], seq=0, kind="unsealed_event",
                                           detail=f"an event at position {r[0]} is inside the sealed range but "
                                                  "not in the chain (inserted afterwards)"))
    report.problems.sort(key=lambda p: (p.position, p.kind))
    return report
