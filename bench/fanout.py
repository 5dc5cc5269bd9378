"""Scenario 4, fan-out: SSE events/s delivered to 1, 100 and 1,000 clients attached to one run's stream
(`GET /v1/threads/{tid}/runs/{rid}/stream`), live and replayed, against the bare aiohttp SSE handler.

Live: the run first calls a `wait` tool, so it pauses in `requires_action`; every client attaches (and has read
up to that event), then the tool output is submitted and the model's second answer streams ~205 token deltas
at 5 ms each (`+delay5`). Figure: events delivered after the submission / time until the last client's stream
ended. Replay: the same clients attach to the finished run. Baseline: 1,000 small events per connection from
a bare handler (shared/baselines.md), at the same client counts.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import openai

from threadlog.stack import Stack

from .api import model_requests, root_url, sdk, words
from .drive import SseLoad, auth_headers, baseline_server, sse_load
from .env import BenchEnv, database_url
from .loadgen import SseResult, SseSpec
from .results import Figure, Findings

NAME = "fanout"
CLIENTS = (1, 100, 1000)
MODEL = "threadlog-offline+delay5"
ANSWER_WORDS = 200
BASELINE_EVENTS = 1000
# A stuck stream fails its client, not the benchmark (timeout_s: also the longest silence a client waits out).
LIVE_LIMITS_S = (30.0, 40.0)  # (attach_timeout_s, timeout_s)
REPLAY_LIMITS_S = (45.0, 45.0)


def spec(urls: list[str], headers: dict[str, str], n: int, limits: tuple[float, float],
         marker: str = "\n\n", rounds: int = 1) -> SseSpec:
    return SseSpec(urls=urls, headers=headers, clients=n, attached_marker=marker, attach_timeout_s=limits[0],
                   timeout_s=limits[1], rounds=rounds)


def rounds(n: int) -> int:
    """Streams read in a row per client when replaying: at least ~100 streams per measurement."""
    return max(1, 100 // n)
WAIT_TOOL: Any = {"type": "function", "function": {"name": "wait", "description": "Wait for the benchmark",
                                                     "parameters": {"type": "object", "properties": {}}}}


def paused_run(client: openai.OpenAI, assistant_id: str) -> tuple[str, str, str]:
    """A run waiting for the `wait` tool's output: (thread id, run id, tool call id)."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "call wait {}"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id)
    deadline = time.monotonic() + 60
    while run.status != "requires_action":
        if run.status in ("completed", "failed", "cancelled", "expired", "incomplete") or time.monotonic() > deadline:
            raise RuntimeError(f"run {run.id} is {run.status}, not requires_action")
        time.sleep(0.02)
        run = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert run.required_action is not None
    return thread.id, run.id, run.required_action.submit_tool_outputs.tool_calls[0].id


def live(env: BenchEnv, stack: Stack, client: openai.OpenAI, assistant_id: str, n: int) -> tuple[SseResult, float, str]:
    """Returns the result, the submission's wall time and the stream's URL."""
    thread_id, run_id, call_id = paused_run(client, assistant_id)
    url = f"{root_url(stack)}/v1/threads/{thread_id}/runs/{run_id}/stream"
    load = SseLoad(spec([url], auth_headers(stack.api_key), n, LIVE_LIMITS_S, "event: thread.run.requires_action"))
    try:
        attached, count = load.wait_attached()
        env.step(f"{NAME}:   {count} of {n} clients attached in {attached - load.started:.1f}s; "
                 "submitting the tool output")
        submitted = time.time()
        client.beta.threads.runs.submit_tool_outputs(run_id, thread_id=thread_id,
                                                     tool_outputs=[{"tool_call_id": call_id,
                                                                    "output": words(ANSWER_WORDS)}])
        return load.result(), submitted, url
    finally:
        load.close()


def rate(events: int, seconds: float) -> float:
    return round(events / seconds, 1) if seconds > 0 else 0.0


