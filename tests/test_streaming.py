"""Live runs over server-sent events: the SDK's stream helpers, raw frames and ids, resuming, the thread feed.

Against a stack of its own with the offline model (`+delay<N>` = N ms per token, `say N words` = N words).
Raw streams are read with tests/sse_client.py (stdlib, every read bounded by a socket timeout), so ids and
frames are seen exactly as the server wrote them; the SDK is used where clients use it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import aiohttp
import nats
import openai
import pytest
from openai.lib.streaming import AssistantEventHandler
from openai.types.beta import Assistant, Thread
from openai.types.beta.assistant_stream_event import AssistantStreamEvent
from openai.types.beta.threads import Message, MessageDeltaEvent, Run, TextDelta, TextDeltaBlock
from openai.types.beta.threads.runs import RunStep, ToolCall, ToolCallDelta

from shared.bus import Subjects
from tests.infra import Infra
from threadlog.stack import Service, Stack

from .runs_helpers import marker, message_text, sdk, validate, wait_ended, wait_for, words
from .sse_client import Event, Parser, SSEStream

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks the Assistants API so

SLOW_MODEL = "threadlog-offline+delay20"  # 20 ms per token
# Runs that must still be streaming when a test reconnects: `say 60 words` streams for ~2.4 s (leeway for a
# busy machine: the cut comes ~0.3 s in).
LIVE_MODEL = "threadlog-offline+delay40"
# The assistants' model. With fast models a live stream gets the reply in few deltas (see
# test_live_stream_of_a_fast_run_keeps_its_deltas), so the SDK tests use a model that paces its tokens.
MODEL = SLOW_MODEL
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
# The order the hosted service (and the SDK's helpers) use for a text run; "delta" stands for one or more.
TEXT_RUN = ["thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.step.created",
            "thread.run.step.in_progress", "thread.message.created", "thread.message.in_progress",
            "thread.message.delta", "thread.message.completed", "thread.run.step.completed", "thread.run.completed"]
PREAMBLE = 7  # events of a text run before its first message delta
SCHEMAS = {"thread.created": "ThreadObject", "thread.run.step.delta": "RunStepDeltaObject",
           "thread.message.delta": "MessageDeltaObject"}
FIGURES: dict[str, float] = {}  # timings noticed along the way, printed at the end of the module (pytest -s)


@pytest.fixture(scope="module")
def stack(infra: Infra) -> Iterator[Stack]:
    stack = infra.new_stack("streaming", extra_env={"THREADLOG_POLL_AFTER_MS": "50"})
    try:
        stack.start()  # inside the try: a service that fails to start must not leave the others running
        yield stack
    finally:
        stack.stop()
        if FIGURES:
            print("\nstreaming figures:", json.dumps({k: round(v, 4) for k, v in FIGURES.items()}))


@pytest.fixture(scope="module")
def client(stack: Stack) -> openai.OpenAI:
    return sdk(stack)


@pytest.fixture(scope="module")
def assistant(client: openai.OpenAI) -> Assistant:
    return client.beta.assistants.create(model=MODEL, name="streamer")


@pytest.fixture(scope="module")
def tool_assistant(client: openai.OpenAI) -> Assistant:
    return client.beta.assistants.create(model=MODEL, name="weather", tools=[WEATHER_TOOL])


@pytest.fixture(scope="module")
def gateway2(stack: Stack) -> Service:
    return stack.add_gateway()


# --- helpers ------------------------------------------------------------------------------------------------


def collapse(names: Sequence[str]) -> list[str]:
    """Event names with each run of deltas folded into one."""
    out: list[str] = []
    for name in names:
        if not (out and name.endswith(".delta") and out[-1] == name):
            out.append(name)
    return out


def key(event_id: str | None) -> tuple[int, int]:
    assert event_id is not None
    version, _, k = event_id.partition(".")
    return int(version), int(k or 0)


def delta_text(events: list[Event]) -> str:
    out = ""
    for e in events:
        if e.event == "thread.message.delta":
            for part in e.json()["delta"]["content"]:
                out += part["text"]["value"]
    return out


def schema_of(name: str) -> str:
    if name in SCHEMAS:
        return SCHEMAS[name]
    if name.startswith("thread.run.step."):
        return "RunStepObject"
    if name.startswith("thread.run."):
        return "RunObject"
    assert name.startswith("thread.message."), name
    return "MessageObject"


def check_frames(events: list[Event]) -> None:
    """A well-formed run stream: JSON data on every event, increasing ids, payloads of OpenAI's schemas, `done`."""
    assert events and events[-1] == Event(None, "done", "[DONE]"), events[-3:]
    body = events[:-1]
    assert all(e.event and e.event != "done" for e in body)
    keys = [key(e.id) for e in body]
    assert keys == sorted(set(keys)), "ids must strictly increase"
    for e in body:
        validate(e.json(), schema_of(e.event or ""))


