"""Assistants and runs through the official openai SDK, against a stack of their own with the offline model.

The stack's runs expire after 4 s (THREADLOG_RUN_EXPIRES_S), so the expiry test is quick; every other run
here ends (or is cancelled) well inside that.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.beta import Assistant

from threadlog.stack import Stack

from .infra import Infra
from .runs_helpers import ModelLog, marker, message_text, raw_json, sdk, validate, wait_ended, wait_for, words

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks the Assistants API so
EXPIRES_S = 4
POLL = {"poll_interval_ms": 50}
INSTRUCTIONS = "You are a terse test assistant."
REPLY_PREFIX = "This is the threadlog offline model. You said: "
SLOW_MODEL = "threadlog-offline+delay200"  # 200 ms per token: `say 100 words` would take 20 s
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def runs_stack(infra: Infra) -> Iterator[Stack]:
    stack = infra.new_stack("runs", extra_env={"THREADLOG_POLL_AFTER_MS": "50",
                                               "THREADLOG_RUN_EXPIRES_S": str(EXPIRES_S)})
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def client(runs_stack: Stack) -> openai.OpenAI:
    return sdk(runs_stack)


@pytest.fixture(scope="module")
def model_log(runs_stack: Stack) -> ModelLog:
    return ModelLog(runs_stack)


@pytest.fixture(scope="module")
def assistant(client: openai.OpenAI) -> Assistant:
    return client.beta.assistants.create(model="threadlog-offline", name="runner", instructions=INSTRUCTIONS)


@pytest.fixture(scope="module")
def tool_assistant(client: openai.OpenAI) -> Assistant:
    return client.beta.assistants.create(model="threadlog-offline", name="weather", instructions=INSTRUCTIONS,
                                         tools=[WEATHER_TOOL])


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    validate(body, "ErrorResponse")
    return body["error"]  # type: ignore[no-any-return]


def one_request(model_log: ModelLog, text: str) -> dict[str, Any]:
    """The single chat request whose prompt contains `text`, as the model received it."""
    requests = model_log.with_text(text)
    assert len(requests) == 1, f"expected one model request with {text!r}, got {len(requests)}"
    return requests[0]["body"]  # type: ignore[no-any-return]


# --- assistants -----------------------------------------------------------------------------------------


def test_assistant_crud(client: openai.OpenAI) -> None:
    raw = client.beta.assistants.with_raw_response.create(
        model="threadlog-offline", name="crud", description="for the test", instructions="Be brief.",
        tools=[WEATHER_TOOL], metadata={"team": "qa"}, temperature=0.3, top_p=0.9,
        response_format={"type": "json_object"})
    body = raw_json(raw)
    validate(body, "AssistantObject")
    created = raw.parse()
    assert created.id.startswith("asst_") and created.object == "assistant"
    assert abs(created.created_at - time.time()) < 60
    assert (created.model, created.name, created.description, created.instructions) == (
        "threadlog-offline", "crud", "for the test", "Be brief.")
    assert body["tools"] == [WEATHER_TOOL]
    assert body["metadata"] == {"team": "qa"} and body["temperature"] == 0.3 and body["top_p"] == 0.9
    assert body["response_format"] == {"type": "json_object"}

    got = client.beta.assistants.with_raw_response.retrieve(created.id)
    validate(raw_json(got), "AssistantObject")
    assert raw_json(got) == body

    # Partial update: only the fields sent change.
    updated = client.beta.assistants.with_raw_response.update(created.id, name="crud-2", metadata={"team": "ops"})
    validate(raw_json(updated), "AssistantObject")
    after = client.beta.assistants.retrieve(created.id)
    assert after.name == "crud-2" and after.metadata == {"team": "ops"}
    assert (after.instructions, after.description, after.temperature, after.top_p) == (
        "Be brief.", "for the test", 0.3, 0.9)
    assert [t.function.name for t in after.tools] == ["get_weather"]  # type: ignore[union-attr]
    assert after.response_format is not None and after.response_format.type == "json_object"  # type: ignore[union-attr]
    cleared = client.beta.assistants.update(created.id, tools=[], instructions=None)
    assert cleared.tools == [] and cleared.instructions is None and cleared.name == "crud-2"

    deleted = client.beta.assistants.delete(created.id)
    assert deleted.deleted is True and deleted.id == created.id and deleted.object == "assistant.deleted"
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.update(created.id, name="ghost")
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.delete(created.id)
    thread = client.beta.threads.create()
    with pytest.raises(openai.NotFoundError) as e:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=created.id)
    assert error_of(e.value)["param"] == "assistant_id"


def test_assistant_list_pagination(client: openai.OpenAI) -> None:
    ids = [client.beta.assistants.create(model="threadlog-offline", name=f"page{i}").id for i in range(5)]
    first = client.beta.assistants.list(limit=2)  # newest first by default
    assert [a.id for a in first.data] == ids[::-1][:2] and first.has_more
    body = raw_json(client.beta.assistants.with_raw_response.list(limit=2))
    validate(body, "ListAssistantsResponse")
    assert body["first_id"] == ids[4] and body["last_id"] == ids[3] and body["has_more"] is True
    second = client.beta.assistants.list(limit=2, after=ids[3])
    assert [a.id for a in second.data] == [ids[2], ids[1]]
    asc = client.beta.assistants.list(order="asc", after=ids[1], limit=10)
    assert [a.id for a in asc.data] == ids[2:] and not asc.has_more
    before = client.beta.assistants.list(order="asc", before=ids[3], limit=2)
    assert [a.id for a in before.data] == [ids[1], ids[2]]
    # The SDK's auto-pagination walks every page.
    walked = [a.id for a in client.beta.assistants.list(order="asc", limit=2)]
    assert walked[-5:] == ids and len(walked) == len(set(walked))
    client.beta.assistants.delete(ids[2])
    assert ids[2] not in [a.id for a in client.beta.assistants.list(limit=100)]


# --- a run to completion ----------------------------------------------------------------------------------


def test_create_and_poll_completes(client: openai.OpenAI, assistant: Assistant, model_log: ModelLog) -> None:
    said = f"hello {marker()}"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": said}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, **POLL)
    assert run.status == "completed", run.last_error
    assert run.thread_id == thread.id and run.assistant_id == assistant.id
    assert run.model == "threadlog-offline" and run.instructions == INSTRUCTIONS
    assert run.started_at and run.completed_at and run.created_at <= run.started_at <= run.completed_at
    assert run.expires_at is None and run.failed_at is None and run.cancelled_at is None
    assert run.last_error is None and run.required_action is None and run.incomplete_details is None

    body = raw_json(client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id))
    validate(body, "RunObject")
    usage = body["usage"]
    assert all(isinstance(usage[k], int) and usage[k] > 0 for k in ("prompt_tokens", "completion_tokens"))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    [request] = model_log.with_text(said)
    assert usage["prompt_tokens"] == request["prompt_tokens"]
    assert usage["completion_tokens"] == request["completion_tokens"]

    messages = client.beta.threads.messages.list(thread.id, order="asc")
    assert [m.role for m in messages.data] == ["user", "assistant"]
    reply = messages.data[1]
    assert message_text(reply) == REPLY_PREFIX + said
    assert reply.run_id == run.id and reply.assistant_id == assistant.id and reply.status == "completed"
    assert reply.completed_at is not None
    validate(raw_json(client.beta.threads.messages.with_raw_response.retrieve(reply.id, thread_id=thread.id)),
             "MessageObject")
    assert [m.id for m in client.beta.threads.messages.list(thread.id, run_id=run.id)] == [reply.id]

    # A second run in the same thread sees the whole conversation and writes only its own message.
    client.beta.threads.messages.create(thread.id, role="user", content="and again")
    second = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, **POLL)
    assert second.status == "completed"
    mine = client.beta.threads.messages.list(thread.id, run_id=second.id).data
    assert len(mine) == 1 and message_text(mine[0]) == REPLY_PREFIX + "and again"
    [req2] = model_log.with_text("and again")
    assert [(m["role"], m["content"]) for m in req2["body"]["messages"]] == [
        ("system", INSTRUCTIONS), ("user", said), ("assistant", REPLY_PREFIX + said), ("user", "and again")]
    assert [m.id for m in client.beta.threads.messages.list(thread.id, run_id=run.id)] == [reply.id]

    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert e.value.status_code == 400
    error_of(e.value)


def test_create_thread_and_run_poll(client: openai.OpenAI, assistant: Assistant) -> None:
    said = f"a new thread {marker()}"
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": said}], "metadata": {"k": "v"}},
        metadata={"via": "create_and_run"}, **POLL)
    assert run.status == "completed" and run.thread_id.startswith("thread_")
    assert run.metadata == {"via": "create_and_run"}
    assert client.beta.threads.retrieve(run.thread_id).metadata == {"k": "v"}
    messages = client.beta.threads.messages.list(run.thread_id, order="asc").data
    assert [(m.role, message_text(m)) for m in messages] == [("user", said), ("assistant", REPLY_PREFIX + said)]
    assert messages[1].run_id == run.id


# --- function tools -------------------------------------------------------------------------------------


def test_function_tool_round_trip(client: openai.OpenAI, tool_assistant: Assistant, model_log: ModelLog) -> None:
    tag = marker()
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f'{tag} call get_weather {{"city": "Paris"}}'}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tool_assistant.id, **POLL)
    assert run.status == "requires_action"
    body = raw_json(client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id))
    validate(body, "RunObject")
    assert body["usage"] is None  # null until the run ends
    assert body["expires_at"] is not None
    action = run.required_action
    assert action is not None and action.type == "submit_tool_outputs"
    [call] = action.submit_tool_outputs.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    [first_request] = model_log.with_text(tag)
    assert [t["function"]["name"] for t in first_request["body"]["tools"]] == ["get_weather"]

    # The outputs must answer exactly the calls asked, all at once.
    for bad in ([{"tool_call_id": "call_unknown", "output": "x"}], [],
                [{"tool_call_id": call.id, "output": "x"}, {"tool_call_id": "call_unknown", "output": "y"}]):
        with pytest.raises(openai.BadRequestError) as e:
            client.beta.threads.runs.submit_tool_outputs(run.id, thread_id=thread.id, tool_outputs=bad)
        assert error_of(e.value)["param"] == "tool_outputs"
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "requires_action"

    output = '{"temperature_c": 21, "sky": "clear"}'
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": output}], **POLL)
    assert done.status == "completed" and done.required_action is None and done.expires_at is None
    assert done.usage is not None and done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens

    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant"]
    assert message_text(messages[1]) == f"Tool results: get_weather: {output}"
    assert messages[1].run_id == run.id

    # The second model call got the call and its output.
    second = model_log.with_text(tag)[1]["body"]["messages"]
    assert second[-2]["role"] == "assistant" and second[-2]["tool_calls"][0]["id"] == call.id
    assert second[-1] == {"role": "tool", "tool_call_id": call.id, "content": output}

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert all(s.status == "completed" and s.run_id == run.id for s in steps)
    tool_step, message_step = steps
    [step_call] = tool_step.step_details.tool_calls  # type: ignore[union-attr]
    assert step_call.id == call.id and step_call.function.name == "get_weather"  # type: ignore[union-attr]
    assert step_call.function.output == output  # type: ignore[union-attr]
    assert message_step.step_details.message_creation.message_id == messages[1].id  # type: ignore[union-attr]
    desc = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert [s.id for s in desc] == [message_step.id, tool_step.id]
    raw_steps = raw_json(client.beta.threads.runs.steps.with_raw_response.list(run.id, thread_id=thread.id))
    validate(raw_steps, "ListRunStepsResponse")
    for step in steps:
        raw = client.beta.threads.runs.steps.with_raw_response.retrieve(step.id, thread_id=thread.id, run_id=run.id)
        validate(raw_json(raw), "RunStepObject")
        assert raw.parse().id == step.id

    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": output}])
    assert error_of(e.value)["code"] == "run_not_waiting_for_outputs"


# --- runs that end early ----------------------------------------------------------------------------------


def start_slow_run(client: openai.OpenAI, assistant: Assistant) -> tuple[str, str]:
    """A run whose reply would stream for 20 s, once its assistant message exists (the model is mid-reply)."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"{marker()} say 100 words"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, model=SLOW_MODEL)
    assert run.status == "queued" and run.model == SLOW_MODEL
    wait_for("the slow run's message", lambda: client.beta.threads.messages.list(thread.id, run_id=run.id).data, 3)
    return thread.id, run.id