def run(env: BenchEnv) -> Findings:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    found = Findings()
    with env.stack(NAME) as stack:
        client = sdk(stack)
        assistant = client.beta.assistants.create(model=MODEL, instructions="Be brief.", tools=[WAIT_TOOL])
        with baseline_server(database_url(stack), env.work_dir / NAME) as baseline:
            for n in CLIENTS:
                env.step(f"{NAME}: live run, {n} client(s)")
                ours, submitted, url = live(env, stack, client, assistant.id, n)
                finished = max(r["finished_wall"] or 0.0 for r in model_requests(stack))
                live_events = ours.events - ours.events_at_attach
                live_rate = rate(live_events, ours.ended - submitted)
                lag = ours.ended - finished
                env.step(f"{NAME}:   {live_rate:,.0f} events/s ({live_events:,} events, "
                         f"{ours.deltas / max(ours.ok_clients, 1):.0f} deltas per client), last client done "
                         f"{lag * 1000:.0f} ms after the model's last token; {n - ours.ok_clients} failed")
                env.step(f"{NAME}: replay of the finished run, {n} client(s)")
                again = sse_load(spec([url], auth_headers(stack.api_key), n, REPLAY_LIMITS_S, rounds=rounds(n)))
                replay_rate = rate(again.events, again.ended - again.started)
                first = [t - again.started for t in again.attach_times]
                first_p50, first_max = (first[len(first) // 2], first[-1]) if first else (0.0, 0.0)
                env.step(f"{NAME}:   {replay_rate:,.0f} events/s ({again.events:,} events in "
                         f"{again.ended - again.started:.2f}s; first event after {first_p50:.2f}s p50, "
                         f"{first_max:.2f}s max); {n - again.ok_clients} failed")
                env.step(f"{NAME}: baseline SSE handler, {n} client(s) x {BASELINE_EVENTS} events")
                base = sse_load(spec([f"{baseline.url}/sse?n={BASELINE_EVENTS}"], {}, n, LIVE_LIMITS_S,
                                     rounds=rounds(n)))
                base_rate = rate(base.events, base.ended - base.started)
                env.step(f"{NAME}:   {base_rate:,.0f} events/s ({base.events:,} events in "
                         f"{base.ended - base.started:.2f}s)")
                params = {"clients": n, "model": MODEL, "answer_words": ANSWER_WORDS,
                          "baseline_events_per_stream": BASELINE_EVENTS, "replay_streams_per_client": rounds(n)}
                baseline_name = f"bare aiohttp SSE, {BASELINE_EVENTS} events/client"
                found.figures += [
                    Figure(scenario=NAME, name=f"live run stream, {n} clients", unit="events/s", value=live_rate,
                           baseline=base_rate, baseline_name=baseline_name, params=params,
                           extra={"events": live_events, "events_per_client": live_events / max(ours.ok_clients, 1),
                                  "deltas_per_client": ours.deltas / max(ours.ok_clients, 1),
                                  "failed_clients": n - ours.ok_clients, "seconds": ours.ended - submitted,
                                  "lag_after_model_ms": round(lag * 1000, 1), "errors": ours.error_samples,
                                  "all_attached_after_s": round(ours.attached - ours.started, 3)}),
                    Figure(scenario=NAME, name=f"replay finished run, {n} clients", unit="events/s",
                           value=replay_rate, baseline=base_rate, baseline_name=baseline_name, params=params,
                           extra={"events": again.events, "seconds": again.ended - again.started,
                                  "first_event_p50_s": round(first_p50, 3), "first_event_max_s": round(first_max, 3),
                                  "failed_clients": n - again.ok_clients, "errors": again.error_samples}),
                ]
                if ours.ok_clients < n or again.ok_clients < n or base.ok_clients < n:
                    found.notes.append(f"{n} clients: failed live {n - ours.ok_clients}, replay "
                                       f"{n - again.ok_clients}, baseline {n - base.ok_clients}: "
                                       f"{ours.error_samples + again.error_samples + base.error_samples}")
    found.notes.append(f"live: the model streams ~{ANSWER_WORDS + 5} tokens at 5 ms each (~1 s), so with few clients "
                       "the live rate is bounded by the model's pace, not by threadlog")
    return found
