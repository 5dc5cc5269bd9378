"""python -m bench [append|runs|read|fanout|replay|load ...]: run the scenarios (default: all), print the table,
write bench/results.json."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import asyncpg

from . import append, fanout, load, read, replay, runs
from .env import BenchEnv, Progress, open_env
from .machine import LoadMeter
from .results import Findings, RunReport, ScenarioResult, machine, now_iso, table, versions, write

SCENARIOS: dict[str, Callable[[BenchEnv], Findings]] = {
    append.NAME: append.run, runs.NAME: runs.run, read.NAME: read.run, fanout.NAME: fanout.run,
    replay.NAME: replay.run, load.NAME: load.run,
}
DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"


def server_version(url: str) -> str:
    async def ask() -> str:
        conn = await asyncpg.connect(url)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(ask())


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    args = parser.parse_args()
    chosen = args.scenarios or list(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    progress = Progress()
    report = RunReport(started_at=now_iso(), machine=machine())
    failed = False
    with open_env(progress) as env:
        report.versions = versions(server_version(env.database_url))
        for name in chosen:
            progress(f"=== {name} ===")
            started = time.monotonic()
            meter = LoadMeter(env.process_roots())
            result = ScenarioResult(name=name, wall_s=0.0, figures=[])
            try:
                found = SCENARIOS[name](env)
                result.figures, result.notes, result.error = found.figures, found.notes, found.error
                failed = failed or found.error is not None
            except Exception as e:  # one scenario failing must not lose the others' figures
                failed = True
                result.error = f"{e.__class__.__name__}: {e}"
                traceback.print_exc()
            result.wall_s = round(time.monotonic() - started, 1)
            result.load = meter.stop()
            report.scenarios.append(result)
            progress(f"=== {name} done in {result.wall_s:.0f}s ===")
    report.finished_at = now_iso()
    report.wall_s = round(time.monotonic() - progress.started, 1)
    write(report, args.out)
    print()
    print(table(report))
    print(f"\nwall time {report.wall_s:.0f}s ({', '.join(f'{s.name} {s.wall_s:.0f}s' for s in report.scenarios)});"
          f" results in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