def new_thread(client: openai.OpenAI, text: str) -> str:
    return client.beta.threads.create(messages=[{"role": "user", "content": f"{marker()} {text}"}]).id


def attach(port: int, thread_id: str, run_id: str, api_key: str, *, last_id: str | None = None,
           query: str = "", timeout_s: float = 15.0) -> SSEStream:
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    return SSEStream(port, f"/v1/threads/{thread_id}/runs/{run_id}/stream{query}", api_key=api_key,
                     headers=headers, timeout_s=timeout_s)


def read_attach(port: int, thread_id: str, run_id: str, api_key: str, **kwargs: Any) -> list[Event]:
    with attach(port, thread_id, run_id, api_key, **kwargs) as stream:
        assert stream.status == 200, stream.body()
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = stream.read()
        assert stream.ended
        return events


def stored_message(client: openai.OpenAI, thread_id: str, run_id: str) -> Message:
    """The run's assistant message as messages.list returns it, once the read models hold it completed (right
    after a stream ends they may not yet: see test_read_right_after_the_stream)."""

    def completed() -> Message | None:
        data = client.beta.threads.messages.list(thread_id, run_id=run_id).data
        return data[0] if len(data) == 1 and data[0].status == "completed" else None

    return wait_for("the run's message, completed, in the read models", completed, 5)


def assistant_text(client: openai.OpenAI, thread_id: str, run_id: str) -> str:
    return message_text(stored_message(client, thread_id, run_id))


def start_slow_run(client: openai.OpenAI, assistant: Assistant, n_words: int = 60,
                   model: str = LIVE_MODEL) -> tuple[str, str]:
    thread_id = new_thread(client, f"say {n_words} words")
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id, model=model)
    return thread_id, run.id


def run_status(client: openai.OpenAI, thread_id: str, run_id: str) -> str:
    return client.beta.threads.runs.retrieve(run_id, thread_id=thread_id).status


