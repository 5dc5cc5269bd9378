"""Scenario 6, a 60 s load test of the gateway at concurrency 64: each client alternates create-message and
list-messages (limit 20) on a thread of its own. No errors allowed. Baseline: the bare handlers doing one
INSERT and the indexed SELECT of 20 rows, same mix and concurrency, for BASELINE_S (a bare handler's rate
does not drift over a minute; the threadlog figure is the one that must hold for the whole minute).
"""

from __future__ import annotations

import msgspec

from .api import root_url, sdk
from .append import BODY
from .drive import auth_headers, baseline_server, http_load
from .env import BenchEnv, database_url, service_pids
from .loadgen import HttpResult, HttpSpec, Op
from .results import Figure, Findings

NAME = "load"
CONCURRENCY = 64
DURATION_S = 60.0
BASELINE_S = 10.0


def mixed(thread_ids: list[str], create: str, listing: str) -> list[list[Op]]:
    return [[Op("create", "POST", create.format(t), BODY), Op("list", "GET", listing.format(t))] for t in thread_ids]


def run(env: BenchEnv) -> Findings:
    found = Findings()
    with env.stack(NAME) as stack:
        client = sdk(stack)
        threads = [client.beta.threads.create().id for _ in range(CONCURRENCY)]
        env.step(f"{NAME}: threadlog, {CONCURRENCY} clients, create + list messages, {DURATION_S:.0f}s")
        clients = mixed(threads, "/v1/threads/{}/messages", "/v1/threads/{}/messages?limit=20")
        ours = http_load(HttpSpec(base=root_url(stack), headers=auth_headers(stack.api_key), concurrency=CONCURRENCY,
                                  duration_s=DURATION_S, clients=clients), service_pids(stack))
        report(env, "threadlog", ours)
        with baseline_server(database_url(stack), env.work_dir / NAME) as baseline:
            env.step(f"{NAME}: baseline handlers, same mix, {BASELINE_S:.0f}s")
            base = http_load(HttpSpec(base=baseline.url, headers=auth_headers("none"), concurrency=CONCURRENCY,
                                      duration_s=BASELINE_S, clients=mixed(threads, "/events/{}", "/messages/{}")),
                             {"baseline": baseline.pid})
            report(env, "baseline", base)
    o, b = ours.total, base.total
    params = {"concurrency": CONCURRENCY, "duration_s": DURATION_S, "baseline_duration_s": BASELINE_S,
              "mix": "create message, list 20 messages (alternating per client)"}
    name = "bare aiohttp: 1 INSERT / 1 indexed SELECT"
    extra = {"threadlog": msgspec.to_builtins(ours.by_tag), "baseline": msgspec.to_builtins(base.by_tag),
             "cpu_ms_per_request": {"threadlog": ours.cpu_ms_per_request, "baseline": base.cpu_ms_per_request},
             "errors": o.errors, "error_samples": ours.error_samples}
    found.figures += [
        Figure(scenario=NAME, name="mixed c=64 60s req/s", unit="req/s", value=o.per_s, baseline=b.per_s,
               baseline_name=name, params=params, extra=extra),
        *(Figure(scenario=NAME, name=f"mixed c=64 60s {q}", unit="ms", value=getattr(o, f"{q}_ms"),
                 baseline=getattr(b, f"{q}_ms"), baseline_name=name, better="lower", params=params)
          for q in ("p50", "p90", "p99", "max")),
        Figure(scenario=NAME, name="mixed c=64 60s errors", unit="count", value=o.errors, baseline=b.errors,
               baseline_name=name, better="lower", params=params),
    ]
    if o.errors:
        found.error = f"{o.errors} errors under load (none allowed): {ours.error_samples}"
    return found


def report(env: BenchEnv, who: str, result: HttpResult) -> None:
    t = result.total
    env.step(f"{NAME}:   {who}: {t.per_s:,.0f} req/s, p50 {t.p50_ms:.1f} ms, p90 {t.p90_ms:.1f} ms, "
             f"p99 {t.p99_ms:.1f} ms, max {t.max_ms:.0f} ms, errors {t.errors} "
             f"({', '.join(f'{k} {v.per_s:,.0f}/s' for k, v in result.by_tag.items())})")
