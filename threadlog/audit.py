"""`threadlog audit`: export events as JSON Lines, and verify the tamper-evident chain."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from typing import IO, Any

import asyncpg
import msgspec

from shared.chain import Problem, Report, verify


class Filters(msgspec.Struct, frozen=True):
    thread: str | None = None
    run: str | None = None
    tenant: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _where(f: Filters) -> tuple[str, list[Any]]:
    conditions, values = [], []

    def add(fragment: str, value: Any) -> None:
        values.append(value)
        conditions.append(fragment.format(f"${len(values)}"))

    if f.thread:
        add("stream_id = {}", f.thread)
    if f.run:
        # A run's events carry its id in the payload (they live in the thread's stream).
        add("convert_from(payload, 'UTF8')::jsonb ->> 'run_id' = {}", f.run)
    if f.tenant:
        add("tenant_id = {}", f.tenant)
    if f.since:
        add("recorded_at >= {}", f.since)
    if f.until:
        add("recorded_at < {}", f.until)
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", values


async def export(conn: asyncpg.Connection, filters: Filters, out: IO[bytes], batch: int = 5000) -> int:
    """Write the matching events, in log order, one JSON object per line; returns how many."""
    where, values = _where(filters)
    encoder = msgspec.json.Encoder()
    count, after = 0, 0
    position_filter = f"{' AND' if where else ' WHERE'} position > ${len(values) + 1}"
    sql = (f"SELECT position, stream_id, stream_version, event_id, event_type, schema_version, recorded_at,"  # noqa: S608
           f" correlation_id, causation_id, tenant_id, redacted, payload FROM events{where}{position_filter}"
           f" ORDER BY position LIMIT {batch}")
    while True:
        rows = await conn.fetch(sql, *values, after)
        for r in rows:
            line = {
                "position": r[0], "stream_id": r[1], "stream_version": r[2], "event_id": str(r[3]), "type": r[4],
                "schema_version": r[5], "recorded_at": r[6].isoformat(),
                "correlation_id": str(r[7]) if r[7] else None, "causation_id": str(r[8]) if r[8] else None,
                "tenant_id": r[9], "redacted": r[10], "payload": msgspec.Raw(bytes(r[11])),
            }
            out.write(encoder.encode(line) + b"\n")
        count += len(rows)
        if len(rows) < batch:
            return count
        after = rows[-1][0]


async def run_verify(database_url: str, expect_head: str | None) -> Report:
    conn = await asyncpg.connect(database_url)
    try:
        def progress(n: int) -> None:
            print(f"audit verify: {n:,} events checked", file=sys.stderr, flush=True)

        report = await verify(conn, progress=progress)
    finally:
        await conn.close()
    if expect_head:
        seq, _, digest = expect_head.partition(":")
        conn = await asyncpg.connect(database_url)
        try:
            stored = await conn.fetchval("SELECT chain_hash FROM event_chain WHERE seq = $1", int(seq))
        finally:
            await conn.close()
        if stored is None or bytes(stored).hex() != digest:
            report.problems.append(Problem(position=0, seq=int(seq), kind="head_mismatch",
                                           detail=f"chain hash at seq {seq} differs from the one recorded outside"))
    return report


async def head(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT seq, position, chain_hash FROM event_chain ORDER BY seq DESC LIMIT 1")
    finally:
        await conn.close()
    return "0:" + "00" * 32 if row is None else f"{row[0]}:{bytes(row[2]).hex()}"


def main_export(database_url: str, filters: Filters, output: str | None) -> int:
    async def go(out: IO[bytes]) -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return await export(conn, filters, out)
        finally:
            await conn.close()

    if output:
        with open(output, "wb") as f:
            count = asyncio.run(go(f))
    else:
        count = asyncio.run(go(sys.stdout.buffer))
    print(f"audit export: {count:,} events", file=sys.stderr)
    return 0


def main_verify(database_url: str, expect_head: str | None) -> int:
    report = asyncio.run(run_verify(database_url, expect_head))
    for p in report.problems:
        print(f"PROBLEM {p.kind} at position {p.position} (chain seq {p.seq}): {p.detail}")
    print(f"audit verify: {report.checked:,} events checked, head {report.head_seq}:{report.head_hash}, "
          f"{'OK' if report.ok else f'{len(report.problems)} problem(s)'}")
    return 0 if report.ok else 1
