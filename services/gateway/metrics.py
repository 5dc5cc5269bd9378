"""The gateway's Prometheus metrics, on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("threadlog_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("threadlog_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
        self.appends = Counter("threadlog_events_appended_total", "Events appended by this gateway",
                               registry=self.registry)
        self.conflicts = Counter("threadlog_append_conflicts_total", "Optimistic-concurrency conflicts retried",
                                 registry=self.registry)
        self.consistency_timeouts = Counter("threadlog_consistency_wait_timeouts_total",
                                            "Writes answered before the read models reached them",
                                            registry=self.registry)

    def appended(self, n: int) -> None:
        self.appends.inc(n)

    def conflicted(self) -> None:
        self.conflicts.inc()