def test_cancel_slow_run(client: openai.OpenAI, assistant: Assistant) -> None:
    thread_id, run_id = start_slow_run(client, assistant)
    started = time.monotonic()
    cancelling = client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
    assert cancelling.status in ("cancelling", "cancelled")
    run = wait_ended(client, thread_id, run_id, timeout_s=EXPIRES_S)
    elapsed = time.monotonic() - started
    assert run.status == "cancelled" and run.cancelled_at is not None, run.status
    assert elapsed < 3.0, f"cancel took {elapsed:.1f}s"
    assert run.completed_at is None and run.expires_at is None
    validate(raw_json(client.beta.threads.runs.with_raw_response.retrieve(run_id, thread_id=thread_id)), "RunObject")
    [message] = client.beta.threads.messages.list(thread_id, run_id=run_id).data
    assert message.status == "incomplete" and message.incomplete_at is not None
    assert message.incomplete_details is not None and message.incomplete_details.reason == "run_cancelled"
    [step] = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id).data
    assert step.type == "message_creation" and step.status == "cancelled" and step.cancelled_at is not None

    # The thread is free again.
    client.beta.threads.messages.create(thread_id, role="user", content="after the cancel")


def test_cancel_of_cancelled_run_is_refused(client: openai.OpenAI, assistant: Assistant) -> None:
    thread_id, run_id = start_slow_run(client, assistant)
    client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
    assert wait_ended(client, thread_id, run_id, timeout_s=EXPIRES_S).status == "cancelled"
    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
    assert error_of(e.value)["code"] == "run_not_active"