class Collector(AssistantEventHandler):
    """What an SDK user's handler sees: every event name, the text and tool-call deltas, messages done."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.text: list[str] = []
        self.arguments: list[str] = []
        self.done_messages: list[Message] = []
        self.done_calls: list[ToolCall] = []
        self.done_steps: list[RunStep] = []

    def on_event(self, event: AssistantStreamEvent) -> None:
        self.names.append(event.event)

    def on_text_delta(self, delta: TextDelta, snapshot: Any) -> None:
        self.text.append(delta.value or "")

    def on_tool_call_delta(self, delta: ToolCallDelta, snapshot: ToolCall) -> None:
        if delta.type == "function" and delta.function is not None:
            self.arguments.append(delta.function.arguments or "")

    def on_tool_call_done(self, tool_call: ToolCall) -> None:
        self.done_calls.append(tool_call)

    def on_run_step_done(self, run_step: RunStep) -> None:
        self.done_steps.append(run_step)

    def on_message_done(self, message: Message) -> None:
        self.done_messages.append(message)


# --- through the SDK ------------------------------------------------------------------------------------------


def test_sdk_stream_text_run(client: openai.OpenAI, assistant: Assistant) -> None:
    thread_id = new_thread(client, "say 12 words")
    handler = Collector()
    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant.id,
                                         event_handler=handler) as stream:
        stream.until_done()
        [final] = stream.get_final_messages()
        run = stream.get_final_run()
    assert handler.names[-1] == "thread.run.completed" and collapse(handler.names) == TEXT_RUN
    assert 2 <= handler.names.count("thread.message.delta") <= 12
    text = "".join(handler.text)
    assert text == words(12)
    assert message_text(final) == text and [m.id for m in handler.done_messages] == [final.id]
    assert run.status == "completed" and run.thread_id == thread_id and final.run_id == run.id
    # What the stream said is what a later read returns.
    stored = stored_message(client, thread_id, run.id)
    assert stored.id == final.id and message_text(stored) == text
    assert client.beta.threads.messages.list(thread_id, order="desc", limit=1).data[0].id == final.id


def test_sdk_text_deltas_iterator(client: openai.OpenAI, assistant: Assistant) -> None:
    thread_id = new_thread(client, "say 9 words")
    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant.id) as stream:
        pieces = list(stream.text_deltas)
        run = stream.get_final_run()
    assert len(pieces) >= 2 and "".join(pieces) == words(9)
    assert run.status == "completed"
    assert assistant_text(client, thread_id, run.id) == words(9)


def test_sdk_create_stream_true(client: openai.OpenAI, assistant: Assistant) -> None:
    thread_id = new_thread(client, "say 7 words")
    events = list(client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id, stream=True))
    assert collapse([e.event for e in events]) == TEXT_RUN
    text = "".join(part.text.value or "" for e in events if isinstance(e.data, MessageDeltaEvent)
                   for part in e.data.delta.content or [] if isinstance(part, TextDeltaBlock) and part.text)
    run = events[-1].data
    assert isinstance(run, Run) and run.status == "completed"
    assert text == words(7) == assistant_text(client, thread_id, run.id)
    assert {e.data.id for e in events if isinstance(e.data, Run)} == {run.id}


def test_sdk_create_and_run_stream(client: openai.OpenAI, stack: Stack, assistant: Assistant) -> None:
    tag = marker()
    events = list(client.beta.threads.create_and_run(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": f"{tag} say 5 words"}]},
        stream=True))
    names: list[str] = [e.event for e in events]
    assert names[0] == "thread.created" and collapse(names[1:]) == TEXT_RUN
    thread, run = events[0].data, events[-1].data
    assert isinstance(thread, Thread) and isinstance(run, Run)
    assert run.thread_id == thread.id and run.status == "completed"
    assert assistant_text(client, thread.id, run.id) == words(5)
    user = client.beta.threads.messages.list(thread.id, order="asc").data[0]
    assert message_text(user) == f"{tag} say 5 words"

    # The raw frames: thread.created carries a Thread object, the rest as for any run.
    with SSEStream(stack.port, "/v1/threads/runs", api_key=stack.api_key, method="POST",
                   body={"assistant_id": assistant.id, "stream": True,
                         "thread": {"messages": [{"role": "user", "content": "say 3 words"}]}}) as raw:
        assert raw.status == 200
        frames = raw.read()
    check_frames(frames)
    assert frames[0].event == "thread.created" and frames[0].id == "1.0"
    assert collapse([e.event or "" for e in frames[1:-1]]) == TEXT_RUN
    assert delta_text(frames) == words(3)


def test_raw_create_stream(client: openai.OpenAI, stack: Stack, assistant: Assistant) -> None:
    """The frames of `POST /runs` with stream: ids, schemas, and the same run as an attach stream tells it."""
    thread_id = new_thread(client, "say 20 words")
    with SSEStream(stack.port, f"/v1/threads/{thread_id}/runs", api_key=stack.api_key, method="POST",
                   body={"assistant_id": assistant.id, "model": SLOW_MODEL, "stream": True}) as raw:
        assert raw.status == 200 and raw.headers["content-type"].startswith("text/event-stream")
        assert raw.headers.get("cache-control") == "no-cache"
        events: list[Event] = []
        first_delta_s = None
        for e in raw:
            events.append(e)
            if first_delta_s is None and e.event == "thread.message.delta":
                first_delta_s = time.monotonic() - raw.opened_at
        total_s = time.monotonic() - raw.opened_at
        assert raw.ended
    FIGURES["create_stream_first_delta_s"] = first_delta_s or -1
    FIGURES["create_stream_total_s"] = total_s
    check_frames(events)
    body = events[:-1]
    assert collapse([e.event or "" for e in body]) == TEXT_RUN
    run_id = body[0].json()["id"]
    assert all(e.json()["id"] == run_id for e in body if e.event in {"thread.run.created", "thread.run.completed"})

    # Delta ids: `<version of thread.message.created>.<2 + length of the text held after the delta>`.
    created = next(e for e in body if e.event == "thread.message.created")
    message_id, anchor = created.json()["id"], key(created.id)[0]
    held = ""
    for e in body:
        if e.event == "thread.message.delta":
            assert e.json()["id"] == message_id
            held += e.json()["delta"]["content"][0]["text"]["value"]
            assert e.id == f"{anchor}.{2 + len(held)}"
    step = next(e.json() for e in body if e.event == "thread.run.step.completed")
    assert step["step_details"]["message_creation"]["message_id"] == message_id
    completed = next(e.json() for e in body if e.event == "thread.message.completed")
    assert completed["content"][0]["text"]["value"] == held == words(20)
    run = body[-1].json()
    assert run["status"] == "completed" and run["usage"]["completion_tokens"] > 0
    assert assistant_text(client, thread_id, run_id) == held

    # Attaching to the run afterwards tells exactly the same story, ids included.
    assert read_attach(stack.port, thread_id, run_id, stack.api_key) == events


def test_read_right_after_the_stream(client: openai.OpenAI, assistant: Assistant) -> None:
    for _ in range(6):
        thread_id = new_thread(client, "say 6 words")
        with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant.id) as stream:
            text = "".join(stream.text_deltas)
            run = stream.get_final_run()
        assert run.status == "completed" and text == words(6)
        assert client.beta.threads.runs.retrieve(run.id, thread_id=thread_id).status == "completed"
        messages = client.beta.threads.messages.list(thread_id, run_id=run.id).data
        assert [(m.status, message_text(m)) for m in messages] == [("completed", text)]


def test_live_stream_of_a_fast_run_keeps_its_deltas(client: openai.OpenAI, stack: Stack,
                                                    assistant: Assistant) -> None:
    for _ in range(3):
        thread_id = new_thread(client, "say 12 words")
        with SSEStream(stack.port, f"/v1/threads/{thread_id}/runs", api_key=stack.api_key, method="POST",
                       body={"assistant_id": assistant.id, "model": "threadlog-offline", "stream": True}) as raw:
            live = raw.read()
        assert delta_text(live) == words(12)
        replay = read_attach(stack.port, thread_id, live[0].json()["id"], stack.api_key)
        assert [e.event for e in replay].count("thread.message.delta") == 12
        assert live == replay


def test_function_tool_run_streamed(client: openai.OpenAI, stack: Stack, tool_assistant: Assistant) -> None:
    thread_id = new_thread(client, 'call get_weather {"city": "Paris"}')
    first = Collector()
    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=tool_assistant.id,
                                         event_handler=first) as stream:
        stream.until_done()
        run = stream.get_final_run()
        [tool_step] = stream.get_final_run_steps()
    assert collapse(first.names) == [
        "thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.step.created",
        "thread.run.step.in_progress", "thread.run.step.delta", "thread.run.requires_action"]
    assert run.status == "requires_action" and run.required_action is not None
    [call] = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert first.names.count("thread.run.step.delta") >= 2
    assert "".join(first.arguments) == call.function.arguments
    assert [c.id for c in first.done_calls] == [call.id]  # the SDK's on_tool_call_done, at requires_action
    assert tool_step.type == "tool_calls"
    [step_call] = tool_step.step_details.tool_calls  # type: ignore[union-attr]
    assert step_call.id == call.id and step_call.function.arguments == call.function.arguments  # type: ignore[union-attr]

    output = '{"temperature_c": 19}'
    second = Collector()
    with client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=thread_id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": output}],
            event_handler=second) as stream:
        stream.until_done()
        done = stream.get_final_run()
        [final] = stream.get_final_messages()
    assert done.id == run.id and done.status == "completed"
    # The submission's stream: the run resumes (queued, the tool step completes, in_progress), then a text run.
    head = second.names[:second.names.index("thread.run.step.created")]
    assert sorted(head) == ["thread.run.in_progress", "thread.run.queued", "thread.run.step.completed"]
    assert head[-1] == "thread.run.in_progress"
    assert collapse(second.names[len(head):]) == TEXT_RUN[3:]
    assert "thread.run.requires_action" not in second.names and "thread.run.created" not in second.names
    text = "".join(second.text)
    assert text == message_text(final) == f"Tool results: get_weather: {output}"
    assert assistant_text(client, thread_id, run.id) == text
    # The tool step completes in the second stream, with the output.
    done_step, message_step = second.done_steps
    assert done_step.id == tool_step.id and done_step.status == "completed"
    assert message_step.step_details.message_creation.message_id == final.id  # type: ignore[union-attr]
    assert done_step.step_details.tool_calls[0].function.output == output  # type: ignore[union-attr]

    # The whole run, attached afterwards: both halves in one stream, every payload of OpenAI's schemas.
    events = read_attach(stack.port, thread_id, run.id, stack.api_key)
    check_frames(events)
    names = [e.event or "" for e in events[:-1]]
    assert collapse(names) == collapse(first.names + second.names)
    assert delta_text(events) == text
    step_deltas = [e.json() for e in events if e.event == "thread.run.step.delta"]
    assert step_deltas[0]["delta"]["step_details"]["tool_calls"][0]["id"] == call.id
    assert "".join(d["delta"]["step_details"]["tool_calls"][0]["function"]["arguments"] for d in step_deltas) \
        == call.function.arguments


# --- resuming the attach stream --------------------------------------------------------------------------------


def read_split(port: int, port2: int, thread_id: str, run_id: str, api_key: str, n: int = PREAMBLE + 8,
               live: bool = False) -> tuple[list[Event], list[Event]]:
    """Read `n` events from one attach stream, drop it, and read the rest after its last id (from `port2`)."""
    with attach(port, thread_id, run_id, api_key) as stream:
        assert stream.status == 200
        part1 = stream.read(n)
    assert len(part1) == n
    resumed_at = time.monotonic()
    part2 = read_attach(port2, thread_id, run_id, api_key, last_id=part1[-1].id)
    if live:
        # A finished run's rest comes at once; a live one's as the model produces it (~2 s left here).
        took = time.monotonic() - resumed_at
        FIGURES.setdefault("resumed_live_rest_s", took)
        assert took > 0.5, f"the run was no longer live when we resumed (the rest took {took:.2f}s)"
    return part1, part2


def check_resumed(part1: list[Event], part2: list[Event], whole: list[Event], n_words: int) -> None:
    assert part1[-1].event == "thread.message.delta", "the cut must fall among the deltas"
    assert part1 + part2 == whole
    check_frames(whole)
    assert delta_text(part1) + delta_text(part2) == words(n_words)


def test_resume_live(client: openai.OpenAI, stack: Stack, assistant: Assistant) -> None:
    thread_id, run_id = start_slow_run(client, assistant)
    part1, part2 = read_split(stack.port, stack.port, thread_id, run_id, stack.api_key,
                              live=True)
    whole = read_attach(stack.port, thread_id, run_id, stack.api_key)
    check_resumed(part1, part2, whole, 60)
    assert assistant_text(client, thread_id, run_id) == words(60)


def test_resume_finished(client: openai.OpenAI, stack: Stack, assistant: Assistant) -> None:
    thread_id, run_id = start_slow_run(client, assistant, model="threadlog-offline")
    wait_ended(client, thread_id, run_id, 10)
    part1, part2 = read_split(stack.port, stack.port, thread_id, run_id, stack.api_key)
    whole = read_attach(stack.port, thread_id, run_id, stack.api_key)
    check_resumed(part1, part2, whole, 60)
    # From any event at all, the rest is exactly what follows it (after the last one: only `done`).
    for cut in (1, 2, PREAMBLE - 1, PREAMBLE, PREAMBLE + 1, PREAMBLE + 30, PREAMBLE + 60, len(whole) - 2):
        assert read_attach(stack.port, thread_id, run_id, stack.api_key, last_id=whole[cut - 1].id) == whole[cut:]


def test_resume_on_another_gateway(client: openai.OpenAI, stack: Stack, assistant: Assistant,
                                   gateway2: Service) -> None:
    assert gateway2.probe_port is not None
    thread_id, run_id = start_slow_run(client, assistant)
    part1, part2 = read_split(stack.port, gateway2.probe_port, thread_id, run_id, stack.api_key,
                              live=True)
    whole = read_attach(stack.port, thread_id, run_id, stack.api_key)
    check_resumed(part1, part2, whole, 60)
    assert read_attach(gateway2.probe_port, thread_id, run_id, stack.api_key) == whole


def purge_deltas(stack: Stack, thread_id: str, run_id: str) -> tuple[int, int]:
    """Delete the run's retained deltas from JetStream; (kept before, kept after)."""
    subjects = Subjects(stack.env["THREADLOG_NATS_PREFIX"])
    subject = subjects.deltas(thread_id, run_id)

    async def go() -> tuple[int, int]:
        nc = await nats.connect(stack.env["NATS_URL"])
        try:
            js = nc.jetstream()

            async def kept() -> int:
                info = await js.stream_info(subjects.deltas_stream, subjects_filter=subject)
                return (info.state.subjects or {}).get(subject, 0)

            before = await kept()
            await js.purge_stream(subjects.deltas_stream, subject=subject)
            return before, await kept()
        finally:
            await nc.close()

    return asyncio.run(go())


