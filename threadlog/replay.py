"""`threadlog replay`: rebuild every read model from the log while the service serves, then swap them in."""

from __future__ import annotations

import asyncio
import os
import sys
import time

from services.projector.rebuild import Progress, compare, rebuild, swap

SHADOW = "replay"


class Printer:
    """Progress on stderr, at most a few times a second: events done, events/s, time left."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, p: Progress, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < 0.5:
            return
        self._last = now
        pct = 100.0 * p.done / p.total if p.total else 100.0
        print(f"replay: {p.done:,}/{p.total:,} events ({pct:.1f}%), {p.rate:,.0f} events/s, "
              f"~{p.seconds_left:.1f}s left", file=sys.stderr, flush=True)


async def run(database_url: str, *, fresh: bool, verify: bool, do_swap: bool) -> int:
    printer = Printer()
    # The live projectors' partitioning (the same variable the services read).
    partitions = int(os.environ.get("THREADLOG_PROJECTOR_PARTITIONS", "1"))
    progress = await rebuild(database_url, SHADOW, fresh=fresh, report=printer, partitions=partitions)
    printer(progress, final=True)
    print(f"replay: rebuilt {progress.done - progress.resumed_at:,} events in {progress.elapsed:.2f}s "
          f"({progress.rate:,.0f} events/s)", file=sys.stderr)
    status = 0
    if verify:
        differences = await compare(database_url, SHADOW, partitions)
        for table, count in differences.items():
            print(f"verify: {table}: {'identical' if count == 0 else f'{count} differing rows'}")
        status = 0 if not any(differences.values()) else 1
    if do_swap and status == 0:
        cursor = await swap(database_url, SHADOW, partitions)
        print(f"replay: swapped in; read models now at position {cursor.position}", file=sys.stderr)
    return status


def main(database_url: str, *, fresh: bool, verify: bool, do_swap: bool) -> int:
    return asyncio.run(run(database_url, fresh=fresh, verify=verify, do_swap=do_swap))
