"""Steady load through the official SDK, a ledger of every request and its outcome, and the log audit that
checks the ledger against the event log (exactly once), for the fault-injection tests and tests/test_cluster.py.

Every write carries an `Idempotency-Key`, and the same key in its metadata (`{"k": key}`), so the events a
request appended can be found in the log whether or not its answer reached the client: a request that got a 2xx
must be there exactly once (under the id it was answered with), any other request at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import msgspec
import nats
import openai

from services.projector.rebuild import compare, rebuild
from shared.bus import Subjects
from shared.partitions import all_checkpoints

T = TypeVar("T")
ENDED = frozenset({"completed", "incomplete", "failed", "cancelled", "expired"})
RUN_STATUS_EVENTS = {
    "thread.run.created": "queued", "thread.run.in_progress": "in_progress",
    "thread.run.requires_action": "requires_action", "thread.run.cancelling": "cancelling",
    "thread.run.completed": "completed", "thread.run.incomplete": "incomplete", "thread.run.failed": "failed",
    "thread.run.cancelled": "cancelled", "thread.run.expired": "expired",
}
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
REPORT_PATH = Path(__file__).resolve().parents[2] / "artifacts" / "faults-report.json"


# --- the ledger -----------------------------------------------------------------------------------------------


@dataclass
class Attempt:
    started: float  # time.monotonic()
    took: float
    status: int | None  # HTTP status; None for a connection error or a timeout
    error: str | None = None  # exception class, for failures
    code: str | None = None  # error.code of an error body
    shape_ok: bool | None = None  # an error body in OpenAI's shape {"error": {message, type, param, code}}
    base_url: str = ""


@dataclass
class Request:
    kind: str  # "thread" | "message" | "run"
    key: str
    started: float
    attempts: list[Attempt] = field(default_factory=list)
    acked_id: str | None = None  # the id a 2xx answered with
    acked_at: float | None = None
    outcome: str = "pending"  # "acked", "gave_up" (retries exhausted), "refused" (an error not to retry)


class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.run_status: dict[str, str] = {}  # run id -> last status the client saw
        self.run_ended_at: dict[str, float] = {}  # run id -> when the client first saw it ended
        self.run_created_at: dict[str, float] = {}  # run id -> when its create request started
        self.run_thread: dict[str, str] = {}  # run id -> thread id
        self.run_marker: dict[str, str] = {}  # run id -> the unique word of its thread's user message

    def new(self, kind: str, key: str) -> Request:
        request = Request(kind, key, time.monotonic())
        with self.lock:
            self.requests.append(request)
        return request

    def snapshot(self) -> list[Request]:
        with self.lock:
            return list(self.requests)

    def acked(self, kind: str | None = None) -> list[Request]:
        return [r for r in self.snapshot() if r.acked_id is not None and kind in (None, r.kind)]

    def failures(self) -> list[Attempt]:
        return [a for r in self.snapshot() for a in r.attempts if a.error is not None]


def error_shape_ok(response: Any) -> tuple[bool, str | None]:
    try:
        body = response.json()
    except ValueError:
        return False, None
    error = body.get("error") if isinstance(body, dict) else None
    ok = (isinstance(body, dict) and set(body) == {"error"} and isinstance(error, dict)
          and set(error) == {"message", "type", "param", "code"} and isinstance(error["message"], str)
          and bool(error["message"]) and isinstance(error["type"], str))
    return ok, (error.get("code") if isinstance(error, dict) else None)


class Gateways:
    """The SDK clients of one load thread, one per gateway, picked as a load balancer would: by the request's key,
    skipping for a couple of seconds a gateway that just refused a connection (a health check's view)."""

    def __init__(self, clients: list[openai.OpenAI]) -> None:
        self.clients = clients
        self.down_until = [0.0] * len(clients)

    def pick(self, turn: int) -> int:
        now = time.monotonic()
        for i in range(len(self.clients)):
            index = (turn + i) % len(self.clients)
            if self.down_until[index] <= now:
                return index
        return turn % len(self.clients)

    def refused(self, index: int) -> None:
        self.down_until[index] = time.monotonic() + 2.0


def call(ledger: Ledger, kind: str, key: str, gateways: Gateways, fn: Callable[[openai.OpenAI], T],
         *, budget_s: float = 20.0, give_up: threading.Event | None = None) -> T | None:
    """Carry out one write with a bounded retry loop (same Idempotency-Key every attempt), recording each attempt.

    Requests are spread over the gateways by key; a failed attempt moves on to the next gateway. Returns the SDK's
    result, or None when the request never got a 2xx.
    """
    request = ledger.new(kind, key)
    turn = uuid.UUID(key).int % len(gateways.clients)
    backoff = 0.05
    while True:
        index = gateways.pick(turn)
        client = gateways.clients[index]
        started = time.monotonic()
        attempt = Attempt(started, 0.0, None, base_url=str(client.base_url))
        retry = True
        try:
            result = fn(client)
        except openai.APIStatusError as e:
            attempt.took = time.monotonic() - started
            attempt.status, attempt.error = e.status_code, type(e).__name__
            attempt.shape_ok, attempt.code = error_shape_ok(e.response)
            retry = e.status_code in RETRY_STATUSES and e.response.headers.get("x-should-retry") != "false"
        except openai.APIConnectionError as e:  # connection refused or reset, timeouts
            attempt.took = time.monotonic() - started
            attempt.error = type(e).__name__
            if not isinstance(e, openai.APITimeoutError):
                gateways.refused(index)
        else:
            attempt.took = time.monotonic() - started
            attempt.status = 200
            request.attempts.append(attempt)
            request.acked_id = getattr(result, "id", None)
            request.acked_at = time.monotonic()
            request.outcome = "acked"
            return result
        request.attempts.append(attempt)
        if not retry:
            request.outcome = "refused"
            return None
        if time.monotonic() - request.started > budget_s or (give_up is not None and give_up.is_set()):
            request.outcome = "gave_up"
            return None
        turn = index + 1
        time.sleep(backoff)
        backoff = min(backoff * 2, 0.5)


def sdk_clients(base_urls: list[str], api_key: str, timeout_s: float = 6.0) -> Gateways:
    return Gateways([openai.OpenAI(base_url=u, api_key=api_key, max_retries=0, timeout=timeout_s) for u in base_urls])


def new_key() -> str:
    return uuid.uuid4().hex


def idem(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


# --- the load -------------------------------------------------------------------------------------------------


class Load:
    """`writers` threads creating messages and `runners` threads doing create-and-poll runs, until stopped.

    Each thread has SDK clients of its own (one per gateway). Writers 0 and 1 share a thread, so optimistic
    concurrency conflicts are part of the load. Each run gets a thread of its own whose user message is unique
    (the offline model's request log can be searched by it) and asks for `run_words` words.
    """

    def __init__(self, base_urls: list[str], api_key: str, *, writers: int = 4, runners: int = 2,
                 model: str = "threadlog-offline+delay40", run_words: int = 6, pause_s: float = 0.02,
                 run_budget_s: float = 45.0, timeout_s: float = 8.0, budget_s: float = 20.0) -> None:
        self.base_urls = base_urls
        self.api_key = api_key
        self.writers = writers
        self.runners = runners
        self.model = model
        self.run_words = run_words
        self.pause_s = pause_s
        self.run_budget_s = run_budget_s
        self.timeout_s = timeout_s  # per HTTP attempt
        self.budget_s = budget_s  # per write, over its retries
        self.ledger = Ledger()
        self.stop_event = threading.Event()
        self.give_up = threading.Event()  # set at the very end: pending retries stop at once
        self.threads: list[threading.Thread] = []
        self.thread_ids: list[str] = []
        self.assistant_id = ""
        self.errors: list[BaseException] = []  # bugs of the load itself (never a service failure)

    def setup(self) -> None:
        gateways = sdk_clients(self.base_urls[:1], self.api_key, timeout_s=30)
        self.assistant_id = gateways.clients[0].beta.assistants.create(model=self.model, instructions="Be brief.").id
        for i in range(max(1, self.writers - 1)):
            key = new_key()
            thread = call(self.ledger, "thread", key, gateways, lambda c, k=key, i=i: c.beta.threads.create(
                metadata={"k": k, "writer": str(i)}, extra_headers=idem(k)))
            assert thread is not None, "could not create the writers' threads"
            self.thread_ids.append(thread.id)

    def start(self) -> None:
        for i in range(self.writers):
            self.threads.append(threading.Thread(target=self._guard, args=(self._writer, i), daemon=True,
                                                 name=f"writer-{i}"))
        for i in range(self.runners):
            self.threads.append(threading.Thread(target=self._guard, args=(self._runner, i), daemon=True,
                                                 name=f"runner-{i}"))
        for t in self.threads:
            t.start()

    def _guard(self, target: Callable[[int], None], index: int) -> None:
        try:
            target(index)
        except BaseException as e:
            self.errors.append(e)
            raise

    def _writer(self, index: int) -> None:
        gateways = sdk_clients(self.base_urls, self.api_key, self.timeout_s)
        thread_id = self.thread_ids[max(index - 1, 0)]
        n = 0
        while not self.stop_event.is_set():
            key = new_key()
            call(self.ledger, "message", key, gateways, lambda c, k=key, n=n: c.beta.threads.messages.create(
                thread_id, role="user", content=f"writer {index} #{n} {k}", metadata={"k": k},
                extra_headers=idem(k)), budget_s=self.budget_s, give_up=self.give_up)
            n += 1
            time.sleep(self.pause_s)

    def _runner(self, index: int) -> None:
        gateways = sdk_clients(self.base_urls, self.api_key, self.timeout_s)
        while not self.stop_event.is_set():
            self.create_and_poll(gateways, f"runner {index}")
            time.sleep(self.pause_s)

    def create_and_poll(self, gateways: Gateways, label: str) -> str | None:
        """The SDK's create_and_poll, with a bounded poll: a fresh thread with a unique user message, a run on
        it (the create carries an Idempotency-Key, retried on failures), then polling until it ends."""
        tkey, rkey = new_key(), new_key()
        thread = call(self.ledger, "thread", tkey, gateways, lambda c: c.beta.threads.create(
            messages=[{"role": "user", "content": f"{label} {tkey} say {self.run_words} words"}],
            metadata={"k": tkey}, extra_headers=idem(tkey)), budget_s=self.budget_s, give_up=self.give_up)
        if thread is None:
            return None
        created = time.monotonic()
        run = call(self.ledger, "run", rkey, gateways, lambda c: c.beta.threads.runs.create(
            thread_id=thread.id, assistant_id=self.assistant_id, metadata={"k": rkey}, extra_headers=idem(rkey)),
            budget_s=self.budget_s, give_up=self.give_up)
        if run is None:
            return None
        ledger = self.ledger
        with ledger.lock:
            ledger.run_created_at[run.id] = created
            ledger.run_thread[run.id] = thread.id
            ledger.run_marker[run.id] = tkey
            ledger.run_status[run.id] = run.status
        deadline = time.monotonic() + self.run_budget_s
        turn = 0
        while time.monotonic() < deadline and not self.give_up.is_set():
            try:
                index = gateways.pick(turn)
                seen = gateways.clients[index].beta.threads.runs.retrieve(run.id, thread_id=thread.id)
            except (openai.APIStatusError, openai.APIConnectionError) as e:
                if isinstance(e, openai.APIConnectionError) and not isinstance(e, openai.APITimeoutError):
                    gateways.refused(index)
                turn = index + 1
                time.sleep(0.2)
                continue
            with ledger.lock:
                ledger.run_status[run.id] = seen.status
            if seen.status in ENDED:
                with ledger.lock:
                    ledger.run_ended_at.setdefault(run.id, time.monotonic())
                return run.id
            time.sleep(0.1)
        return run.id

    def acked_since(self, since: float, kind: str | None = None) -> int:
        return sum(1 for r in self.ledger.acked(kind) if r.acked_at is not None and r.acked_at >= since)

    def runs_ended_since(self, since: float) -> int:
        with self.ledger.lock:
            return sum(1 for run_id, at in self.ledger.run_ended_at.items()
                       if self.ledger.run_created_at.get(run_id, 0) >= since and at >= since)

    def wait(self, what: str, check: Callable[[], bool], timeout_s: float) -> float:
        """Wait for `check` while the load runs; returns the time it took."""
        started = time.monotonic()
        while not check():
            assert not self.errors, f"the load generator failed: {self.errors[0]!r}"
            assert time.monotonic() - started < timeout_s, f"timed out after {timeout_s}s waiting for {what}"
            time.sleep(0.05)
        return time.monotonic() - started

    def stop(self, timeout_s: float = 60.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout_s
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        if any(t.is_alive() for t in self.threads):
            self.give_up.set()
            for t in self.threads:
                t.join(10)
        assert not any(t.is_alive() for t in self.threads), "a load thread hung"
        assert not self.errors, f"the load generator failed: {self.errors[0]!r}"


# --- the log --------------------------------------------------------------------------------------------------


def query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


@dataclass
class LogFacts:
    by_key: dict[str, Counter[str]]  # kind -> Counter(key -> events carrying it)
    message_ids: Counter[str]  # thread.message.created events by message id
    run_ids: Counter[str]  # thread.run.created events by run id
    thread_ids: Counter[str]
    run_status: dict[str, str]  # run id -> status of its last lifecycle event
    assistant_messages: Counter[str]  # run id -> assistant messages created for it
    id_of_key: dict[str, dict[str, str]]  # kind -> key -> the id its created event carries


def read_log(database_url: str) -> LogFacts:
    rows = query(database_url, "SELECT event_type, payload FROM events WHERE event_type = ANY($1)"
                 " ORDER BY txid, position", ["thread.created", "thread.message.created", *RUN_STATUS_EVENTS])
    kinds = {"thread.created": "thread", "thread.message.created": "message", "thread.run.created": "run"}
    by_key: dict[str, Counter[str]] = defaultdict(Counter)
    facts = LogFacts(by_key, Counter(), Counter(), Counter(), {}, Counter(), defaultdict(dict))
    for row in rows:
        kind, payload = row["event_type"], msgspec.json.decode(bytes(row["payload"]))
        key = (payload.get("metadata") or {}).get("k")
        if kind in kinds and key:
            by_key[kinds[kind]][key] += 1
            id_field = {"thread": "thread_id", "message": "message_id", "run": "run_id"}[kinds[kind]]
            facts.id_of_key[kinds[kind]][key] = payload[id_field]
        if kind == "thread.created":
            facts.thread_ids[payload["thread_id"]] += 1
        elif kind == "thread.message.created":
            facts.message_ids[payload["message_id"]] += 1
            if payload.get("role") == "assistant" and payload.get("run_id"):
                facts.assistant_messages[payload["run_id"]] += 1
        else:
            if kind == "thread.run.created":
                facts.run_ids[payload["run_id"]] += 1
            facts.run_status[payload["run_id"]] = RUN_STATUS_EVENTS[kind]
    return facts


def projection_lag(database_url: str, partitions: int = 1) -> list[str]:
    """Checkpoints not yet at the log's head (empty: the read models are current)."""
    head = query(database_url, "SELECT txid, position FROM events ORDER BY txid DESC, position DESC LIMIT 1")
    checkpoints = {r["name"]: (r["txid"], r["position"])
                   for r in query(database_url, "SELECT name, txid, position FROM checkpoints")}
    want = (head[0]["txid"], head[0]["position"]) if head else (0, 0)
    return [name for name in all_checkpoints(partitions) if checkpoints.get(name) != want]


def wait_settled(database_url: str, partitions: int = 1, timeout_s: float = 40.0) -> float:
    """Until every run of the log has ended and every projector checkpoint is at the log's head."""
    started = time.monotonic()
    while True:
        facts = read_log(database_url)
        open_runs = {r: s for r, s in facts.run_status.items() if s not in ENDED}
        lagging = projection_lag(database_url, partitions)
        if not open_runs and not lagging:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not settled after {timeout_s}s: runs not ended {open_runs}; "
                                 f"checkpoints behind the log {lagging}")
        time.sleep(0.2)


KNOWN_ACK_BUG = ("known bug, reproduced by tests/faults/test_known_bugs.py::"
                 "test_worker_keeps_the_delivery_of_a_run_it_is_carrying_out")


def runs_without_delivery(database_url: str, nats_url: str, prefix: str) -> str | None:
    """When runs are left unfinished while the run-workers' consumer holds no delivery at all (none unacknowledged,
    none undelivered), nothing can ever take them over: the signature of the known redelivery-ack bug (a worker
    acked the redelivery of a run it was carrying out, then died). A description of it, else None."""
    open_runs = {r: s for r, s in read_log(database_url).run_status.items() if s not in ENDED}
    if not open_runs:
        return None

    async def deliveries() -> int:
        nc = await nats.connect(nats_url.split(","), connect_timeout=2, max_reconnect_attempts=1)
        try:
            info = await nc.jetstream().consumer_info(Subjects(prefix).events_stream, Subjects(prefix).durable(
                "run-worker"))
            return int(info.num_ack_pending) + int(info.num_pending)
        finally:
            await nc.close()

    try:
        held = asyncio.run(deliveries())
    except Exception:
        return None
    if held:
        return None
    return f"{KNOWN_ACK_BUG}: runs {open_runs} unfinished with no delivery left in the run-workers' consumer"


def rebuild_differences(database_url: str, partitions: int = 1) -> dict[str, int]:
    """Rebuild every read model from the log into a shadow schema and compare with the live ones (all 0: equal)."""
    schema = "faults_rebuild"
    asyncio.run(rebuild(database_url, schema, partitions=partitions))
    try:
        return asyncio.run(compare(database_url, schema, partitions=partitions))
    finally:
        query(database_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# --- the audit and the report ---------------------------------------------------------------------------------


@dataclass
class Audit:
    sent: int = 0
    acked: int = 0
    found: int = 0  # requests whose events are in the log (acknowledged or not)
    lost: int = 0  # acknowledged, but not in the log exactly once under the answered id
    duplicated: int = 0  # carried out more than once
    unacked_in_log: int = 0  # no 2xx reached the client, yet the log has it once (allowed)
    per_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    runs: int = 0
    runs_ended: int = 0
    runs_with_two_answers: int = 0
    problems: list[str] = field(default_factory=list)


def audit(ledger: Ledger, facts: LogFacts) -> Audit:
    out = Audit()
    ids_of = {"thread": facts.thread_ids, "message": facts.message_ids, "run": facts.run_ids}
    for kind in ("thread", "message", "run"):
        row = dict.fromkeys(("sent", "acked", "found", "lost", "duplicated"), 0)
        for r in ledger.snapshot():
            if r.kind != kind:
                continue
            logged = facts.by_key[kind][r.key]
            row["sent"] += 1
            row["found"] += logged > 0
            if logged > 1:
                row["duplicated"] += 1
                out.problems.append(f"{kind} {r.key}: {logged} events")
            if r.acked_id is None:
                out.unacked_in_log += logged == 1
                continue
            row["acked"] += 1
            by_id = ids_of[kind][r.acked_id]
            if logged == 0 or by_id == 0:
                row["lost"] += 1
                out.problems.append(f"{kind} {r.acked_id} (key {r.key}) acknowledged but not in the log")
            elif facts.id_of_key[kind].get(r.key) != r.acked_id:
                logged_id = facts.id_of_key[kind].get(r.key)
                out.problems.append(f"{kind} key {r.key} answered {r.acked_id}, logged as {logged_id}")
        out.per_kind[kind] = row
        for name in ("sent", "acked", "found", "lost", "duplicated"):
            setattr(out, name, getattr(out, name) + row[name])
    # No id was created twice (a request carried out twice under one id would show here).
    duplicated_ids = {k: [i for i, n in ids.items() if n > 1] for k, ids in ids_of.items()}
    for kind, ids in duplicated_ids.items():
        if ids:
            out.problems.append(f"{kind} ids created more than once: {ids[:5]}")
            out.duplicated += len(ids)
    out.runs = len(facts.run_ids)
    out.runs_ended = sum(1 for s in facts.run_status.values() if s in ENDED)
    two = [r for r, n in facts.assistant_messages.items() if n > 1]
    out.runs_with_two_answers = len(two)
    if two:
        out.problems.append(f"runs with more than one assistant message: {two[:5]}")
    completed_without = [r for r, s in facts.run_status.items()
                         if s == "completed" and facts.assistant_messages[r] != 1]
    if completed_without:
        out.problems.append(f"completed runs without exactly one assistant message: {completed_without[:5]}")
    return out


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def recovery(ledger: Ledger, fault_end: float) -> dict[str, float | None]:
    """Seconds from the fault's end to the first 2xx write answered after it, and until every run created
    before it had ended (as the client saw it)."""
    acked = [r.acked_at for r in ledger.acked() if r.acked_at is not None and r.attempts[-1].started >= fault_end]
    with ledger.lock:
        before = [run_id for run_id, at in ledger.run_created_at.items() if at < fault_end]
        ended = [ledger.run_ended_at.get(run_id) for run_id in before]
    runs_done = None
    if before and all(e is not None for e in ended):
        runs_done = max(0.0, max(e for e in ended if e is not None) - fault_end)
    return {"first_write_s": round(min(acked) - fault_end, 3) if acked else None,
            "runs_ended_s": round(runs_done, 3) if runs_done is not None else None}


HEADER = (f"{'fault':<18}{'sent':>6}{'acked':>7}{'in log':>8}{'lost':>6}{'dup':>5}{'runs':>10}{'failed':>8}"
          f"{'fail p99':>10}{'1st write':>11}{'runs done':>11}{'total':>8}")


def table_line(name: str, report: dict[str, Any]) -> str:
    def secs(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}s"

    return (f"{name:<18}{report['sent']:>6}{report['acked']:>7}{report['found']:>8}{report['lost']:>6}"
            f"{report['duplicated']:>5}{report['runs_ended']:>5}/{report['runs']:<4}{report['failed_attempts']:>8}"
            f"{secs(report['failure_p99_s']):>10}{secs(report['recovery']['first_write_s']):>11}"
            f"{secs(report['recovery']['runs_ended_s']):>11}{secs(report['duration_s']):>8}")


def build_report(ledger: Ledger, result: Audit, *, fault_start: float, fault_end: float, started: float,
                 differences: dict[str, int], extra: dict[str, Any] | None = None,
                 failures_until: float | None = None) -> dict[str, Any]:
    """`failures_until`: the end of the window whose failed attempts make "fail p99" (default: the fault's end)."""
    failures = ledger.failures()
    outcomes = Counter(f"{a.status}" if a.status is not None else a.error or "?" for a in failures)
    until = fault_end if failures_until is None else failures_until
    during = [a.took for a in failures if fault_start <= a.started <= until]
    report: dict[str, Any] = {
        **{k: v for k, v in asdict(result).items() if k != "problems"},
        "problems": result.problems[:20],
        "failed_attempts": len(failures),
        "failure_outcomes": dict(outcomes),
        # failures of attempts sent during the fault (the table's "fail p99"), then of all failed attempts
        "failure_p99_s": round(percentile(during, 99), 3) if during else None,
        "all_failures_p99_s": round(percentile([a.took for a in failures], 99), 3) if failures else None,
        "all_failures_max_s": round(max((a.took for a in failures), default=0.0), 3) if failures else None,
        # attempts that hit the client timeout: when they were sent (seconds after the fault's end) and where
        "timeouts": [[round(a.started - fault_end, 2), a.base_url] for a in failures
                     if a.error == "APITimeoutError"][:20],
        "gave_up": sum(1 for r in ledger.snapshot() if r.outcome == "gave_up"),
        "refused": sum(1 for r in ledger.snapshot() if r.outcome == "refused"),
        "fault_s": round(fault_end - fault_start, 3),
        "recovery": recovery(ledger, fault_end),
        "rebuild_differences": differences,
        "duration_s": round(time.monotonic() - started, 2),
    }
    report.update(extra or {})
    return report


def save_report(name: str, report: dict[str, Any]) -> None:
    """Merge one report into artifacts/faults-report.json (under its name, replacing an older one)."""
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(REPORT_PATH.read_text())
    data[name] = {**report, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    REPORT_PATH.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