def test_resume_after_deltas_expired(client: openai.OpenAI, stack: Stack, assistant: Assistant) -> None:
    thread_id, run_id = start_slow_run(client, assistant, model="threadlog-offline")
    wait_ended(client, thread_id, run_id, 10)
    whole = read_attach(stack.port, thread_id, run_id, stack.api_key)
    check_frames(whole)
    assert purge_deltas(stack, thread_id, run_id) == (60, 0)

    cut = PREAMBLE + 8
    part1 = whole[:cut]
    part2 = read_attach(stack.port, thread_id, run_id, stack.api_key, last_id=part1[-1].id)
    final = words(60)
    held = delta_text(part1)
    # The rest of the message comes in one piece, from the completed message in the log, then the run goes on.
    remainder, rest = part2[0], part2[1:]
    anchor = key(next(e for e in whole if e.event == "thread.message.created").id)[0]
    assert remainder.event == "thread.message.delta" and remainder.id == f"{anchor}.{2 + len(final)}"
    assert held + delta_text(part2) == final
    first_after = next(i for i, e in enumerate(whole) if e.event == "thread.message.completed")
    assert rest == whole[first_after:]
    check_frames(part2)

    # A fresh attach now gets the whole message as one delta, and otherwise the same stream.
    again = read_attach(stack.port, thread_id, run_id, stack.api_key)
    check_frames(again)
    assert [e.event for e in again].count("thread.message.delta") == 1 and delta_text(again) == final
    assert again[:PREAMBLE] == whole[:PREAMBLE] and again[PREAMBLE + 1:] == whole[first_after:]


