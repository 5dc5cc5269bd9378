"""The pull loop: deliveries about runs -> claim -> execute, with ack / nak(delay) per delivery.

Any number of worker processes share the durable consumer. A run's delivery is acked only once the run has
reached a stable point (answered, waiting for tool outputs, or ended), so a worker that dies mid-run leaves
its delivery unacked: JetStream redelivers it after the lease time and another worker takes the run over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
import nats.errors
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.bus import Bus
from shared.db import DATABASE_ERRORS
from shared.errors import ServiceError
from shared.relay import decode_envelope
from shared.store import Cursor, EventStore

from .executor import Executor, Kind

log = logging.getLogger(__name__)
# Events that may need a worker to move a run forward.
TRIGGERS = ("thread.run.created", "thread.run.tool_outputs_submitted", "thread.run.cancelling", "response.created",
            "response.cancelling")


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter("threadlog_worker_deliveries_total", "Run deliveries by outcome", ["action"],
                                  registry=registry)
        self.active = Gauge("threadlog_worker_active_runs", "Runs being carried out", registry=registry)
        self.executions = Counter("threadlog_worker_executions_total", "Run attempts carried out", registry=registry)


class Worker:
    def __init__(self, *, executor: Executor, store: EventStore, bus: Bus, metrics: WorkerMetrics, concurrency: int,
                 lease_ms: int, grace_s: float = 30.0, max_deliver: int = -1) -> None:
        self._executor = executor
        self._store = store
        self._bus = bus
        self._metrics = metrics
        self._concurrency = concurrency
        self._lease_s = lease_ms / 1000
        self._grace_s = grace_s
        self._max_deliver = max_deliver
        self._inflight: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        subjects = self._bus.subjects
        triggers = [subjects.events_of_type(t) for t in TRIGGERS]
        sub = await self._bus.pull("run-worker", triggers, ack_wait_s=self._lease_s, max_deliver=self._max_deliver)
        await self._bus.on_nudge(subjects.events_of_type("thread.run.cancelling"), self._on_cancelling)
        await self._bus.on_nudge(subjects.events_of_type("response.cancelling"), self._on_cancelling)
        while not stop.is_set():
            free = self._concurrency - len(self._inflight)
            if free <= 0:
                await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                msgs = await sub.fetch(batch=min(free, 16), timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.Error as e:
                log.warning("fetch failed: %r", e)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                task = asyncio.create_task(self._deliver(msg))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
        await self._drain()

    async def _drain(self) -> None:
        """Graceful stop: let runs in flight finish for a while, then leave the rest to another worker."""
        if self._inflight:
            log.info("draining runs", extra={"runs": len(self._inflight)})
            _, pending = await asyncio.wait(self._inflight, timeout=self._grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _deliver(self, msg: Msg) -> None:
        action = "error"
        try:
            record = decode_envelope(msg.data)
            event = self._store.load(record)
            run_id = getattr(event, "run_id", None) or getattr(event, "response_id", None)
            kind: Kind = "run" if getattr(event, "run_id", None) else "response"
            if run_id is None:
                action = "drop"
                await msg.ack()
                return
            if run_id in self._executor.active:
                # A redelivery of a run this worker is still carrying out (it stalled past the lease): keep
                # it, or a crash of this worker would leave the run without any delivery to take it over.
                action = "busy"
                await msg.nak(delay=self._lease_s)
                return
            action, attempt = await self._executor.claim(record.stream_id, run_id, record.tenant_id, kind)
            if action == "execute":
                await self._execute(msg, record.stream_id, run_id, record.tenant_id, attempt, record.cursor, kind)
                if kind == "run" and await self._waiting_for_outputs(record.stream_id, run_id):
                    action = "wait"  # keep the delivery: it comes back at the run's expiry
            if action == "wait":
                await msg.nak(delay=await self._until_expiry(record.stream_id, run_id))
                return
            if action == "busy":
                # Another worker holds a live lease. Come back once it would have lapsed: if that worker died,
                # this delivery is what takes the run over (acking it would leave the run stuck).
                await msg.nak(delay=self._lease_s)
                return
            await msg.ack()
        except (*DATABASE_ERRORS, asyncpg.PostgresError, ServiceError) as e:
            log.warning("delivery failed, will retry: %r", e)
            with contextlib.suppress(nats.errors.Error):
                await msg.nak(delay=1)
        except nats.errors.Error as e:
            log.warning("ack failed: %r", e)
        finally:
            self._metrics.deliveries.labels(action).inc()

    async def _execute(self, msg: Msg, thread_id: str, run_id: str, tenant_id: str, attempt: int,
                       after: Cursor, kind: Kind) -> None:
        execution = self._executor.execute(thread_id, run_id, tenant_id, attempt, after, msg.in_progress, kind)
        task = asyncio.create_task(execution)
        self._executor.active[run_id] = task
        self._metrics.active.inc()
        self._metrics.executions.inc()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
        finally:
            self._executor.active.pop(run_id, None)
            self._metrics.active.dec()

    async def _waiting_for_outputs(self, thread_id: str, run_id: str) -> bool:
        run = (await self._executor.threads.load(thread_id)).runs.get(run_id)
        return run is not None and run.status == "requires_action"

    async def _until_expiry(self, thread_id: str, run_id: str) -> float:
        state = await self._executor.threads.load(thread_id)
        run = state.runs.get(run_id)
        if run is None:
            return 1.0
        return float(min(max(1, run.config.expires_at - int(time.time()) + 1), 3600))

    async def _on_cancelling(self, msg: Msg) -> None:
        with contextlib.suppress(Exception):
            record = decode_envelope(msg.data)
            event = self._store.load(record)
            turn_id = getattr(event, "run_id", None) or getattr(event, "response_id", None)
            if turn_id is not None:
                self._executor.request_cancel(turn_id)