def test_cancelled_message_keeps_streamed_text(client: openai.OpenAI, assistant: Assistant) -> None:
    thread_id, run_id = start_slow_run(client, assistant)
    time.sleep(0.7)  # a few words streamed
    client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
    assert wait_ended(client, thread_id, run_id, timeout_s=EXPIRES_S).status == "cancelled"
    [message] = client.beta.threads.messages.list(thread_id, run_id=run_id).data
    text = message_text(message)
    assert text.startswith("word1 word2") and words(100).startswith(text)


def test_cancel_requires_action_run(client: openai.OpenAI, tool_assistant: Assistant) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": 'call get_weather {"city": "Oslo"}'}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tool_assistant.id, **POLL)
    assert run.status == "requires_action"
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    ended = wait_ended(client, thread.id, run.id, timeout_s=EXPIRES_S)
    assert ended.status == "cancelled" and ended.required_action is None


def test_run_waiting_for_outputs_expires(client: openai.OpenAI, tool_assistant: Assistant) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": 'call get_weather {"city": "Rome"}'}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tool_assistant.id, **POLL)
    assert run.status == "requires_action" and run.expires_at is not None
    assert run.expires_at - run.created_at == EXPIRES_S
    # Workers look again at expires_at (+1 s for the whole-second clock); allow 3 s more.
    ended = wait_ended(client, thread.id, run.id, timeout_s=run.expires_at + 4 - time.time())
    assert ended.status == "expired" and ended.required_action is None
    assert time.time() >= ended.expires_at  # type: ignore[operator]
    validate(raw_json(client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id)), "RunObject")
    [step] = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert step.type == "tool_calls" and step.status == "expired" and step.expired_at is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "late"}])
    client.beta.threads.messages.create(thread.id, role="user", content="the thread is free again")


