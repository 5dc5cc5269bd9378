"""Several run-worker processes: a crashed worker's run is taken over, no run is carried out twice, and a
worker stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import pytest

from threadlog.stack import Service, Stack

from .infra import Infra
from .runs_helpers import ModelLog, fetch, marker, message_text, sdk, wait_ended, wait_for, words

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks the Assistants API so
POLL = {"poll_interval_ms": 50}
LEASE_S = 3.0


def run_starts(stack: Stack, thread_id: str) -> list[dict[str, Any]]:
    """The thread.run.in_progress events of a thread (one per attempt), from the log itself."""
    rows = fetch(stack.env["DATABASE_URL"], "SELECT payload FROM events WHERE stream_id = $1"
                 " AND event_type = 'thread.run.in_progress' ORDER BY stream_version", thread_id)
    return [json.loads(bytes(r["payload"])) for r in rows]


def worker_pid(worker_id: str) -> int:
    """worker ids are `<host>-<pid>-<suffix>` (the host may contain dashes itself)."""
    return int(worker_id.rsplit("-", 2)[1])


def holder(stack: Stack, run_id: str) -> Service:
    """The worker process holding the run's lease."""
    rows = wait_for(f"a lease on {run_id}",
                    lambda: fetch(stack.env["DATABASE_URL"], "SELECT worker_id FROM run_leases WHERE run_id = $1",
                                  run_id), 5)
    pid = worker_pid(rows[0]["worker_id"])
    [service] = [w for w in stack.workers if w.process is not None and w.process.pid == pid]
    return service


# --- a crash mid-run ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crash_stack(infra: Infra) -> Iterator[Stack]:
    stack = infra.new_stack("crash", workers=2, extra_env={"THREADLOG_RUN_LEASE_MS": str(int(LEASE_S * 1000)),
                                                           "THREADLOG_POLL_AFTER_MS": "50"})
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


Lease = Literal["natural", "lapsed", "held"]


def crash_mid_run(stack: Stack, n_words: int, lease: Lease) -> None:
    """Kill the worker streaming a reply of `n_words` (100 ms each); another worker must finish the run, once.

    `lease` after the kill: "natural" leaves the dead holder's lease to lapse by itself; "lapsed" makes it lapse
    at once; "held" keeps it valid 3.5 s more, so JetStream's redelivery (after ack_wait = the lease time) is sure
    to find it still valid, as it does whenever the redelivery comes a little before the lease lapses.
    """
    client, model_log = sdk(stack), ModelLog(stack)
    assistant = client.beta.assistants.create(model="threadlog-offline+delay100")
    tag = marker()
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"{tag} say {n_words} words"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)

    wait_for("the run in progress",
             lambda: client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "in_progress", 5)
    wait_for("the model request", lambda: model_log.with_text(tag), 5)
    # Let the first attempt create the answer's message and stream into it: the takeover must reuse it.
    wait_for("the answer's message", lambda: client.beta.threads.messages.list(thread.id, run_id=run.id).data, 5)
    time.sleep(0.5)
    victim = holder(stack, run.id)
    [survivor] = [w for w in stack.workers if w is not victim and w.alive]
    killed_at = time.monotonic()
    victim.kill()
    assert not victim.alive and victim.process is not None and victim.process.returncode == -signal.SIGKILL
    held_s = 0.0
    if lease == "lapsed":
        fetch(stack.env["DATABASE_URL"], "UPDATE run_leases SET expires_at = now() - interval '1 second'"
              " WHERE run_id = $1", run.id)
    elif lease == "held":
        held_s = 3.5
        fetch(stack.env["DATABASE_URL"], "UPDATE run_leases SET expires_at = now() + $2 * interval '1 second'"
              " WHERE run_id = $1", run.id, held_s)

    budget = held_s + LEASE_S + n_words * 0.1 + 4  # the lease, the whole reply again, a margin
    done = wait_ended(client, thread.id, run.id, timeout_s=budget)
    took = time.monotonic() - killed_at
    assert done.status == "completed", (done.status, done.last_error)
    assert done.usage is not None and done.usage.completion_tokens == n_words

    mine = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert len(mine) == 1, [message_text(m) for m in mine]
    assert mine[0].status == "completed" and message_text(mine[0]) == words(n_words)
    assert [m.role for m in client.beta.threads.messages.list(thread.id, order="asc")] == ["user", "assistant"]
    [step] = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert step.status == "completed"
    assert step.step_details.message_creation.message_id == mine[0].id  # type: ignore[union-attr]

    requests = model_log.with_text(tag)
    assert len(requests) == 2, [r["outcome"] for r in requests]  # the original and the takeover
    starts = run_starts(stack, thread.id)
    assert [s["attempt"] for s in starts] == [1, 2]
    assert worker_pid(starts[0]["worker_id"]) == victim.process.pid
    assert survivor.process is not None and worker_pid(starts[1]["worker_id"]) == survivor.process.pid
    assert survivor.alive
    assert took < budget, took