def test_resume_tool_step_after_deltas_expired(client: openai.OpenAI, stack: Stack,
                                               tool_assistant: Assistant) -> None:
    """Mid tool-call arguments, deltas gone: the rest of the arguments comes from requires_action's calls."""
    thread_id = new_thread(client, 'call get_weather {"city": "Paris"}')
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=tool_assistant.id,
                                                   model="threadlog-offline", poll_interval_ms=50)
    assert run.status == "requires_action" and run.required_action is not None
    [call] = run.required_action.submit_tool_outputs.tool_calls
    client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}],
        poll_interval_ms=50)
    whole = read_attach(stack.port, thread_id, run.id, stack.api_key)
    step_deltas = [i for i, e in enumerate(whole) if e.event == "thread.run.step.delta"]
    assert len(step_deltas) >= 3
    kept, _ = purge_deltas(stack, thread_id, run.id)
    assert kept > len(step_deltas)  # the tool step's and the message's

    def arguments(events: list[Event]) -> str:
        return "".join(e.json()["delta"]["step_details"]["tool_calls"][0]["function"]["arguments"]
                       for e in events if e.event == "thread.run.step.delta")

    requires_action = next(i for i, e in enumerate(whole) if e.event == "thread.run.requires_action")
    assert requires_action == step_deltas[-1] + 1
    for cut in (step_deltas[0], step_deltas[1], step_deltas[-2]):
        part1 = whole[:cut + 1]
        part2 = read_attach(stack.port, thread_id, run.id, stack.api_key, last_id=part1[-1].id)
        check_frames(part2)
        assert arguments(part1) + arguments(part2) == call.function.arguments
        [remainder] = [e for e in part2 if e.event == "thread.run.step.delta"]
        assert remainder.id == whole[step_deltas[-1]].id  # the step's full length
        assert "id" not in remainder.json()["delta"]["step_details"]["tool_calls"][0]  # the call was started
        assert part2[1] == whole[requires_action]
        assert without_deltas(part2[1:]) == without_deltas(whole[requires_action:])
        assert delta_text(part2) == "Tool results: get_weather: sunny"


