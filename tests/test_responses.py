"""The Responses API through the official SDK: foreground, streamed, background and resumed responses, chaining,
function calls, the hosted errors, `store: false`, and one conversation carried on both surfaces."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from threadlog.stack import Stack

from .responses_helpers import (
    ENDED,
    SLOW_MODEL,
    WEATHER_TOOL,
    check_events,
    conv_to_thread,
    error_of,
    marker,
    percentile,
    raw_json,
    text_deltas,
    thread_to_conv,
    validate,
    wait_status,
    wire,
    words,
)
from .runs_helpers import ModelLog, fetch, wait_ended

pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # beta.assistants
MODEL = "threadlog-offline"
ECHO = "This is the threadlog offline model. You said: "


def chat_of(stack: Stack, text: str) -> dict[str, Any]:
    """The one chat-completion request the offline model received whose messages contain `text`."""
    found = ModelLog(stack).with_text(text)
    assert len(found) == 1, f"{len(found)} model requests mention {text}"
    return found[0]


def last_chat_with(stack: Stack, text: str) -> dict[str, Any]:
    found = ModelLog(stack).with_text(text)
    assert found, f"no model request mentions {text}"
    return found[-1]


def roles_and_texts(chat: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for m in chat["body"]["messages"]:
        content = m.get("content")
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content or [])
        out.append((m["role"], text))
    return out


def message_texts(messages: Any) -> list[str]:
    return ["".join(b.text.value for b in m.content if b.type == "text") for m in messages]


def item_texts(items: Any) -> list[str]:
    return ["".join(getattr(p, "text", "") for p in i.content) for i in items]


# --- foreground, in a conversation ------------------------------------------------------------------------


def test_foreground_response_in_conversation(client: openai.OpenAI, stack: Stack) -> None:
    pre, mark = marker("pre"), marker()
    conv = client.conversations.create(items=[{"role": "user", "content": f"{pre} remember this"}])
    raw = client.responses.with_raw_response.create(model=MODEL, input=f"{mark} say 5 words", conversation=conv.id)
    body = raw_json(raw)
    validate(body, "Response")
    r = raw.parse()
    assert r.id.startswith("resp_") and r.object == "response" and r.status == "completed"
    assert r.output_text == words(5) and r.model == MODEL
    assert r.conversation is not None and r.conversation.id == conv.id
    assert body["background"] is False and body["store"] is True and body["previous_response_id"] is None
    assert body["error"] is None and body["incomplete_details"] is None and body["tools"] == []
    assert body["usage"]["output_tokens"] == 5 and body["usage"]["total_tokens"] > 5
    assert body["completed_at"] >= body["created_at"]
    assert [o["type"] for o in body["output"]] == ["message"]
    out = body["output"][0]
    assert out["id"].startswith("msg_") and out["role"] == "assistant" and out["status"] == "completed"
    assert out["content"] == [{"type": "output_text", "text": words(5), "annotations": [], "logprobs": []}]
    assert raw_json(client.responses.with_raw_response.retrieve(r.id)) == body

    # The model saw the conversation's items first, then the input.
    assert roles_and_texts(chat_of(stack, mark)) == [("user", f"{pre} remember this"), ("user", f"{mark} say 5 words")]

    # The input and the output were appended to the conversation, in that order.
    items = list(client.conversations.items.list(conv.id, order="asc"))
    assert [i.type for i in items] == ["message"] * 3
    assert [i.role for i in items] == ["user", "user", "assistant"]  # type: ignore[union-attr]
    assert item_texts(items) == [f"{pre} remember this", f"{mark} say 5 words", words(5)]
    assert items[2].id == out["id"]
    assert [i.id for i in client.responses.input_items.list(r.id)] == [items[1].id]

    # ... and the Assistants surface reads the same messages.
    messages = client.beta.threads.messages.list(conv_to_thread(conv.id), order="asc").data
    assert [m.id for m in messages] == [i.id for i in items]
    assert message_texts(messages) == item_texts(items)
    assert [m.role for m in messages] == ["user", "user", "assistant"]
    assert messages[2].status == "completed" and messages[2].thread_id == conv_to_thread(conv.id)

    # A second turn, naming the conversation as an object: the first turn is in its context.
    mark2 = marker()
    r2 = client.responses.create(model=MODEL, input=f"{mark2} say 2 words", conversation={"id": conv.id})
    assert r2.output_text == words(2) and r2.conversation is not None and r2.conversation.id == conv.id
    assert roles_and_texts(chat_of(stack, mark2))[-3:] == [("user", f"{mark} say 5 words"),
                                                            ("assistant", words(5)), ("user", f"{mark2} say 2 words")]
    assert len(client.conversations.items.list(conv.id).data) == 5


def test_previous_response_id_chain(client: openai.OpenAI, stack: Stack) -> None:
    m1, m2, m3 = marker("one"), marker("two"), marker("three")
    r1 = client.responses.create(model=MODEL, input=m1, instructions=f"instructions {m1}")
    assert r1.output_text == ECHO + m1 and r1.instructions == f"instructions {m1}" and r1.conversation is None
    assert roles_and_texts(chat_of(stack, m1)) == [("system", f"instructions {m1}"), ("user", m1)]

    raw = client.responses.with_raw_response.create(model=MODEL, input=f"{m2} say 3 words", previous_response_id=r1.id)
    validate(raw_json(raw), "Response")
    r2 = raw.parse()
    assert r2.previous_response_id == r1.id and r2.output_text == words(3) and r2.id != r1.id
    # The first turn (input and output) comes first; its instructions are not carried over.
    assert roles_and_texts(chat_of(stack, m2)) == [("user", m1), ("assistant", ECHO + m1),
                                                   ("user", f"{m2} say 3 words")]

    r3 = client.responses.create(model=MODEL, input=f"{m3} say 1 word", previous_response_id=r2.id,
                                 instructions="be brief")
    assert r3.output_text == words(1)
    assert roles_and_texts(chat_of(stack, m3)) == [
        ("system", "be brief"), ("user", m1), ("assistant", ECHO + m1), ("user", f"{m2} say 3 words"),
        ("assistant", words(3)), ("user", f"{m3} say 1 word")]
    # A fork from the first response does not see the second.
    m4 = marker("fork")
    client.responses.create(model=MODEL, input=m4, previous_response_id=r1.id)
    assert roles_and_texts(chat_of(stack, m4)) == [("user", m1), ("assistant", ECHO + m1), ("user", m4)]


def test_response_usage_has_every_key(client: openai.OpenAI) -> None:
    body = raw_json(client.responses.with_raw_response.create(model=MODEL, input="say 2 words"))
    assert set(body["usage"]["input_tokens_details"]) == {"cached_tokens", "cache_write_tokens"}
    validate(body, "Response", strict=True)


# --- streaming ----------------------------------------------------------------------------------------------


TEXT_SHAPE = ["response.created", "response.in_progress", "response.output_item.added",
              "response.content_part.added", "response.output_text.delta", "response.output_text.done",
              "response.content_part.done", "response.output_item.done", "response.completed"]


def shape(events: list[Any]) -> list[str]:
    """Event types with runs of deltas folded into one."""
    out: list[str] = []
    for e in events:
        if not (out and out[-1] == e.type == "response.output_text.delta"):
            out.append(e.type)
    return out


def test_streamed_response_create(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="threadlog-offline+delay5", input="say 20 words", stream=True))
    bodies = check_events(events)
    assert shape(events) == TEXT_SHAPE
    response_id = events[0].response.id
    assert all(b["response"]["id"] == response_id for b in bodies if "response" in b)
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    final = events[-1].response
    assert final.status == "completed" and final.output_text == words(20) and final.usage is not None
    done = next(e for e in events if e.type == "response.output_text.done")
    assert text_deltas(events) == done.text == words(20)
    item_id = events[2].item.id
    assert all(e.item_id == item_id for e in events if e.type == "response.output_text.delta")
    assert events[2].item.status == "in_progress" and events[2].item.content == []
    assert events[-2].item.status == "completed"
    assert client.responses.retrieve(response_id).output_text == words(20)


def test_streamed_response_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(model="threadlog-offline+delay5", input="say 12 words") as stream:
        events = list(stream)
        final = stream.get_final_response()
    check_events(events)
    assert shape(events) == TEXT_SHAPE
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert deltas and deltas[-1].snapshot == words(12)
    assert text_deltas(events) == final.output_text == words(12)
    assert final.status == "completed" and final.id == events[0].response.id


def test_background_poll(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(model="threadlog-offline+delay10", input="say 10 words",
                                                    background=True)
    body = raw_json(raw)
    validate(body, "Response")
    assert body["status"] == "queued" and body["background"] is True and body["output"] == []
    assert body["usage"] is None and body["completed_at"] is None
    done = wait_status(client, body["id"], ENDED)
    assert done.status == "completed" and done.output_text == words(10) and done.background is True
    validate(raw_json(client.responses.with_raw_response.retrieve(body["id"])), "Response")
    # Cancelling a finished background response answers it unchanged.
    again = client.responses.cancel(body["id"])
    assert again.status == "completed" and again.output_text == words(10)


def test_background_cancel(client: openai.OpenAI, stack: Stack) -> None:
    mark = marker()
    conv = client.conversations.create()
    bg = client.responses.create(model=SLOW_MODEL, input=f"{mark} say 200 words", background=True,
                                 conversation=conv.id)
    assert bg.status == "queued"
    wait_status(client, bg.id, {"in_progress"})
    deadline = time.monotonic() + 10
    while not ModelLog(stack).with_text(mark):  # the model is generating
        assert time.monotonic() < deadline, "the model never got the request"
        time.sleep(0.05)
    time.sleep(0.2)

    raw = client.responses.with_raw_response.cancel(bg.id)
    validate(raw_json(raw), "Response")
    cancelled = raw.parse()
    assert cancelled.status == "cancelled" and cancelled.id == bg.id
    time.sleep(1.0)  # the worker had more to say: it must not complete the response now
    assert client.responses.retrieve(bg.id).status == "cancelled"
    assert client.responses.cancel(bg.id).status == "cancelled"
    # The worker stopped the generation rather than letting it run to its end.
    deadline = time.monotonic() + 5
    while (chat := chat_of(stack, mark))["outcome"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert chat["outcome"] == "disconnected" and chat["completion_tokens"] < 200
    # A replay ends (no terminal event exists for a cancelled stream) and never shows a completion.
    replay = list(client.with_options(timeout=10).responses.retrieve(bg.id, stream=True))
    check_events(replay)
    assert "response.completed" not in {e.type for e in replay}
    items = client.conversations.items.list(conv.id, order="asc").data
    assert [i.type for i in items] == ["message", "message"] and items[1].status == "incomplete"
    # The conversation is free again.
    assert client.responses.create(model=MODEL, input="say 1 word", conversation=conv.id).status == "completed"
    assert client.responses.retrieve(bg.id).status == "cancelled"

    foreground = client.responses.create(model=MODEL, input="say 1 word")
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.cancel(foreground.id)
    error_of(e.value)


def assert_same_stream(live: list[Any], replay: list[Any]) -> None:
    """`live` is `replay`, except that a live stream may join neighbouring text deltas into one: a delta whose
    successors had not arrived when the log said the message was done is sent with them, as one remainder (see
    streaming/merge.py). Every other event is identical; a joined delta keeps the position of its last part."""
    assert [wire(e) for e in live if e.type != "response.output_text.delta"] == \
        [wire(e) for e in replay if e.type != "response.output_text.delta"]
    parts = {e.sequence_number: e for e in replay if e.type == "response.output_text.delta"}
    previous = -1
    for e in (e for e in live if e.type == "response.output_text.delta"):
        assert e.sequence_number in parts, f"delta at {e.sequence_number} is at no replayed position"
        covered = [parts[n] for n in sorted(parts) if previous < n <= e.sequence_number]
        assert e.delta == "".join(p.delta for p in covered)
        assert {(p.item_id, p.output_index) for p in covered} == {(e.item_id, e.output_index)}
        previous = e.sequence_number
    assert previous == max(parts)


def test_stream_resume(client: openai.OpenAI) -> None:
    stream = client.responses.create(model="threadlog-offline+delay30", input="say 40 words", stream=True,
                                     background=True)
    first: list[Any] = []
    for event in stream:
        first.append(event)
        if len(first) == 9:
            break
    stream.close()  # the client goes away; a background response goes on
    response_id, last = first[0].response.id, first[-1].sequence_number
    assert first[1].type == "response.queued" and first[-1].type == "response.output_text.delta"

    live_rest = list(client.responses.retrieve(response_id, stream=True, starting_after=last))  # while it runs
    full = list(client.responses.retrieve(response_id, stream=True))  # one uninterrupted replay
    check_events(full)
    assert full[-1].type == "response.completed" and text_deltas(full) == words(40) == full[-1].response.output_text
    assert live_rest[0].sequence_number > last and live_rest[-1].type == "response.completed"
    check_events(first + live_rest)
    assert_same_stream(first + live_rest, full)
    assert text_deltas(first + live_rest) == words(40)

    # Resumed from the log once it ended: event for event the replay's.
    rest = list(client.responses.retrieve(response_id, stream=True, starting_after=last))
    assert [wire(e) for e in first + rest] == [wire(e) for e in full]
    mid = full[len(full) // 2].sequence_number
    assert [wire(e) for e in client.responses.retrieve(response_id, stream=True, starting_after=mid)] == \
        [wire(e) for e in full if e.sequence_number > mid]

    # The helper resumes differently (it replays from the start and drops what it had): same events.
    with client.responses.stream(response_id=response_id, starting_after=last) as helper:
        resumed = list(helper)
        final = helper.get_final_response()
    assert [(e.type, e.sequence_number) for e in resumed] == [(e.type, e.sequence_number) for e in rest]
    assert text_deltas(resumed) == text_deltas(rest) and resumed[-1].response.id == response_id
    assert final.output_text == words(40) and final.id == response_id
    # Past the end: nothing more.
    assert list(client.responses.retrieve(response_id, stream=True, starting_after=full[-1].sequence_number)) == []


# --- function calls -------------------------------------------------------------------------------------------


def test_function_call_round_trip(client: openai.OpenAI, stack: Stack) -> None:
    mark = marker()
    raw = client.responses.with_raw_response.create(model=MODEL, input=f'{mark} call get_weather {{"city": "Paris"}}',
                                                    tools=[WEATHER_TOOL])
    validate(raw_json(raw), "Response")
    r1 = raw.parse()
    assert r1.status == "completed" and [o.type for o in r1.output] == ["function_call"]
    call = r1.output[0]
    assert call.type == "function_call"
    assert call.id.startswith("fc_") and call.call_id.startswith("call_") and call.id != call.call_id  # type: ignore[union-attr]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert raw_json(raw)["tools"][0]["name"] == "get_weather"

    with pytest.raises(openai.BadRequestError) as e:  # the call must be answered first
        client.responses.create(model=MODEL, input="and now?", previous_response_id=r1.id, tools=[WEATHER_TOOL])
    error = error_of(e.value)
    assert error["param"] == "input" and call.call_id in error["message"]

    r2 = client.responses.create(model=MODEL, previous_response_id=r1.id, tools=[WEATHER_TOOL], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}])
    assert r2.id != r1.id and r2.status == "completed" and r2.previous_response_id == r1.id
    assert r2.output_text == "Tool results: get_weather: 18C and sunny"
    chat = last_chat_with(stack, mark)["body"]["messages"]
    assert chat[-2]["role"] == "assistant" and chat[-2]["tool_calls"][0]["id"] == call.call_id
    assert chat[-2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": call.arguments}
    assert chat[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "18C and sunny"}
    input_items = client.responses.input_items.list(r2.id).data
    assert [i.type for i in input_items] == ["function_call_output"]

    # The same loop through a conversation, which holds the call.
    conv = client.conversations.create()
    r3 = client.responses.create(model=MODEL, input='call get_weather {"city": "Rome"}', tools=[WEATHER_TOOL],
                                 conversation=conv.id)
    call3 = r3.output[0]
    assert call3.type == "function_call" and json.loads(call3.arguments) == {"city": "Rome"}
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="and now?", conversation=conv.id, tools=[WEATHER_TOOL])
    assert error_of(e.value)["param"] == "input"
    r4 = client.responses.create(model=MODEL, conversation=conv.id, tools=[WEATHER_TOOL], input=[
        {"type": "function_call_output", "call_id": call3.call_id, "output": "rain"}])
    assert r4.output_text == "Tool results: get_weather: rain"
    items = client.conversations.items.list(conv.id, order="asc").data
    assert [i.type for i in items] == ["message", "function_call", "function_call_output", "message"]
    assert items[1].id == call3.id and items[2].call_id == call3.call_id  # type: ignore[union-attr]
    assert items[3].id == r4.output[0].id
    messages = client.beta.threads.messages.list(conv_to_thread(conv.id), order="asc").data
    assert [m.id for m in messages] == [items[0].id, items[3].id]

    # Streamed, the call arrives as output_item.added / arguments delta / done / output_item.done.
    events = list(client.responses.create(model=MODEL, input='call get_weather {"city": "Lima"}',
                                          tools=[WEATHER_TOOL], stream=True))
    check_events(events)
    assert [e.type for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    assert events[2].item.arguments == "" and events[2].item.status == "in_progress"
    assert events[4].arguments == '{"city": "Lima"}' == events[3].delta
    with client.responses.stream(model=MODEL, input='call get_weather {"city": "Kyiv"}',
                                 tools=[WEATHER_TOOL]) as stream:
        final = stream.get_final_response()
    assert final.output[0].type == "function_call" and json.loads(final.output[0].arguments) == {"city": "Kyiv"}


# --- errors -------------------------------------------------------------------------------------------------------


def test_hosted_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input=[
            {"type": "function_call_output", "call_id": "call_neverseen", "output": "x"}])
    error = error_of(e.value)
    assert error["param"] == "input"
    assert error["message"] == "No tool call found for function call output with call_id call_neverseen."

    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_doesnotexist")
    error = error_of(e.value)
    assert (error["param"], error["code"]) == ("previous_response_id", "previous_response_not_found")
    assert error["message"] == "Previous response with id 'resp_doesnotexist' not found."

    assistants_tool: Any = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="hi", tools=[assistants_tool])
    assert error_of(e.value)["param"] == "tools[0]"

    conv = client.conversations.create()
    first = client.responses.create(model=MODEL, input="say 1 word")
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="hi", conversation=conv.id, previous_response_id=first.id)
    error_of(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(input="hi", extra_body={})  # type: ignore[call-overload]
    assert error_of(e.value)["param"] == "model"
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input=[{"type": "reasoning", "summary": []}])
    assert error_of(e.value)["param"] == "input[0].type"
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model=MODEL, input="hi", conversation="conv_doesnotexist")
    error_of(e.value)

    for call in (lambda: client.responses.retrieve("resp_doesnotexist"),
                 lambda: client.responses.retrieve("resp_doesnotexist", stream=True),
                 lambda: client.responses.delete("resp_doesnotexist"),
                 lambda: client.responses.cancel("resp_doesnotexist"),
                 lambda: client.responses.input_items.list("resp_doesnotexist")):
        with pytest.raises(openai.NotFoundError) as e:
            call()
        assert error_of(e.value)["param"] == "response_id"


def test_conversation_locked(client: openai.OpenAI) -> None:
    def locked(**kwargs: Any) -> None:
        with pytest.raises(openai.BadRequestError) as e:  # 400, never 409 (which the SDK would retry)
            client.responses.create(model=MODEL, input="me too", **kwargs)
        assert e.value.status_code == 400
        error = error_of(e.value)
        assert (error["param"], error["code"]) == ("conversation", "conversation_locked")
        assert error["message"] == ("Another process is currently operating on this conversation. "
                                    "Please retry in a few seconds.")

    # A slow response holds the conversation.
    conv = client.conversations.create()
    slow = client.responses.create(model=SLOW_MODEL, input="say 200 words", conversation=conv.id, background=True)
    locked(conversation=conv.id)
    locked(conversation={"id": conv.id})
    locked(conversation=conv_to_thread(conv.id))
    with pytest.raises(openai.BadRequestError) as e:
        client.conversations.items.create(conv.id, items=[{"role": "user", "content": "x"}])
    assert error_of(e.value)["code"] == "conversation_locked"
    assistant = client.beta.assistants.create(model=MODEL)
    with pytest.raises(openai.BadRequestError) as e:  # ... against runs too
        client.beta.threads.runs.create(conv_to_thread(conv.id), assistant_id=assistant.id)
    error_of(e.value)
    assert client.responses.cancel(slow.id).status == "cancelled"

    # A slow run holds the thread.
    slow_assistant = client.beta.assistants.create(model=SLOW_MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "say 200 words"}])
    run = client.beta.threads.runs.create(thread.id, assistant_id=slow_assistant.id)
    locked(conversation=thread.id)
    locked(conversation=thread_to_conv(thread.id))
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert wait_ended(client, thread.id, run.id, 10).status == "cancelled"
    after = client.responses.create(model=MODEL, input="say 2 words", conversation=thread.id)
    assert after.output_text == words(2)


def test_delete_response(client: openai.OpenAI) -> None:
    r = client.responses.create(model=MODEL, input="say 2 words")
    raw = client.responses.with_raw_response.delete(r.id)
    assert raw.http_response.status_code == 200 and raw.parse() is None
    assert raw_json(raw) == {"id": r.id, "object": "response", "deleted": True}
    for call in (lambda: client.responses.retrieve(r.id), lambda: client.responses.delete(r.id),
                 lambda: client.responses.input_items.list(r.id)):
        with pytest.raises(openai.NotFoundError) as e:
            call()
        error_of(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="x", previous_response_id=r.id)
    assert error_of(e.value)["code"] == "previous_response_not_found"


def test_input_items(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": "before"}])
    sent = [{"role": "user", "content": "a"}, {"role": "developer", "content": "b"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "c"}]}]
    r = client.responses.create(model=MODEL, input=sent, conversation=conv.id)  # type: ignore[arg-type]
    body = raw_json(client.responses.input_items.with_raw_response.list(r.id))
    validate(body, "ResponseItemList")
    assert ["".join(p["text"] for p in i["content"]) for i in body["data"]] == ["c", "b", "a"]  # default: desc
    assert body["first_id"] == body["data"][0]["id"] and body["last_id"] == body["data"][-1]["id"]
    assert body["has_more"] is False
    asc = list(client.responses.input_items.list(r.id, order="asc", limit=2))  # the SDK pages by the last id
    assert item_texts(asc) == ["a", "b", "c"]
    conversation_ids = [i.id for i in client.conversations.items.list(conv.id, order="asc")]
    assert [i.id for i in asc] == conversation_ids[1:4]  # only the request's own input, with its item ids
    page = client.responses.input_items.list(r.id, order="asc", limit=2)
    assert page.has_more and len(page.data) == 2


def test_store_false(client: openai.OpenAI, stack: Stack) -> None:
    mark = marker("secret")
    r = client.responses.create(model=MODEL, input=f"{mark} please", store=False)
    assert r.status == "completed" and r.store is False and r.output_text == f"{ECHO}{mark} please"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="and then?", previous_response_id=r.id)
    assert error_of(e.value)["code"] == "previous_response_not_found"
    for kwargs in ({"background": True}, {"conversation": client.conversations.create().id}):
        with pytest.raises(openai.BadRequestError) as e:
            client.responses.create(model=MODEL, input="x", store=False, **kwargs)
        assert error_of(e.value)["param"] == "store"

    # Streamed, too: the client got the answer.
    mark2 = marker("secret")
    events = list(client.responses.create(model=MODEL, input=f"{mark2} please", store=False, stream=True))
    assert events[-1].type == "response.completed" and text_deltas(events) == f"{ECHO}{mark2} please"
    streamed_id = events[0].response.id

    # The log keeps that they happened, not what was said.
    db = stack.env["DATABASE_URL"]
    for response_id, secret in ((r.id, mark), (streamed_id, mark2)):
        deadline = time.monotonic() + 15
        while True:
            rows = fetch(db, "SELECT event_type, redacted, convert_from(payload, 'UTF8') AS p FROM events "
                             "WHERE stream_id = $1 ORDER BY stream_version", response_id)
            if rows and all(row["redacted"] for row in rows if row["event_type"] != "thread.erased"):
                break
            assert time.monotonic() < deadline, [(row["event_type"], row["redacted"]) for row in rows]
            time.sleep(0.1)
        assert rows[-1]["event_type"] == "thread.erased"
        assert {"response.created", "response.completed"} <= {row["event_type"] for row in rows}
        assert not any(secret in row["p"] for row in rows)
        hits = fetch(db, "SELECT count(*) FROM events WHERE strpos(convert_from(payload, 'UTF8'), $1) > 0", secret)
        assert hits[0][0] == 0
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(response_id)


def _events_of(database_url: str, stream_id: str) -> list[Any]:
    return fetch(database_url, "SELECT event_type, redacted, convert_from(payload, 'UTF8') AS p FROM events "
                               "WHERE stream_id = $1 ORDER BY stream_version", stream_id)


def test_store_false_stream_client_leaves_early(client: openai.OpenAI, stack: Stack) -> None:
    mark = marker("secret")
    stream = client.responses.create(model="threadlog-offline+delay30", input=f"{mark} " + "blah " * 40,
                                     store=False, stream=True)
    seen: list[Any] = []
    for event in stream:
        seen.append(event)
        if len(seen) == 6:
            break
    stream.close()
    response_id, db = seen[0].response.id, stack.env["DATABASE_URL"]
    deadline = time.monotonic() + 15
    while not any(row["event_type"] in ("response.completed", "response.failed", "response.cancelled")
                  for row in _events_of(db, response_id)):
        assert time.monotonic() < deadline, "the response never ended"
        time.sleep(0.1)
    time.sleep(0.5)
    leaked = [row["event_type"] for row in _events_of(db, response_id) if mark in row["p"]]
    assert leaked == []


def test_deleted_call_item_no_longer_blocks(client: openai.OpenAI) -> None:
    conv = client.conversations.create()
    r = client.responses.create(model=MODEL, input='call get_weather {"city": "Paris"}', tools=[WEATHER_TOOL],
                                conversation=conv.id)
    call = r.output[0]
    client.conversations.items.delete(call.id, conversation_id=conv.id)  # type: ignore[union-attr]
    assert [i.type for i in client.conversations.items.list(conv.id)] == ["message"]
    assert client.responses.create(model=MODEL, input="say 2 words", conversation=conv.id).output_text == words(2)


# --- one conversation, two surfaces ----------------------------------------------------------------------------


def test_conversation_across_surfaces(client: openai.OpenAI, stack: Stack) -> None:
    assistant = client.beta.assistants.create(model=MODEL, instructions="Be brief.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "say 3 words"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=50)
    assert run.status == "completed"
    m1, m2 = marker(), marker()
    r1 = client.responses.create(model=MODEL, input=f"{m1} say 4 words", conversation=thread.id)
    assert r1.output_text == words(4) and r1.conversation is not None
    assert r1.conversation.id == thread_to_conv(thread.id)
    r2 = client.responses.create(model=MODEL, input=f"{m2} say 2 words", conversation=thread_to_conv(thread.id))
    assert r2.output_text == words(2)
    # The second response saw the run's turn and the first response's.
    assert roles_and_texts(chat_of(stack, m2)) == [
        ("user", "say 3 words"), ("assistant", words(3)), ("user", f"{m1} say 4 words"), ("assistant", words(4)),
        ("user", f"{m2} say 2 words")]
    client.beta.threads.messages.create(thread.id, role="user", content="say 1 word")
    run2 = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run2.status == "completed"

    expected = ["say 3 words", words(3), f"{m1} say 4 words", words(4), f"{m2} say 2 words", words(2),
                "say 1 word", words(1)]
    messages = list(client.beta.threads.messages.list(thread.id, order="asc", limit=3))
    items = [i for i in client.conversations.items.list(thread_to_conv(thread.id), order="asc", limit=3)
             if i.type == "message"]
    assert message_texts(messages) == expected == item_texts(items)
    assert [m.id for m in messages] == [i.id for i in items]
    assert [m.role for m in messages] == [i.role for i in items] == ["user", "assistant"] * 4  # type: ignore[union-attr]
    assert messages[1].run_id == run.id and messages[3].run_id is None

    # A conversation begun on the Conversations surface takes runs, named either way.
    conv = client.conversations.create(items=[{"role": "user", "content": "say 5 words"}])
    by_conv = client.beta.threads.runs.create_and_poll(thread_id=conv.id, assistant_id=assistant.id,
                                                       poll_interval_ms=50)
    assert by_conv.status == "completed" and by_conv.thread_id == conv_to_thread(conv.id)
    by_thread = client.beta.threads.runs.create_and_poll(
        thread_id=conv_to_thread(conv.id), assistant_id=assistant.id, poll_interval_ms=50,
        additional_messages=[{"role": "user", "content": "say 2 words"}])
    assert by_thread.status == "completed"
    assert item_texts(client.conversations.items.list(conv.id, order="asc")) == [
        "say 5 words", words(5), "say 2 words", words(2)]
    assert message_texts(client.beta.threads.messages.list(conv.id, order="asc")) == [
        "say 5 words", words(5), "say 2 words", words(2)]


# --- overhead ---------------------------------------------------------------------------------------------------


def test_foreground_overhead(client: openai.OpenAI, stack: Stack) -> None:
    """Wall time of a foreground `responses.create` minus the model's own time (its request log), printed."""
    client.responses.create(model=MODEL, input="say 5 words")  # warm up
    samples: list[tuple[str, float, float, float]] = []
    for _ in range(20):
        mark = marker()
        wall_start, start = time.time(), time.perf_counter()
        r = client.responses.create(model=MODEL, input=f"{mark} say 5 words")
        samples.append((mark, wall_start, time.perf_counter() - start, time.time()))
        assert r.output_text == words(5)
    log = ModelLog(stack)
    overhead, walls, models, before, after = [], [], [], [], []
    for mark, wall_start, wall, wall_end in samples:
        (chat,) = log.with_text(mark)
        model_s = chat["finished_monotonic"] - chat["received_monotonic"]
        walls.append(wall)
        models.append(model_s)
        overhead.append(wall - model_s)
        before.append(chat["received_wall"] - wall_start)  # request sent -> the model has it
        after.append(wall_end - chat["finished_wall"])  # the model done -> the SDK has the Response

    def ms(values: list[float]) -> str:
        return f"p50 {percentile(values, 0.5) * 1000:.1f} ms, p90 {percentile(values, 0.9) * 1000:.1f} ms"

    print(f"\nforeground response overhead over the model (n={len(samples)}, say 5 words): {ms(overhead)}"
          f"\n  wall {ms(walls)}; model {ms(models)}"
          f"\n  before the model {ms(before)}; after the model {ms(after)}")
    assert percentile(overhead, 0.5) < 2.0