@pytest.mark.parametrize(("status", "needle"), [(500, "500"), (401, "401")])
def test_model_error_fails_run(client: openai.OpenAI, assistant: Assistant, model_log: ModelLog, status: int,
                               needle: str) -> None:
    tag = marker()
    thread = client.beta.threads.create(messages=[{"role": "user", "content": tag}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   model=f"threadlog-offline+error{status}", **POLL)
    assert run.status == "failed" and run.failed_at is not None and run.completed_at is None
    assert run.expires_at is None
    error = run.last_error
    assert error is not None and error.code == "server_error"
    assert needle in error.message and "model endpoint" in error.message, error.message
    validate(raw_json(client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id)), "RunObject")
    assert all(r["status"] == status for r in model_log.with_text(tag))
    assert model_log.with_text(tag), "the model was never asked"
    assert client.beta.threads.messages.list(thread.id, run_id=run.id).data == []


def test_max_completion_tokens_incomplete(client: openai.OpenAI, assistant: Assistant, model_log: ModelLog) -> None:
    tag = marker()
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"{tag} say 400 words"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   max_completion_tokens=256, **POLL)
    assert run.status == "incomplete" and run.max_completion_tokens == 256
    assert run.incomplete_details is not None and run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage is not None and run.usage.completion_tokens == 256
    assert one_request(model_log, tag)["max_completion_tokens"] == 256
    validate(raw_json(client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id)), "RunObject")
    [message] = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert message.status == "incomplete"
    assert message.incomplete_details is not None and message.incomplete_details.reason == "max_tokens"
    assert message_text(message) == words(256)


