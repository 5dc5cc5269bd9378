"""Per-key request rates: a token bucket per API key, per gateway process."""

from __future__ import annotations

import time

from shared.errors import ServiceError


class RateLimitedError(ServiceError):
    status = 429
    kind = "requests"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"Rate limit reached for this API key. Please retry after {retry_after_s:.2f}s.",
                         code="rate_limit_exceeded")
        self.retry_after_s = retry_after_s


class RateLimiter:
    """A token bucket per API key, per gateway process (the limit is per process: see the README)."""

    def __init__(self, per_s: float, burst: int) -> None:
        self._per_s = per_s
        self._burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key_id: str) -> None:
        if self._per_s <= 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(key_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._per_s)
        if tokens < 1:
            self._buckets[key_id] = (tokens, now)
            raise RateLimitedError((1 - tokens) / self._per_s)
        self._buckets[key_id] = (tokens - 1, now)
