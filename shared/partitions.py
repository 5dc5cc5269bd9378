"""Projections partitioned by stream: several projector processes share the log, each stream's events stay in
order (a stream always falls in the same partition), and each partition keeps its own checkpoint."""

from __future__ import annotations

import zlib

BASE = "read_models"


def partition_of(stream_id: str, count: int) -> int:
    """Stable across processes and restarts (never Python's salted hash)."""
    return zlib.crc32(stream_id.encode()) % count if count > 1 else 0


def checkpoint_name(index: int, count: int) -> str:
    """`read_models` when unpartitioned, else `read_models/<index>/<count>`."""
    return BASE if count <= 1 else f"{BASE}/{index}/{count}"


def checkpoint_for(stream_id: str, count: int) -> str:
    return checkpoint_name(partition_of(stream_id, count), count)


def all_checkpoints(count: int) -> list[str]:
    return [checkpoint_name(i, count) for i in range(max(1, count))]
