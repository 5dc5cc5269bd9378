"""Latency summaries: percentiles by the nearest-rank method, in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec


class Summary(msgspec.Struct, kw_only=True):
    count: int
    errors: int = 0
    seconds: float = 0.0
    per_s: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    mean_ms: float = 0.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(latencies_s: Sequence[float], seconds: float = 0.0, errors: int = 0) -> Summary:
    values = sorted(latencies_s)
    ms = 1000.0
    return Summary(
        count=len(values), errors=errors, seconds=round(seconds, 3),
        per_s=round(len(values) / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(percentile(values, 50) * ms, 3), p90_ms=round(percentile(values, 90) * ms, 3),
        p99_ms=round(percentile(values, 99) * ms, 3), max_ms=round((values[-1] if values else 0.0) * ms, 3),
        mean_ms=round(sum(values) / len(values) * ms, 3) if values else 0.0,
    )
