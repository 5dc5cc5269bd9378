"""Deterministic reproductions of the product bugs the fault-injection suite ran into, kept as regression tests
now that they are fixed.

They share one stack on servers of their own (the last one stops PostgreSQL).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nats
import openai
import pytest

from tests.infra import Infra
from threadlog.devenv import EmbeddedNats, EmbeddedPostgres, free_port
from threadlog.stack import Service, Stack

from .load import ENDED, error_shape_ok, idem, new_key, query, read_log

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(90)]
LEASE_MS = 2000


class Bed:
    def __init__(self, postgres: EmbeddedPostgres, bus: EmbeddedNats, stack: Stack, database_url: str) -> None:
        self.postgres, self.bus, self.stack, self.database_url = postgres, bus, stack, database_url

    def client(self, timeout_s: float = 10.0) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.stack.base_url, api_key=self.stack.api_key, max_retries=0,
                             timeout=timeout_s)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    base = tmp_path_factory.mktemp("known-bugs")
    postgres = EmbeddedPostgres(base / "postgres")
    bus = EmbeddedNats(base / "nats", port=free_port())
    stack = None
    try:
        postgres.start()
        bus.start()
        infra = Infra(postgres.url, bus.url, base / "stacks")
        database_url = infra.new_database()
        stack = infra.new_stack("known-bugs", database_url=database_url, extra_env={
            "THREADLOG_RUN_LEASE_MS": str(LEASE_MS), "THREADLOG_CONSISTENCY_WAIT_MS": "1500"})
        stack.start()
        yield Bed(postgres, bus, stack, database_url)
    finally:
        if stack is not None:
            stack.stop()
        bus.stop()
        postgres.stop()


def run_worker_consumer(bed: Bed) -> tuple[int, int]:
    """(deliveries not yet acknowledged, redeliveries) of the run-workers' JetStream consumer."""

    async def go() -> tuple[int, int]:
        nc = await nats.connect(bed.bus.url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            js = nc.jetstream()
            for stream in await js.streams_info():
                for c in await js.consumers_info(stream.config.name):
                    if c.name.endswith("run-worker"):
                        return c.num_ack_pending, c.num_redelivered
            raise AssertionError("no run-worker consumer")
        finally:
            await nc.close()

    return asyncio.run(go())


def test_worker_keeps_the_delivery_of_a_run_it_is_carrying_out(bed: Bed) -> None:
    client = bed.client()
    worker = bed.stack.workers[0]
    assistant = client.beta.assistants.create(model="threadlog-offline+delay100")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "say 80 words"}])  # about 8 s
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    deadline = time.monotonic() + 10
    while not query(bed.database_url, "SELECT 1 FROM run_leases WHERE run_id = $1", run.id):
        assert time.monotonic() < deadline, "the run was never claimed"
        time.sleep(0.01)
    # A stall longer than the lease (GC, CPU starvation, a paused VM): JetStream redelivers the run to this worker.
    busy = busy_deliveries(worker)
    worker.signal(signal.SIGSTOP)
    time.sleep(LEASE_MS / 1000 + 1.0)
    worker.signal(signal.SIGCONT)
    deadline = time.monotonic() + 4  # until the worker has handled the redelivery (whatever it does with it)
    while busy_deliveries(worker) <= busy and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    status = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status
    pending, redelivered = run_worker_consumer(bed)
    assert status == "in_progress", f"the run ended too soon for the check ({status})"
    # While a run is carried out, its delivery must stay unacknowledged: it is what lets another worker take over.
    assert pending >= 1, (f"run {run.id} is in progress but the workers' consumer has {pending} unacknowledged "
                          f"deliveries ({redelivered} redelivered): the redelivery was acked")
    # ... and so a crash now is survived: the restarted worker takes the run over and finishes it.
    worker.kill()
    worker.start()
    worker.wait_ready()
    deadline = time.monotonic() + 20
    while (status := client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status) not in ENDED:
        assert time.monotonic() < deadline, f"run {run.id} stuck {status} after its worker crashed"
        time.sleep(0.2)
    assert status == "completed"