def test_resume_past_the_end(client: openai.OpenAI, stack: Stack, assistant: Assistant) -> None:
    thread_id, run_id = start_slow_run(client, assistant, n_words=3, model="threadlog-offline")
    wait_ended(client, thread_id, run_id, 10)
    last = read_attach(stack.port, thread_id, run_id, stack.api_key)[-2]
    assert last.event == "thread.run.completed"
    # Resuming right after the last event: only `done` (this works).
    assert read_attach(stack.port, thread_id, run_id, stack.api_key, last_id=last.id) == [Event(None, "done", "[DONE]")]
    # Past it: ends as promptly, or is refused.
    past = f"{key(last.id)[0] + 1}.0"
    with attach(stack.port, thread_id, run_id, stack.api_key, last_id=past, timeout_s=2) as stream:
        if stream.status == 200:
            assert stream.read() == [Event(None, "done", "[DONE]")]
        else:
            assert stream.status == 400


def test_after_query_and_bad_ids(client: openai.OpenAI, stack: Stack, assistant: Assistant) -> None:
    thread_id, run_id = start_slow_run(client, assistant, n_words=10, model="threadlog-offline")
    wait_ended(client, thread_id, run_id, 10)
    whole = read_attach(stack.port, thread_id, run_id, stack.api_key)
    cut = PREAMBLE + 3
    by_query = read_attach(stack.port, thread_id, run_id, stack.api_key, query=f"?after={whole[cut - 1].id}")
    assert by_query == whole[cut:]
    assert by_query == read_attach(stack.port, thread_id, run_id, stack.api_key, last_id=whole[cut - 1].id)

    for how in ({"query": "?after=banana"}, {"last_id": "7.x"}, {"query": "?after=..3"}):
        with attach(stack.port, thread_id, run_id, stack.api_key, **how) as stream:  # type: ignore[arg-type]
            assert stream.status == 400, how
            body = stream.body()
        validate(body, "ErrorResponse")
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == "after", body

    other_thread = client.beta.threads.create().id
    for path_thread, path_run in ((thread_id, "run_doesnotexist000000000000"),
                                  ("thread_doesnotexist00000000000", run_id), (other_thread, run_id)):
        with attach(stack.port, path_thread, path_run, stack.api_key) as stream:
            assert stream.status == 404
            body = stream.body()
        validate(body, "ErrorResponse")
        assert body["error"]["type"] == "invalid_request_error"
    with SSEStream(stack.port, f"/v1/threads/{thread_id}/runs/{run_id}/stream", api_key="wrong-key") as stream:
        assert stream.status == 401