# --- what the model is sent -------------------------------------------------------------------------------


def test_truncation_last_messages(client: openai.OpenAI, assistant: Assistant, model_log: ModelLog) -> None:
    tag = marker()
    texts = [f"{tag} m{i}" for i in range(5)]
    thread = client.beta.threads.create(messages=[
        {"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(texts)])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id,
        truncation_strategy={"type": "last_messages", "last_messages": 2}, **POLL)
    assert run.status == "completed"
    assert run.truncation_strategy is not None and run.truncation_strategy.type == "last_messages"
    assert run.truncation_strategy.last_messages == 2
    sent = one_request(model_log, tag)["messages"]
    assert sent == [{"role": "system", "content": INSTRUCTIONS}, {"role": "assistant", "content": texts[3]},
                    {"role": "user", "content": texts[4]}]
    # Truncation shapes the prompt only; the thread keeps everything.
    assert len(client.beta.threads.messages.list(thread.id).data) == 6


def test_max_prompt_tokens(client: openai.OpenAI, assistant: Assistant, model_log: ModelLog) -> None:
    # The newest message alone is over the budget: the run ends incomplete without asking the model.
    tag = marker()
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"{tag} " + words(300)}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   max_prompt_tokens=256, **POLL)
    assert run.status == "incomplete" and run.max_prompt_tokens == 256
    assert run.incomplete_details is not None and run.incomplete_details.reason == "max_prompt_tokens"
    validate(raw_json(client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id)), "RunObject")
    assert model_log.with_text(tag) == []
    assert client.beta.threads.messages.list(thread.id, run_id=run.id).data == []

    # Older messages that do not fit are dropped, the newest kept.
    old, new = f"{marker()} " + words(250), f"{marker()} the newest"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": old},
                                                  {"role": "user", "content": new}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   max_prompt_tokens=256, **POLL)
    assert run.status == "completed"
    assert one_request(model_log, new)["messages"] == [{"role": "system", "content": INSTRUCTIONS},
                                                       {"role": "user", "content": new}]
    assert run.usage is not None and run.usage.prompt_tokens <= 256


def test_instructions_and_additional_messages(client: openai.OpenAI, assistant: Assistant,
                                              model_log: ModelLog) -> None:
    tag = marker()
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"{tag} first"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   additional_instructions="Answer in French.", **POLL)
    assert run.status == "completed" and run.instructions == f"{INSTRUCTIONS}\n\nAnswer in French."
    assert one_request(model_log, f"{tag} first")["messages"][0] == {
        "role": "system", "content": f"{INSTRUCTIONS}\n\nAnswer in French."}

    client.beta.threads.messages.create(thread.id, role="user", content=f"{tag} second")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   instructions="Override.", **POLL)
    assert run.status == "completed" and run.instructions == "Override."
    assert one_request(model_log, f"{tag} second")["messages"][0] == {"role": "system", "content": "Override."}

    added = f"{tag} added by the run"
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, instructions="Override.", additional_instructions="More.",
        additional_messages=[{"role": "user", "content": added, "metadata": {"src": "run"}}], **POLL)
    assert run.status == "completed" and run.instructions == "Override.\n\nMore."
    sent = one_request(model_log, added)["messages"]
    assert sent[0] == {"role": "system", "content": "Override.\n\nMore."}
    assert sent[-1] == {"role": "user", "content": added}
    assert [m["content"] for m in sent[1:-1] if m["role"] == "user"] == [f"{tag} first", f"{tag} second"]
    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [(m.role, message_text(m)) for m in messages[-2:]] == [("user", added),
                                                                 ("assistant", REPLY_PREFIX + added)]
    assert messages[-2].metadata == {"src": "run"}
    assert messages[-1].run_id == run.id