def busy_deliveries(worker: Service) -> float:
    """The worker's count of deliveries about a run that is busy (carried out here or by a live lease holder)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.probe_port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('threadlog_worker_deliveries_total{action="busy"}'):
                return float(line.split()[-1])
    return 0.0


def gateway_backends(bed: Bed) -> list[int]:
    """PostgreSQL backend pids of the gateway process's connections (matched by the client's TCP port)."""
    assert bed.stack.gateway.process is not None
    pid = bed.stack.gateway.process.pid
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            ports.add(int(fields[1].split(":")[1], 16))
    rows = query(bed.postgres.url, "SELECT pid, client_port FROM pg_stat_activity WHERE datname = $1",
                 bed.database_url.rsplit("/", 1)[1])
    return [r["pid"] for r in rows if r["client_port"] in ports]


def test_connections_terminated_by_postgres_answer_503_not_500(bed: Bed) -> None:
    threads = [bed.client().beta.threads.create().id for _ in range(4)]
    stop = threading.Event()
    seen: collections.Counter[int | str] = collections.Counter()
    malformed: list[int] = []
    lock = threading.Lock()

    def reader(thread_id: str) -> None:
        client = bed.client()
        while not stop.is_set():
            try:
                client.beta.threads.retrieve(thread_id)
                outcome: int | str = 200
            except openai.APIStatusError as e:
                outcome = e.status_code
                if not error_shape_ok(e.response)[0]:
                    malformed.append(e.status_code)
            except openai.APIConnectionError as e:
                outcome = type(e).__name__
            with lock:
                seen[outcome] += 1

    readers = [threading.Thread(target=reader, args=(t,), daemon=True) for t in threads]
    for r in readers:
        r.start()
    try:
        for _ in range(30):  # PostgreSQL terminates the gateway's connections, as a restart does: every 0.3 s
            time.sleep(0.3)
            query(bed.postgres.url, "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid",
                  gateway_backends(bed))
            with lock:
                if seen[500]:
                    break
    finally:
        stop.set()
        for r in readers:
            r.join(15)
    assert not malformed
    assert seen[200] > 0
    assert seen[500] == 0, f"answers while PostgreSQL terminated the gateway's connections: {dict(seen)}"


def test_retry_after_postgres_restart_is_answered_promptly(bed: Bed) -> None:
    client = bed.client(timeout_s=30)
    thread = client.beta.threads.create()
    key = new_key()
    first: list[object] = []

    def write() -> None:
        try:
            first.append(client.beta.threads.messages.create(thread.id, role="user", content=f"once {key}",
                                                              metadata={"k": key}, extra_headers=idem(key)))
        except (openai.APIStatusError, openai.APIConnectionError) as e:
            first.append(e)

    # With the projector down the write, once appended, waits for the read models (1.5 s here); PostgreSQL stops
    # during that wait, so the request fails after its events are in the log and its key is claimed.
    bed.stack.projector.kill()
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    deadline = time.monotonic() + 10
    while not read_log(bed.database_url).by_key["message"][key]:  # appended: now waiting for the read models
        assert time.monotonic() < deadline, f"the write was not appended: {first}"
        time.sleep(0.02)
    bed.postgres.stop()
    writer.join(20)
    time.sleep(2.0)
    bed.postgres.start()
    bed.stack.projector.start()
    bed.stack.projector.wait_ready()
    assert first and isinstance(first[0], openai.APIStatusError) and first[0].status_code >= 500, first

    started = time.monotonic()
    try:
        retried: object = bed.client(timeout_s=10).beta.threads.messages.create(
            thread.id, role="user", content=f"once {key}", metadata={"k": key}, extra_headers=idem(key))
    except openai.APIStatusError as e:
        retried = e
    except openai.APITimeoutError:
        retried = None
    took = time.monotonic() - started
    logged = read_log(bed.database_url).by_key["message"][key]
    assert logged == 1, f"the message is in the log {logged} times"
    assert retried is not None, f"the retry was not answered within {took:.1f}s"
    ok = not isinstance(retried, openai.APIStatusError) or retried.status_code == 409
    assert ok, f"the retry got {retried!r}"
