"""Scenario 1, the append path: POST /v1/threads/{id}/messages at concurrency 1, 16 and 64 (one thread per
client), against a bare aiohttp handler doing one autocommit INSERT on the same PostgreSQL."""

from __future__ import annotations

from typing import Any

import msgspec

from .api import root_url, sdk
from .drive import auth_headers, baseline_server, http_load
from .env import BenchEnv, database_url, service_pids
from .loadgen import HttpResult, HttpSpec, Op
from .results import Figure, Findings

NAME = "append"
CONCURRENCIES = (1, 16, 64)
DURATION_S = 8.0
# What the SDK sends for client.beta.threads.messages.create(thread_id, role="user", content=...).
BODY = msgspec.json.encode({"role": "user", "content": "Hello from the benchmark: a short user message."}).decode()


def threadlog_spec(base: str, api_key: str, threads: list[str], concurrency: int, duration_s: float) -> HttpSpec:
    clients = [[Op("create", "POST", f"/v1/threads/{t}/messages", BODY)] for t in threads[:concurrency]]
    return HttpSpec(base=base, headers=auth_headers(api_key), concurrency=concurrency, duration_s=duration_s,
                    clients=clients)


def baseline_spec(base: str, concurrency: int, duration_s: float) -> HttpSpec:
    clients = [[Op("create", "POST", f"/events/stream-{i}", BODY)] for i in range(concurrency)]
    return HttpSpec(base=base, headers=auth_headers("none"), concurrency=concurrency, duration_s=duration_s,
                    clients=clients)


def figures(scenario: str, label: str, ours: HttpResult, base: HttpResult, params: dict[str, Any]) -> list[Figure]:
    o, b = ours.total, base.total
    extra = {"threadlog": msgspec.to_builtins(o), "baseline": msgspec.to_builtins(b),
             "errors": ours.error_samples + base.error_samples,
             "cpu_ms_per_request": {"threadlog": ours.cpu_ms_per_request, "baseline": base.cpu_ms_per_request}}
    name = "bare aiohttp + 1 asyncpg INSERT"
    cpu = Figure(scenario=scenario, name=f"{label} CPU per request", unit="ms", better="lower",
                 value=round(sum(ours.cpu_ms_per_request.values()), 3),
                 baseline=round(sum(base.cpu_ms_per_request.values()), 3),
                 baseline_name="baseline server process (PostgreSQL excluded on both sides)", params=params,
                 extra={"threadlog": ours.cpu_ms_per_request})
    return [
        Figure(scenario=scenario, name=f"{label} req/s", unit="req/s", value=o.per_s, baseline=b.per_s,
               baseline_name=name, params=params, extra=extra),
        Figure(scenario=scenario, name=f"{label} p50", unit="ms", value=o.p50_ms, baseline=b.p50_ms,
               baseline_name=name, better="lower", params=params),
        Figure(scenario=scenario, name=f"{label} p99", unit="ms", value=o.p99_ms, baseline=b.p99_ms,
               baseline_name=name, better="lower", params=params),
        cpu,
    ]


def run(env: BenchEnv) -> Findings:
    found = Findings()
    with env.stack(NAME) as stack:
        client = sdk(stack)
        threads = [client.beta.threads.create().id for _ in range(max(CONCURRENCIES))]
        with baseline_server(database_url(stack), env.work_dir / NAME) as baseline:
            for c in CONCURRENCIES:
                env.step(f"{NAME}: threadlog create-message, concurrency {c}, {DURATION_S:.0f}s")
                ours = http_load(threadlog_spec(root_url(stack), stack.api_key, threads, c, DURATION_S),
                                 service_pids(stack))
                env.step(f"{NAME}:   {ours.total.per_s:,.0f} req/s, p50 {ours.total.p50_ms:.1f} ms, "
                         f"p99 {ours.total.p99_ms:.1f} ms, errors {ours.total.errors}")
                env.step(f"{NAME}: baseline INSERT handler, concurrency {c}, {DURATION_S:.0f}s")
                base = http_load(baseline_spec(baseline.url, c, DURATION_S), {"baseline": baseline.pid})
                env.step(f"{NAME}:   {base.total.per_s:,.0f} req/s, p50 {base.total.p50_ms:.1f} ms, "
                         f"p99 {base.total.p99_ms:.1f} ms, errors {base.total.errors}")
                params = {"concurrency": c, "duration_s": DURATION_S, "threads": c, "body_bytes": len(BODY)}
                found.figures += figures(NAME, f"create message c={c}", ours, base, params)
                if ours.total.errors or base.total.errors:
                    found.notes.append(f"c={c}: errors threadlog {ours.total.errors}, baseline "
                                       f"{base.total.errors}: {ours.error_samples + base.error_samples}")
    return found
