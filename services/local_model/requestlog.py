"""In-memory record of the requests the offline model received, for tests and benchmarks to inspect."""

from __future__ import annotations

import collections
import time
from typing import Any

import msgspec


class RequestRecord(msgspec.Struct, kw_only=True):
    seq: int
    method: str
    path: str
    # The request body as received: JSON when it parsed, else its text.
    body: Any = None
    model: str | None = None
    stream: bool = False
    status: int = 200
    # A finish reason (stop, length, tool_calls) or error, disconnected, shutdown, hang, cancelled, ok
    outcome: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Sum of the simulated delays applied, so benchmarks can subtract the model's share of latency.
    model_time_ms: float = 0.0
    received_monotonic: float
    received_wall: float
    first_token_monotonic: float | None = None
    first_token_wall: float | None = None
    finished_monotonic: float | None = None
    finished_wall: float | None = None

    def mark_first_token(self) -> None:
        if self.first_token_monotonic is None:
            self.first_token_monotonic = time.monotonic()
            self.first_token_wall = time.time()

    def finish(self, outcome: str, status: int | None = None) -> None:
        self.outcome = outcome
        if status is not None:
            self.status = status
        self.finished_monotonic = time.monotonic()
        self.finished_wall = time.time()


class RequestList(msgspec.Struct):
    data: list[RequestRecord]


class RequestLog:
    """Bounded: the oldest records drop out once `limit` is reached."""

    def __init__(self, limit: int) -> None:
        self._records: collections.deque[RequestRecord] = collections.deque(maxlen=limit)
        self._next_seq = 1

    def start(self, method: str, path: str) -> RequestRecord:
        record = RequestRecord(
            seq=self._next_seq,
            method=method,
            path=path,
            received_monotonic=time.monotonic(),
            received_wall=time.time(),
        )
        self._next_seq += 1
        self._records.append(record)
        return record

    def snapshot(self) -> RequestList:
        return RequestList(data=list(self._records))

    def clear(self) -> int:
        count = len(self._records)
        self._records.clear()
        return count
