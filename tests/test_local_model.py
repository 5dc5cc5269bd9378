"""The offline model served on a loopback port and driven with the official openai SDK, as the run-worker
drives it; plus its tokenizer and model-name hooks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import pytest_asyncio
from aiohttp import web
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessage, ChatCompletionMessageFunctionToolCall

from services.local_model.app import make_app
from services.local_model.config import LocalModelConfig, config_from_env
from services.local_model.hooks import ModelHooks, parse_hooks
from shared.tokens import count_message_tokens, count_tokens, split_tokens

ROOT = Path(__file__).resolve().parent.parent
MODEL = "threadlog-offline"
WEATHER_TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
]


@pytest_asyncio.fixture
async def base_url() -> AsyncIterator[str]:
    runner = web.AppRunner(make_app(LocalModelConfig(port=0)), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest_asyncio.fixture
async def client(base_url: str) -> AsyncIterator[AsyncOpenAI]:
    sdk = AsyncOpenAI(base_url=base_url + "/v1", api_key="offline", max_retries=0, timeout=5.0)
    yield sdk
    await sdk.close()


async def _requests(base_url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(base_url + "/_local/requests") as response:
        assert response.status == 200
        records: list[dict[str, Any]] = (await response.json())["data"]
        return records


async def _wait_for_record(base_url: str, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The latest logged request once it meets `condition`; the server logs asynchronously to the client."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        records = await _requests(base_url)
        if records and condition(records[-1]):
            return records[-1]
        await asyncio.sleep(0.02)
    raise AssertionError("the request log never showed the expected request")


async def _wait_for_outcome(base_url: str) -> dict[str, Any]:
    return await _wait_for_record(base_url, lambda record: record["outcome"] is not None)


def _user(text: str) -> Any:
    return [{"role": "user", "content": text}]


def _call_names(message: ChatCompletionMessage) -> list[str]:
    calls = message.tool_calls or []
    assert all(isinstance(c, ChatCompletionMessageFunctionToolCall) for c in calls)
    return [c.function.name for c in calls if isinstance(c, ChatCompletionMessageFunctionToolCall)]


@pytest.mark.asyncio
async def test_plain_reply(client: AsyncOpenAI) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there!"}]
    completion = await client.chat.completions.create(model="any-name", messages=messages)  # type: ignore[arg-type]
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "any-name"
    assert completion.system_fingerprint == "threadlog-offline"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "This is the threadlog offline model. You said: Hello there!"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_message_tokens(messages)
    assert completion.usage.completion_tokens == count_tokens(choice.message.content)
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


@pytest.mark.asyncio
async def test_stream_concatenates_to_plain_reply_with_usage_last(client: AsyncOpenAI) -> None:
    messages = _user("Stream me, please.")
    plain = await client.chat.completions.create(model=MODEL, messages=messages)
    stream = await client.chat.completions.create(
        model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert "".join(p or "" for p in pieces) == plain.choices[0].message.content
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == plain.usage
    assert plain.usage is not None
    assert len(pieces) == plain.usage.completion_tokens


@pytest.mark.asyncio
async def test_stream_without_include_usage_sends_no_usage(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model=MODEL, messages=_user("say 2 words"), stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.usage is None and c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "word1 word2"


@pytest.mark.asyncio
async def test_say_n_words_controls_length(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model=MODEL, messages=_user("Please say 7 words now."))
    assert completion.choices[0].message.content == "word1 word2 word3 word4 word5 word6 word7"
    assert completion.usage is not None and completion.usage.completion_tokens == 7


@pytest.mark.asyncio
async def test_max_tokens_stops_with_length(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model=MODEL, messages=_user("say 50 words"), max_tokens=5)
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "word1 word2 word3 word4 word5"
    assert completion.usage is not None and completion.usage.completion_tokens == 5

    stream = await client.chat.completions.create(
        model=MODEL, messages=_user("say 50 words"), max_completion_tokens=3, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "word1 word2 word3"
    assert chunks[-1].choices[0].finish_reason == "length"


@pytest.mark.asyncio
async def test_tool_call_round_trip(client: AsyncOpenAI) -> None:
    messages: list[Any] = _user('What is it like outside? call get_weather {"city": "Paris"}')
    completion = await client.chat.completions.create(model=MODEL, messages=messages, tools=WEATHER_TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
    answer = await client.chat.completions.create(model=MODEL, messages=messages, tools=WEATHER_TOOLS)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == "Tool results: get_weather: sunny, 21C"


@pytest.mark.asyncio
async def test_streamed_tool_calls_follow_openai_shape(client: AsyncOpenAI) -> None:
    text = 'call get_weather {"city": "Paris"} and then call get_time'
    stream = await client.chat.completions.create(model=MODEL, messages=_user(text), tools=WEATHER_TOOLS, stream=True)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            if delta.id is not None:
                assert delta.index not in calls and delta.type == "function"
                assert delta.function is not None and delta.function.arguments == ""
                calls[delta.index] = {"id": delta.id, "name": delta.function.name or "", "arguments": ""}
            elif delta.function is not None:
                calls[delta.index]["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    assert [c["name"] for c in calls.values()] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert json.loads(calls[1]["arguments"]) == {}
    assert calls[0]["id"] != calls[1]["id"]


@pytest.mark.asyncio
async def test_parallel_tool_calls_false_makes_one_call(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=_user("call get_time then call get_weather"),
        tools=WEATHER_TOOLS,
        parallel_tool_calls=False,
    )
    assert _call_names(completion.choices[0].message) == ["get_time"]


@pytest.mark.asyncio
async def test_tool_choice(client: AsyncOpenAI) -> None:
    text = "call get_weather"
    none = await client.chat.completions.create(
        model=MODEL, messages=_user(text), tools=WEATHER_TOOLS, tool_choice="none"
    )
    assert none.choices[0].message.tool_calls is None

    required = await client.chat.completions.create(
        model=MODEL, messages=_user("no tool named here"), tools=WEATHER_TOOLS, tool_choice="required"
    )
    assert _call_names(required.choices[0].message) == ["get_weather"]

    forced = await client.chat.completions.create(
        model=MODEL,
        messages=_user(text),
        tools=WEATHER_TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert _call_names(forced.choices[0].message) == ["get_time"]

    with pytest.raises(openai.BadRequestError) as excinfo:
        await client.chat.completions.create(
            model=MODEL,
            messages=_user(text),
            tools=WEATHER_TOOLS,
            tool_choice={"type": "function", "function": {"name": "launch_rocket"}},
        )
    assert excinfo.value.param == "tool_choice"


@pytest.mark.asyncio
async def test_json_response_format_and_content_parts(client: AsyncOpenAI) -> None:
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "this picture"},
            ],
        }
    ]
    completion = await client.chat.completions.create(
        model=MODEL, messages=messages, response_format={"type": "json_object"}
    )
    content = completion.choices[0].message.content
    assert content is not None
    assert json.loads(content) == {"reply": "This is the threadlog offline model. You said: Describe\nthis picture"}
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_message_tokens(messages)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
    ],
)
@pytest.mark.asyncio
async def test_error_models(client: AsyncOpenAI, status: int, error_class: type[openai.APIStatusError]) -> None:
    with pytest.raises(error_class) as excinfo:
        await client.chat.completions.create(model=f"{MODEL}+error{status}", messages=_user("hi"), stream=True)
    assert excinfo.value.status_code == status
    body = excinfo.value.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}
    assert f"+error{status}" in body["message"]


@pytest.mark.asyncio
async def test_invalid_requests_answer_400(client: AsyncOpenAI) -> None:
    for kwargs in ({"n": 2}, {"max_tokens": 0}):
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model=MODEL, messages=_user("hi"), **kwargs)  # type: ignore[call-overload]
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=MODEL, messages=[])
    with pytest.raises(openai.NotFoundError):
        await client.embeddings.create(model=MODEL, input="hi")


@pytest.mark.asyncio
async def test_hang_model_never_answers(base_url: str) -> None:
    impatient = AsyncOpenAI(base_url=base_url + "/v1", api_key="offline", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        await impatient.chat.completions.create(model=f"{MODEL}+hang", messages=_user("hi"))
    await impatient.close()
    record = await _wait_for_outcome(base_url)
    assert record["outcome"] == "hang"
    assert record["first_token_monotonic"] is None


@pytest.mark.asyncio
async def test_request_log_records_timing_and_clears(base_url: str, client: AsyncOpenAI) -> None:
    started = time.monotonic()
    stream = await client.chat.completions.create(
        model=f"{MODEL}+delay20+first30", messages=_user("say 3 words"), stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "word1 word2 word3"
    assert time.monotonic() - started >= 0.09

    (record,) = await _requests(base_url)
    assert record["body"]["messages"] == _user("say 3 words")
    assert record["model"] == f"{MODEL}+delay20+first30"
    assert record["stream"] is True
    assert (record["status"], record["outcome"]) == (200, "stop")
    assert record["completion_tokens"] == 3
    assert record["model_time_ms"] == pytest.approx(30 + 3 * 20)
    assert record["first_token_monotonic"] - record["received_monotonic"] >= 0.045
    assert record["finished_monotonic"] >= record["first_token_monotonic"]
    assert record["finished_wall"] >= record["received_wall"]

    async with aiohttp.ClientSession() as http, http.delete(base_url + "/_local/requests") as response:
        assert (await response.json()) == {"deleted": 1}
    assert await _requests(base_url) == []


@pytest.mark.asyncio
async def test_client_disconnect_stops_generation(base_url: str, client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=f"{MODEL}+delay20", messages=_user("say 500 words"), stream=True
    )
    received = 0
    async for _chunk in stream:
        received += 1
        if received == 3:
            break
    await stream.close()
    record = await _wait_for_outcome(base_url)
    assert record["outcome"] == "disconnected"
    assert record["completion_tokens"] < 20


@pytest.mark.asyncio
async def test_shutdown_ends_streams_and_hanging_requests() -> None:
    runner = web.AppRunner(make_app(LocalModelConfig(port=0)), access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    sdk = AsyncOpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0)
    hanging = asyncio.create_task(sdk.chat.completions.create(model=f"{MODEL}+hang", messages=_user("hi")))
    await _wait_for_record(base_url, lambda record: record["model"] == f"{MODEL}+hang")
    stream = await sdk.chat.completions.create(model=f"{MODEL}+delay50", messages=_user("say 100 words"), stream=True)
    with pytest.raises(openai.APIError, match="shutting down"):
        async for _chunk in stream:
            started = time.monotonic()
            await runner.cleanup()
    assert time.monotonic() - started < 1.0
    with pytest.raises(openai.InternalServerError):
        await hanging
    await sdk.close()


@pytest.mark.asyncio
async def test_models_and_health(base_url: str, client: AsyncOpenAI) -> None:
    models = await client.models.list()
    assert [(m.id, m.object, m.owned_by) for m in models.data] == [("threadlog-offline", "model", "threadlog")]
    async with aiohttp.ClientSession() as http, http.get(base_url + "/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


def test_tokenizer_is_lossless_and_counts_messages() -> None:
    for text in ["", "   ", "Hello, world!  ", "\n\tline one\nline two\n", "naïve café — ok…", "a_b-c.d"]:
        assert "".join(split_tokens(text)) == text
        assert count_tokens(text) == len(split_tokens(text))
    assert split_tokens("Hi, you there ") == ["Hi", ",", " you", " there", " "]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "one two"},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
    ]
    assert count_message_tokens(messages) == (4 + 2) + (4 + 1 + 2)


def test_model_name_hooks_and_config() -> None:
    assert parse_hooks("threadlog-offline") == ModelHooks()
    assert parse_hooks("x+error429+delay200+first50") == ModelHooks(
        error_status=429, token_delay_ms=200, first_token_delay_ms=50
    )
    assert parse_hooks("x+hang").hang
    assert parse_hooks("x+error200").error_status is None
    assert parse_hooks("x+delay20ms").token_delay_ms is None
    config = config_from_env({"THREADLOG_LOCAL_MODEL_PORT": "9000", "THREADLOG_LOCAL_MODEL_TOKEN_DELAY_MS": "5"})
    assert (config.port, config.token_delay_ms, config.first_token_delay_ms) == (9000, 5.0, 0.0)
    with pytest.raises(ValueError):
        config_from_env({"THREADLOG_LOCAL_MODEL_PORT": "not-a-port"})


@pytest.mark.asyncio
async def test_entry_point_announces_itself_and_stops_on_sigterm() -> None:
    env = {**os.environ, "THREADLOG_LOCAL_MODEL_PORT": "0", "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.local_model", cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        started = json.loads(await asyncio.wait_for(process.stderr.readline(), 10))
        assert started["service"] == "local_model" and started["level"] == "info"
        assert "offline model" in started["msg"] and "ts" in started
        async with aiohttp.ClientSession() as http, http.get(started["url"] + "/models") as response:
            assert (await response.json())["data"][0]["id"] == "threadlog-offline"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        rest = [json.loads(line) for line in (await process.stderr.read()).decode().splitlines()]
        assert rest[-1]["msg"] == "offline model stopped"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