def test_run_overrides_reach_the_model(client: openai.OpenAI, tool_assistant: Assistant,
                                       model_log: ModelLog) -> None:
    tag = marker()
    thread = client.beta.threads.create(messages=[{"role": "user", "content": tag}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=tool_assistant.id, temperature=0.2, top_p=0.5, tools=[],
        response_format={"type": "json_object"}, **POLL)
    assert run.status == "completed" and run.temperature == 0.2 and run.top_p == 0.5 and run.tools == []
    sent = one_request(model_log, tag)
    assert sent["temperature"] == 0.2 and sent["top_p"] == 0.5 and "tools" not in sent
    assert sent["response_format"] == {"type": "json_object"}
    [reply] = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert json.loads(message_text(reply)) == {"reply": REPLY_PREFIX + tag}


# --- a busy thread ----------------------------------------------------------------------------------------


def test_busy_thread_refuses_messages_and_runs(client: openai.OpenAI, assistant: Assistant) -> None:
    thread_id, run_id = start_slow_run(client, assistant)
    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.messages.create(thread_id, role="user", content="too soon")
    assert e.value.status_code == 400 and error_of(e.value)["code"] == "thread_locked"
    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id)
    assert error_of(e.value)["code"] == "thread_locked"
    assert [r.id for r in client.beta.threads.runs.list(thread_id)] == [run_id]

    client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
    assert wait_ended(client, thread_id, run_id, timeout_s=EXPIRES_S).status == "cancelled"
    client.beta.threads.messages.create(thread_id, role="user", content="now it is free")
    assert client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id,
                                                    **POLL).status == "completed"


def test_queued_run_locks_thread(client: openai.OpenAI, assistant: Assistant) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "quick"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id,
                                          model="threadlog-offline+first300")
    # Right after creation the run is queued or just started: the thread is locked either way.
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.create(thread.id, role="user", content="too soon")
    assert client.beta.threads.runs.poll(run.id, thread_id=thread.id, **POLL).status == "completed"


# --- listing and modifying --------------------------------------------------------------------------------


def test_run_list_pagination_and_modify(client: openai.OpenAI, assistant: Assistant) -> None:
    thread = client.beta.threads.create()
    ids = []
    for i in range(4):
        client.beta.threads.messages.create(thread.id, role="user", content=f"turn {i}")
        ids.append(client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                            metadata={"n": str(i)}, **POLL).id)
    body = raw_json(client.beta.threads.runs.with_raw_response.list(thread.id, limit=3))
    validate(body, "ListRunsResponse")
    assert [r["id"] for r in body["data"]] == ids[::-1][:3] and body["has_more"] is True
    assert body["first_id"] == ids[3] and body["last_id"] == ids[1]
    rest = client.beta.threads.runs.list(thread.id, limit=3, after=ids[1])
    assert [r.id for r in rest.data] == [ids[0]] and not rest.has_more
    asc = client.beta.threads.runs.list(thread.id, order="asc", limit=2)
    assert [r.id for r in asc.data] == ids[:2] and asc.has_more
    assert [r.id for r in client.beta.threads.runs.list(thread.id, order="asc", before=ids[3])] == ids[:3]
    assert [r.id for r in client.beta.threads.runs.list(thread.id, order="asc", limit=1)] == ids  # auto-paging
    assert all(r.status == "completed" for r in client.beta.threads.runs.list(thread.id))

    raw = client.beta.threads.runs.with_raw_response.update(ids[1], thread_id=thread.id, metadata={"n": "1", "x": "y"})
    validate(raw_json(raw), "RunObject")
    assert raw.parse().metadata == {"n": "1", "x": "y"}
    assert client.beta.threads.runs.retrieve(ids[1], thread_id=thread.id).metadata == {"n": "1", "x": "y"}
    assert client.beta.threads.runs.retrieve(ids[2], thread_id=thread.id).metadata == {"n": "2"}

    # Each run wrote one message_creation step pointing at its own message.
    for run_id in ids:
        [step] = client.beta.threads.runs.steps.list(run_id, thread_id=thread.id).data
        [message] = client.beta.threads.messages.list(thread.id, run_id=run_id).data
        assert step.type == "message_creation" and step.status == "completed"
        assert step.step_details.message_creation.message_id == message.id  # type: ignore[union-attr]
        assert step.usage is not None and step.usage.total_tokens > 0