# --- the thread feed ---------------------------------------------------------------------------------------------

FEED_RUN = ["thread.run.created", "thread.run.in_progress", "thread.run.step.created", "thread.message.created",
            "thread.message.completed", "thread.run.step.completed", "thread.run.completed"]


def read_feed_until(stream: SSEStream, stop: str, deadline_s: float = 10.0) -> list[Event]:
    out: list[Event] = []
    end = time.monotonic() + deadline_s
    for e in stream:
        out.append(e)
        if e.event == stop or time.monotonic() > end:
            break
    return out


def assert_stays_open(stream: SSEStream, quiet_s: float = 1.0) -> None:
    """Nothing more to say, and no end either: the read times out (heartbeats come every 15 s)."""
    stream.set_timeout(quiet_s)
    with pytest.raises(TimeoutError):
        stream.read(1)
    assert not stream.ended


def test_thread_feed(client: openai.OpenAI, stack: Stack, assistant: Assistant) -> None:
    thread_id = new_thread(client, "say 4 words")
    path = f"/v1/threads/{thread_id}/events"
    with SSEStream(stack.port, path, api_key=stack.api_key, timeout_s=2.5) as feed:
        assert feed.status == 200 and feed.headers["content-type"].startswith("text/event-stream")
        before = feed.read(2)  # what the thread already holds
        run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id)
        live = read_feed_until(feed, "thread.run.completed")
        assert_stays_open(feed)
    events = before + live
    assert [e.event for e in events] == ["thread.created", "thread.message.created", *FEED_RUN]
    # Ids are the thread's stream versions (`<version>` or `<version>.0`), one per log event, no gaps.
    assert [key(e.id) for e in events] == [(v, 0) for v in range(1, len(events) + 1)]
    for e in events:
        data = e.json()
        assert data["stream_version"] == key(e.id)[0] and data["type"] == e.event
        assert data["data"]["type"] == e.event and data["data"]["thread_id"] == thread_id
    assert all(e.json()["data"]["run_id"] == run.id for e in events if e.event and e.event.startswith("thread.run"))
    completed = next(e.json()["data"] for e in events if e.event == "thread.message.completed")
    assert completed["content"][0]["text"]["value"] == words(4) == assistant_text(client, thread_id, run.id)
    positions = [e.json()["position"] for e in events]
    assert positions == sorted(positions)

    # Resuming: exactly what came after the id, nothing twice, then whatever happens next, live.
    with SSEStream(stack.port, path, api_key=stack.api_key, headers={"Last-Event-ID": "4"}, timeout_s=2.5) as feed:
        assert feed.status == 200
        resumed = feed.read(len(events) - 4)
        assert resumed == events[4:]
        client.beta.threads.messages.create(thread_id, role="user", content="one more")
        [added] = feed.read(1)
        assert_stays_open(feed)
    assert key(added.id) == (len(events) + 1, 0) and added.event == "thread.message.created"
    assert added.json()["data"]["content"][0]["text"]["value"] == "one more"
    with SSEStream(stack.port, path + f"?after={len(events)}", api_key=stack.api_key, timeout_s=2.5) as feed:
        assert feed.read(1) == [added]
        assert_stays_open(feed)
    with SSEStream(stack.port, path, api_key=stack.api_key, headers={"Last-Event-ID": "x"}) as feed:
        assert feed.status == 400
        validate(feed.body(), "ErrorResponse")
    with SSEStream(stack.port, "/v1/threads/thread_doesnotexist00000000000/events", api_key=stack.api_key) as feed:
        assert feed.status == 404


# --- clients that go away, and many clients -----------------------------------------------------------------------


def test_disconnect_does_not_cancel(client: openai.OpenAI, stack: Stack, assistant: Assistant) -> None:
    """A client that drops its stream mid-reply, whether it started the run or attached to it: the run goes on."""
    attached_thread, attached_run = start_slow_run(client, assistant)
    with attach(stack.port, attached_thread, attached_run, stack.api_key) as stream:
        assert stream.read(PREAMBLE + 1)[-1].event == "thread.message.delta"

    thread_id = new_thread(client, "say 60 words")
    with SSEStream(stack.port, f"/v1/threads/{thread_id}/runs", api_key=stack.api_key, method="POST",
                   body={"assistant_id": assistant.id, "model": LIVE_MODEL, "stream": True}) as raw:
        assert raw.status == 200
        seen = raw.read(PREAMBLE + 1)
    assert seen[-1].event == "thread.message.delta"
    run_id = seen[0].json()["id"]
    assert run_status(client, thread_id, run_id) in ("queued", "in_progress")

    for thread, run in ((thread_id, run_id), (attached_thread, attached_run)):
        assert wait_ended(client, thread, run, 15).status == "completed"
        assert assistant_text(client, thread, run) == words(60)


