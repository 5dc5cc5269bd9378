"""Scenario 2, run overhead: what threadlog adds around the model for a short answer (`say 5 words`, no delay).

Each run is timed from the client's side, and the offline model's own time for that request (from its request
log: first token - received, finished - received) is subtracted. Variants: `runs.create` then attach to the
run's SSE stream until `thread.run.completed`; `runs.stream` through the SDK (first delta, completed);
`create_and_poll` at a 10 ms interval. Baseline: the same chat completion made straight to the offline model
with the SDK, streamed, minus the same model time (i.e. the HTTP + SDK cost of a direct call).
"""

from __future__ import annotations

import http.client
import time
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import openai

from threadlog.stack import Stack

from .api import marker, model_requests, model_sdk, sdk
from .env import BenchEnv
from .results import Figure, Findings
from .stats import summarize

NAME = "runs"
RUNS = 30
WARMUP = 3
MODEL = "threadlog-offline"
POLL_INTERVAL_MS = 10
SLOW_S = 0.4  # runs slower than this are counted apart: a follower's timer, not a queue, is the usual cause


class Timing:
    """One run or call: client-side times (s, from just before the request) and the marker naming it."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.first: float | None = None
        self.done: float | None = None


def attach(stack: Stack, thread_id: str, run_id: str, t0: float, timing: Timing) -> None:
    url = urlsplit(stack.base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        conn.request("GET", f"/v1/threads/{thread_id}/runs/{run_id}/stream",
                     headers={"Authorization": f"Bearer {stack.api_key}", "Accept": "text/event-stream"})
        response = conn.getresponse()
        while line := response.readline():
            if timing.first is None and line.startswith(b"event: thread.message.delta"):
                timing.first = time.perf_counter() - t0
            elif line.startswith(b"event: thread.run.completed"):
                timing.done = time.perf_counter() - t0
                return
        raise RuntimeError(f"stream of {run_id} ended without thread.run.completed")
    finally:
        conn.close()


def prompt(tag: str) -> str:
    return f"say 5 words ({tag})"


def run_attach(stack: Stack, client: openai.OpenAI, assistant_id: str) -> Timing:
    timing = Timing(marker())
    thread = client.beta.threads.create(messages=[{"role": "user", "content": prompt(timing.tag)}])
    t0 = time.perf_counter()
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id)
    attach(stack, thread.id, run.id, t0, timing)
    return timing


def run_stream(stack: Stack, client: openai.OpenAI, assistant_id: str) -> Timing:
    timing = Timing(marker())
    thread = client.beta.threads.create(messages=[{"role": "user", "content": prompt(timing.tag)}])
    t0 = time.perf_counter()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant_id) as stream:
        for event in stream:
            if timing.first is None and event.event == "thread.message.delta":
                timing.first = time.perf_counter() - t0
            elif event.event == "thread.run.completed":
                timing.done = time.perf_counter() - t0
    return timing


def run_poll(stack: Stack, client: openai.OpenAI, assistant_id: str) -> Timing:
    timing = Timing(marker())
    thread = client.beta.threads.create(messages=[{"role": "user", "content": prompt(timing.tag)}])
    t0 = time.perf_counter()
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id,
                                                   poll_interval_ms=POLL_INTERVAL_MS)
    if run.status != "completed":
        raise RuntimeError(f"run {run.id} ended {run.status}")
    timing.done = time.perf_counter() - t0
    return timing


def direct(stack: Stack, client: openai.OpenAI, _: str) -> Timing:
    timing = Timing(marker())
    t0 = time.perf_counter()
    stream = client.chat.completions.create(model=MODEL, stream=True,
                                            messages=[{"role": "user", "content": prompt(timing.tag)}])
    for chunk in stream:
        if timing.first is None and chunk.choices and chunk.choices[0].delta.content:
            timing.first = time.perf_counter() - t0
    timing.done = time.perf_counter() - t0
    return timing


def model_times(stack: Stack) -> dict[str, tuple[float, float]]:
    """marker -> (model's time to first token, model's total time), in seconds."""
    out: dict[str, tuple[float, float]] = {}
    for r in model_requests(stack):
        body: Any = r.get("body")
        text = " ".join(str(m.get("content")) for m in body.get("messages", [])) if isinstance(body, dict) else ""
        start = text.find("(m")
        if start < 0 or r.get("first_token_monotonic") is None or r.get("finished_monotonic") is None:
            continue
        tag = text[start + 1:text.find(")", start)]
        received = r["received_monotonic"]
        out[tag] = (r["first_token_monotonic"] - received, r["finished_monotonic"] - received)
    return out


Variant = Callable[[Stack, openai.OpenAI, str], Timing]


def overheads(timings: list[Timing], model: dict[str, tuple[float, float]], first: bool) -> list[float]:
    out = []
    for t in timings:
        ttft, total = model[t.tag]
        value = t.first if first else t.done
        if value is not None:
            out.append(value - (ttft if first else total))
    return out


def run(env: BenchEnv) -> Findings:
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK marks the Assistants API so
    found = Findings()
    with env.stack(NAME) as stack:
        client, direct_client = sdk(stack), model_sdk(stack)
        assistant = client.beta.assistants.create(model=MODEL, instructions="Be brief.")
        variants: dict[str, tuple[Variant, openai.OpenAI]] = {
            "attach": (run_attach, client), "stream": (run_stream, client), "poll": (run_poll, client),
            "direct": (direct, direct_client)}
        timings: dict[str, list[Timing]] = {}
        for name, (variant, c) in variants.items():
            env.step(f"{NAME}: {name}: {WARMUP} warm-up + {RUNS} timed")
            for _ in range(WARMUP):
                variant(stack, c, assistant.id)
            timings[name] = [variant(stack, c, assistant.id) for _ in range(RUNS)]
        model = model_times(stack)
    missing = [t.tag for ts in timings.values() for t in ts if t.tag not in model]
    if missing:
        raise RuntimeError(f"no model request found for {len(missing)} runs, e.g. {missing[:3]}")
    base_first = summarize(overheads(timings["direct"], model, first=True))
    base_done = summarize(overheads(timings["direct"], model, first=False))
    model_total = summarize([model[t.tag][1] for ts in timings.values() for t in ts])
    rows = [("create → completed, SSE attach", "attach", False, base_done),
            ("stream → first delta (SDK)", "stream", True, base_first),
            ("stream → completed (SDK)", "stream", False, base_done),
            (f"create_and_poll({POLL_INTERVAL_MS} ms) → completed", "poll", False, base_done)]
    for label, variant_name, first, base in rows:
        ours = summarize(overheads(timings[variant_name], model, first))
        raw = summarize([(t.first if first else t.done) or 0.0 for t in timings[variant_name]])
        params = {"runs": RUNS, "prompt": "say 5 words", "model": MODEL, "variant": variant_name}
        slow = sum(1 for v in overheads(timings[variant_name], model, first) if v > SLOW_S)
        extra = {"end_to_end_p50_ms": raw.p50_ms, "end_to_end_p99_ms": raw.p99_ms, "overhead_max_ms": ours.max_ms,
                 f"runs_over_{SLOW_S * 1000:.0f}ms": slow, "model_total_p50_ms": model_total.p50_ms}
        baseline_name = "direct SDK chat.completions (stream) - model time"
        found.figures += [
            Figure(scenario=NAME, name=f"overhead {label} p50", unit="ms", value=ours.p50_ms, baseline=base.p50_ms,
                   baseline_name=baseline_name, better="lower", params=params, extra=extra),
            Figure(scenario=NAME, name=f"overhead {label} p99", unit="ms", value=ours.p99_ms, baseline=base.p99_ms,
                   baseline_name=baseline_name, better="lower", params=params)]
        env.step(f"{NAME}: {label}: overhead p50 {ours.p50_ms:.1f} ms, p99 {ours.p99_ms:.1f} ms "
                 f"(direct call: p50 {base.p50_ms:.2f} ms)")
    found.notes.append(f"model time per call p50 {model_total.p50_ms:.2f} ms (subtracted); "
                       f"each run on a fresh thread, {RUNS} timed after {WARMUP} warm-up per variant")
    return found
