"""What else the machine was doing: load average and busy share of all CPUs, and CPU time per process."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and of its children it has reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), sum(int(v) for v in fields[11:15]) / TICK


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds used so far by `roots` and every descendant, reaped ones included (via their parents)."""
    table = {int(pid): stat for pid in os.listdir("/proc") if pid.isdigit() and (stat := _stat(pid)) is not None}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0.0, [r for r in roots if r in table], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += table[pid][1]
        todo.extend(children.get(pid, []))
    return total


def _busy_idle() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values[:8]) - idle, idle


class Load(msgspec.Struct, kw_only=True):
    loadavg_1m_start: float
    loadavg_1m_end: float = 0.0
    busy_share: float = 0.0  # of all CPUs, by everything on the machine, over the interval
    others_share: float = 0.0  # of all CPUs, by processes that are not the benchmark's (other people's work)


class LoadMeter:
    """How busy the machine was, and how much of that was not us (`roots`: our process trees)."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.load = Load(loadavg_1m_start=round(os.getloadavg()[0], 2))
        self._start = _busy_idle()
        self._ours = tree_cpu(roots)

    def stop(self) -> Load:
        busy, idle = _busy_idle()
        d_busy, d_idle = busy - self._start[0], idle - self._start[1]
        ours = (tree_cpu(self.roots) - self._ours) * TICK
        self.load.loadavg_1m_end = round(os.getloadavg()[0], 2)
        if d_busy + d_idle:
            self.load.busy_share = round(d_busy / (d_busy + d_idle), 3)
            self.load.others_share = round(max(0.0, d_busy - ours) / (d_busy + d_idle), 3)
        return self.load


class CpuMeter:
    """CPU seconds spent by named processes between start() and stop()."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def stop(self) -> dict[str, float]:
        return {name: round(cpu_seconds(pid) - self._start[name], 3) for name, pid in self.pids.items()}