class Watched(NamedTuple):
    connected_s: float  # when the response headers came
    first_event_s: float
    completed_s: float  # when thread.run.completed came
    events: list[Event]


async def watch(session: aiohttp.ClientSession, url: str, api_key: str, t0: float) -> Watched:
    """One raw client, reading its attach stream to the end."""
    async with session.get(url, headers={"Authorization": f"Bearer {api_key}"}) as response:
        assert response.status == 200
        connected, first, completed = time.monotonic() - t0, -1.0, -1.0
        parser, events = Parser(), list[Event]()
        while True:
            line = await response.content.readline()
            if not line:
                return Watched(connected, first, completed, events)
            event = parser.feed(line.decode().rstrip("\r\n"))
            if event is not None:
                events.append(event)
                if len(events) == 1:
                    first = time.monotonic() - t0
                if event.event == "thread.run.completed":
                    completed = time.monotonic() - t0


class Crowd(NamedTuple):
    thread_id: str
    run_id: str
    n_words: int
    watched: list[Watched]
    replay: list[Event]  # one attach stream read after the run ended


@pytest.fixture(scope="module")
def crowd(client: openai.OpenAI, stack: Stack, assistant: Assistant) -> Crowd:
    """200 raw clients attached at once, on one gateway, to the same live run: the model waits 3 s before its
    first token (time for every client to attach), then streams 80 words at 25 ms a token."""
    n_clients, n_words = 200, 80
    thread_id, run_id = start_slow_run(client, assistant, n_words=n_words,
                                       model="threadlog-offline+first3000+delay25")
    url = f"{stack.base_url}/threads/{thread_id}/runs/{run_id}/stream"

    async def go() -> list[Watched]:
        timeout = aiohttp.ClientTimeout(total=45, sock_read=15)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
            t0 = time.monotonic()
            return await asyncio.gather(*(watch(session, url, stack.api_key, t0) for _ in range(n_clients)))

    started = time.monotonic()
    watched = asyncio.run(go())
    FIGURES["crowd_wall_s"] = time.monotonic() - started
    FIGURES["crowd_last_connected_s"] = max(w.connected_s for w in watched)
    FIGURES["crowd_last_first_event_s"] = max(w.first_event_s for w in watched)
    FIGURES["crowd_run_completed_s"] = min(w.completed_s for w in watched)
    return Crowd(thread_id, run_id, n_words, watched, read_attach(stack.port, thread_id, run_id, stack.api_key))


def without_deltas(events: list[Event]) -> list[Event]:
    return [e for e in events if e.event != "thread.message.delta"]


def test_many_clients_one_live_run(client: openai.OpenAI, crowd: Crowd) -> None:
    final = words(crowd.n_words)
    assert assistant_text(client, crowd.thread_id, crowd.run_id) == final
    check_frames(crowd.replay)
    assert delta_text(crowd.replay) == final
    # They were live: every client was connected, and had its first event, before any heard the run complete.
    assert max(w.first_event_s for w in crowd.watched) < min(w.completed_s for w in crowd.watched)
    for w in crowd.watched:
        # In order, ending with done (payloads: the log events are the replay's, checked against the schemas).
        assert w.events[-1] == Event(None, "done", "[DONE]")
        keys = [key(e.id) for e in w.events[:-1]]
        assert keys == sorted(set(keys))
        assert collapse([e.event or "" for e in w.events[:-1]]) == TEXT_RUN
        assert delta_text(w.events) == final
        # Every log event, byte for byte as the replay has it (deltas: see the next test).
        assert without_deltas(w.events) == without_deltas(crowd.replay)


def test_many_clients_see_identical_streams(crowd: Crowd) -> None:
    differing = [i for i, w in enumerate(crowd.watched) if w.events != crowd.replay]
    assert not differing, describe_differences([crowd.replay] + [w.events for w in crowd.watched],
                                               [i + 1 for i in differing])


def describe_differences(lists: list[list[Event]], differing: list[int]) -> str:
    counts = sorted({sum(e.event == "thread.message.delta" for e in events) for events in lists})
    other = lists[differing[0]]
    at = next((i for i, (a, b) in enumerate(zip(lists[0], other, strict=False)) if a != b), None)
    where = f"first difference at event {at}: {lists[0][at][:2] if at is not None else None} vs " \
            f"{other[at][:2] if at is not None else None}"
    return f"{len(differing)} of {len(lists) - 1} clients saw a different stream; delta counts {counts}; {where}"