# --- errors -------------------------------------------------------------------------------------------------


def test_not_found(client: openai.OpenAI, assistant: Assistant) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, **POLL)
    other = client.beta.threads.create()
    runs = client.beta.threads.runs
    calls = [
        lambda: runs.retrieve("run_doesnotexist", thread_id=thread.id),
        lambda: runs.retrieve(run.id, thread_id=other.id),  # a run is only found in its own thread
        lambda: runs.retrieve(run.id, thread_id="thread_doesnotexist"),
        lambda: runs.list("thread_doesnotexist"),
        lambda: runs.update("run_doesnotexist", thread_id=thread.id, metadata={"a": "b"}),
        lambda: runs.cancel("run_doesnotexist", thread_id=thread.id),
        lambda: runs.submit_tool_outputs("run_doesnotexist", thread_id=thread.id, tool_outputs=[]),
        lambda: runs.steps.list("run_doesnotexist", thread_id=thread.id),
        lambda: runs.steps.retrieve("step_doesnotexist", thread_id=thread.id, run_id=run.id),
        lambda: runs.create(thread_id=thread.id, assistant_id="asst_doesnotexist"),
        lambda: runs.create(thread_id="thread_doesnotexist", assistant_id=assistant.id),
        lambda: client.beta.threads.create_and_run(assistant_id="asst_doesnotexist"),
        lambda: client.beta.assistants.retrieve("asst_doesnotexist"),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(openai.NotFoundError) as e:
            call()
        assert error_of(e.value)["type"] == "invalid_request_error", i
    [step] = runs.steps.list(run.id, thread_id=thread.id).data
    with pytest.raises(openai.NotFoundError):
        runs.steps.retrieve(step.id, thread_id=thread.id, run_id="run_doesnotexist")


@pytest.mark.parametrize(("params", "param"), [
    ({"tool_choice": {"type": "function", "function": {"name": "no_such_tool"}}}, "tool_choice"),
    ({"tool_choice": "required", "tools": []}, "tool_choice"),
    ({"max_completion_tokens": 100}, "max_completion_tokens"),
    ({"max_prompt_tokens": 255}, "max_prompt_tokens"),
    ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
    ({"temperature": 3}, "temperature"),
    ({"truncation_strategy": {"type": "last_messages", "last_messages": 0}}, "truncation_strategy.last_messages"),
    ({"extra_body": {"bogus_parameter": 1}}, None),
])
def test_bad_run_params(client: openai.OpenAI, tool_assistant: Assistant, params: dict[str, Any],
                        param: str | None) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=tool_assistant.id, **params)
    error = error_of(e.value)
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    else:
        assert "bogus_parameter" in error["message"]
    # Nothing was created, and the thread is not locked.
    assert client.beta.threads.runs.list(thread.id).data == []
    client.beta.threads.messages.create(thread.id, role="user", content="still free")


def test_bad_assistant_params(client: openai.OpenAI) -> None:
    for params in ({"tools": [{"type": "code_interpreter"}]}, {"temperature": -1},
                   {"extra_body": {"bogus_parameter": 1}}, {"response_format": {"type": "yaml"}}):
        with pytest.raises(openai.BadRequestError):
            client.beta.assistants.create(model="threadlog-offline", **params)  # type: ignore[arg-type]
