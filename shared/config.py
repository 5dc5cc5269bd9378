"""Settings read once from the environment by each service's entry point and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from shared.errors import ConfigError


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str
    nats_url: str
    # Namespaces the JetStream streams, consumers and subjects, so several stacks can share one NATS.
    nats_prefix: str = "threadlog"
    host: str = "127.0.0.1"
    port: int = 8080
    # Where the projector and run-worker serve /healthz and /metrics (0 picks a free port).
    projector_port: int = 8091
    worker_port: int = 8092
    api_key: str | None = None
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    db_pool_size: int = 10
    # Bound on how long a write waits for the read models to reach it (read-your-writes).
    consistency_wait_ms: int = 5000
    # Run lease: a worker that stops heart-beating loses its run after this long.
    run_lease_ms: int = 10000
    # A run not finished by then (or still waiting for tool outputs) ends `expired`, as on the hosted API.
    run_expires_s: int = 600
    # Sent as `openai-poll-after-ms` on run reads: how often the SDK's poll helpers ask again.
    poll_after_ms: int = 200
    # Runs one worker process carries out at the same time.
    worker_concurrency: int = 32
    # Requests per second (and burst) one API key may make on one gateway process; 0 turns the limit off.
    rate_limit_per_s: float = 500.0
    rate_limit_burst: int = 1000
    # Runs a project may have queued or in progress at once (429 beyond).
    max_active_runs: int = 100
    # The model's context window, for Responses truncation ("auto" drops the oldest turns beyond it).
    context_tokens: int = 128_000
    # Origins allowed to call the API from a browser ("*" or comma-separated); empty: CORS off.
    cors_origins: str = ""
    log_level: str = "INFO"
    # Projector partitions (by stream), and the one this projector process prefers to lead.
    projector_partitions: int = 1
    projector_partition: int = 0
    # JetStream for a cluster: stream replicas; the run consumer's redelivery bound (-1: never give up).
    nats_replicas: int = 1
    worker_max_deliver: int = -1
    # Advisory-lock leader election needs session locks: behind a transaction pooler, point this at the
    # database directly (defaults to DATABASE_URL).
    leader_database_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """Build settings from THREADLOG_* variables plus the conventional DATABASE_URL, NATS_URL, OPENAI_*."""
        raw: dict[str, str] = {
            k.removeprefix("THREADLOG_").lower(): v for k, v in env.items() if k.startswith("THREADLOG_")
        }
        for name in ("DATABASE_URL", "NATS_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
            if env.get(name):
                raw[name.lower()] = env[name]
        known = set(cls.__struct_fields__)
        try:
            return msgspec.convert({k: v for k, v in raw.items() if k in known}, cls, strict=False)
        except msgspec.ValidationError as e:
            raise ConfigError(f"invalid configuration: {e}") from None