def test_killed_worker_run_is_taken_over(crash_stack: Stack) -> None:
    crash_mid_run(crash_stack, 60, "natural")


def test_redelivery_meeting_a_valid_lease_keeps_the_run(crash_stack: Stack) -> None:
    ensure_two_workers(crash_stack)
    crash_mid_run(crash_stack, 20, "held")


def test_takeover_after_lease_lapsed(crash_stack: Stack) -> None:
    """The takeover itself, with the race above taken out: the dead holder's lease lapses at once, so the
    redelivery finds the run free (what the design intends)."""
    ensure_two_workers(crash_stack)
    crash_mid_run(crash_stack, 20, "lapsed")


def ensure_two_workers(stack: Stack) -> None:
    """The crash tests each kill one worker: start another so a survivor is left."""
    if sum(w.alive for w in stack.workers) < 2:
        stack.add_worker()


# --- three workers ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_stack(infra: Infra) -> Iterator[Stack]:
    stack = infra.new_stack("three", workers=3, extra_env={"THREADLOG_POLL_AFTER_MS": "50"})
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def test_concurrent_runs_execute_once(three_stack: Stack) -> None:
    client, model_log = sdk(three_stack), ModelLog(three_stack)
    assistant = client.beta.assistants.create(model="threadlog-offline+delay20", instructions="Count.")
    tags = [marker(f"r{i}-") for i in range(12)]

    def one(i: int) -> tuple[str, str, str]:
        said = f"{tags[i]} say 10 words"
        if i % 2:
            run = client.beta.threads.create_and_run_poll(
                assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": said}]}, **POLL)
        else:
            thread = client.beta.threads.create(messages=[{"role": "user", "content": said}])
            run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, **POLL)
        return run.thread_id, run.id, run.status

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(one, range(12)))
    assert [status for _, _, status in results] == ["completed"] * 12

    workers: set[str] = set()
    for tag, (thread_id, run_id, _) in zip(tags, results, strict=True):
        assert len(model_log.with_text(tag)) == 1, f"{tag}: the model was asked more than once"
        messages = client.beta.threads.messages.list(thread_id, order="asc").data
        assert [(m.role, m.run_id) for m in messages] == [("user", None), ("assistant", run_id)]
        assert message_text(messages[1]) == words(10)
        starts = run_starts(three_stack, thread_id)
        assert len(starts) == 1, f"run {run_id} was started {len(starts)} times"
        workers.add(starts[0]["worker_id"])
    pids = {w.process.pid for w in three_stack.workers if w.process is not None}
    assert {worker_pid(w) for w in workers} <= pids
    assert len(workers) >= 2, "every run went to one worker: the others take no share"


def test_core_flows_on_three_workers(three_stack: Stack) -> None:
    """A tool round trip (the outputs may reach another worker) and a cancel (the nudge must reach the holder)."""
    client = sdk(three_stack)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    assistant = client.beta.assistants.create(model="threadlog-offline", tools=[tool])  # type: ignore[list-item]
    for city in ("Paris", "Oslo", "Lima"):
        thread = client.beta.threads.create(
            messages=[{"role": "user", "content": f'call get_weather {{"city": "{city}"}}'}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, **POLL)
        assert run.status == "requires_action" and run.required_action is not None
        [call] = run.required_action.submit_tool_outputs.tool_calls
        assert json.loads(call.function.arguments) == {"city": city}
        done = client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": f"sunny in {city}"}],
            **POLL)
        assert done.status == "completed"
        [reply] = client.beta.threads.messages.list(thread.id, run_id=run.id).data
        assert message_text(reply) == f"Tool results: get_weather: sunny in {city}"

    for _ in range(3):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "say 100 words"}])
        run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id,
                                              model="threadlog-offline+delay200")
        wait_for("the slow run's message", lambda: client.beta.threads.messages.list(
            thread.id, run_id=run.id).data, 5)  # noqa: B023 (used at once)
        started = time.monotonic()
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
        assert wait_ended(client, thread.id, run.id, timeout_s=10).status == "cancelled"
        assert time.monotonic() - started < 3.0


def test_sigterm_idle_worker_exits_cleanly(three_stack: Stack) -> None:
    worker = three_stack.workers[0]
    assert worker.alive and worker.process is not None
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    try:
        code = worker.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not exit within 5 s of SIGTERM:\n{worker.tail()}")
    assert code == 0, worker.tail()
    assert time.monotonic() - started < 5

    # The other workers carry on.
    client = sdk(three_stack)
    assistant = client.beta.assistants.create(model="threadlog-offline")
    for _ in range(3):
        run = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "still there?"}]}, **POLL)
        assert run.status == "completed"
