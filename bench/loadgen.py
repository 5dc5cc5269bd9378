"""The load generator, run as its own process: `python -m bench.loadgen` reads a JSON spec on stdin and writes
JSON lines on stdout (`attached` for SSE loads once every client is in, then one `result`).

`http`: N asyncio clients, each cycling through its list of requests for a fixed time (after a warm-up).
`sse`: N clients attached to an event stream each, read to the end; events are counted in the raw bytes.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Literal

import aiohttp
import msgspec
import uvloop

from .stats import Summary, summarize


class Op(msgspec.Struct, frozen=True):
    tag: str
    method: str
    path: str
    body: str | None = None


class HttpSpec(msgspec.Struct, frozen=True, tag="http"):
    base: str
    headers: dict[str, str]
    concurrency: int
    duration_s: float
    clients: list[list[Op]]  # client i cycles through clients[i % len(clients)]
    warmup_s: float = 1.0


class SseSpec(msgspec.Struct, frozen=True, tag="sse"):
    urls: list[str]  # client i reads urls[i % len(urls)]
    headers: dict[str, str]
    clients: int
    attached_marker: str = "\n\n"  # a client counts as attached once it has read this
    attach_timeout_s: float = 60.0  # then `attached` is reported with whoever made it
    timeout_s: float = 120.0  # then every stream still open is cut and counted as failed
    rounds: int = 1  # each client reads its stream this many times in a row (steadier rates for few clients)


Spec = HttpSpec | SseSpec


class HttpResult(msgspec.Struct, kw_only=True):
    type: Literal["result"] = "result"
    total: Summary
    by_tag: dict[str, Summary]
    error_samples: list[str]
    sent: int  # every request, warm-up included (for CPU time per request)
    cpu_ms_per_request: dict[str, float] = {}  # filled in by the parent (bench/drive.py)


class SseResult(msgspec.Struct, kw_only=True):
    type: Literal["result"] = "result"
    clients: int
    ok_clients: int
    attached_clients: int
    events: int
    events_at_attach: int  # events clients had read when they attached (before the measured part)
    deltas: int
    started: float  # wall clock, seconds
    attached: float
    first_delta: float | None
    ended: float
    end_times: list[float]
    attach_times: list[float]  # when each client read its attach marker (wall clock)
    error_samples: list[str]


def emit(value: object) -> None:
    sys.stdout.buffer.write(msgspec.json.encode(value) + b"\n")
    sys.stdout.flush()


async def http_load(spec: HttpSpec) -> HttpResult:
    latencies: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    samples: list[str] = []
    sent = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=spec.headers, connector=connector) as session:
        start = time.perf_counter()
        measure_from = start + spec.warmup_s
        end = measure_from + spec.duration_s

        async def worker(index: int) -> None:
            nonlocal sent
            ops = spec.clients[index % len(spec.clients)]
            k = 0
            while True:
                op = ops[k % len(ops)]
                k += 1
                t0 = time.perf_counter()
                if t0 >= end:
                    return
                ok, problem = True, ""
                try:
                    async with session.request(op.method, spec.base + op.path, data=op.body) as resp:
                        body = await resp.read()
                        if resp.status >= 400:
                            ok, problem = False, f"{resp.status} {body[:200]!r}"
                except (aiohttp.ClientError, OSError, TimeoutError) as e:
                    ok, problem = False, repr(e)
                t1 = time.perf_counter()
                sent += 1
                if t0 < measure_from:
                    continue
                if ok:
                    latencies.setdefault(op.tag, []).append(t1 - t0)
                else:
                    errors[op.tag] = errors.get(op.tag, 0) + 1
                    if len(samples) < 5:
                        samples.append(f"{op.tag}: {problem}")

        await asyncio.gather(*(worker(i) for i in range(spec.concurrency)))
    seconds = spec.duration_s
    tags = set(latencies) | set(errors)
    by_tag = {t: summarize(latencies.get(t, []), seconds, errors.get(t, 0)) for t in sorted(tags)}
    everything = [x for values in latencies.values() for x in values]
    return HttpResult(total=summarize(everything, seconds, sum(errors.values())), by_tag=by_tag,
                      error_samples=samples, sent=sent)


async def main() -> None:
    from .sseclients import sse_load

    spec = msgspec.json.decode(sys.stdin.buffer.read(), type=Spec)
    emit(await (http_load(spec) if isinstance(spec, HttpSpec) else sse_load(spec)))


if __name__ == "__main__":
    uvloop.run(main())
