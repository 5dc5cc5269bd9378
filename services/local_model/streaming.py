"""Delivering a planned reply at the simulated pace, whole or as server-sent events, and stopping as soon
as the client has gone or the server is shutting down."""

from __future__ import annotations

import asyncio
import time
from typing import NamedTuple

import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from .errors import error_response
from .replies import Reply, stream_deltas
from .requestlog import RequestRecord
from .schema import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    ErrorBody,
    ErrorDetail,
    FunctionCallOut,
    ToolCallOut,
    Usage,
)

SYSTEM_FINGERPRINT = "threadlog-offline"
# How often a long pause looks for a departed client; aiohttp does not cancel handlers on disconnect.
_POLL_S = 0.05
_ENCODER = msgspec.json.Encoder()


class Pace(NamedTuple):
    first_token_s: float
    token_s: float


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def pause(request: web.Request, seconds: float, stopping: asyncio.Event) -> bool:
    """Sleep up to `seconds`; False when cut short by a departed client or a stopping server."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not (client_gone(request) or stopping.is_set()):
        remaining = deadline - loop.time()
        if remaining <= 0:
            return True
        await asyncio.sleep(min(remaining, _POLL_S))
    return False


async def _timed_pause(request: web.Request, seconds: float, stopping: asyncio.Event, record: RequestRecord) -> bool:
    if seconds <= 0:
        return not (client_gone(request) or stopping.is_set())
    started = time.monotonic()
    completed = await pause(request, seconds, stopping)
    # The planned delay when it ran in full keeps model time exact; otherwise what was actually spent.
    record.model_time_ms += 1000 * (seconds if completed else time.monotonic() - started)
    return completed


def _usage(record: RequestRecord, reply: Reply) -> Usage:
    completion = reply.completion_tokens
    return Usage(
        prompt_tokens=record.prompt_tokens,
        completion_tokens=completion,
        total_tokens=record.prompt_tokens + completion,
    )


async def respond_whole(
    request: web.Request,
    model: str,
    completion_id: str,
    reply: Reply,
    record: RequestRecord,
    pace: Pace,
    stopping: asyncio.Event,
) -> web.StreamResponse:
    steps = len(stream_deltas(reply))
    if steps:
        # Same timeline as a stream: the first token after its extra wait, then one token per step.
        if not await _timed_pause(request, pace.first_token_s + pace.token_s, stopping, record):
            return _cut_short(record, stopping)
        record.mark_first_token()
        if not await _timed_pause(request, pace.token_s * (steps - 1), stopping, record):
            return _cut_short(record, stopping)
    tool_calls: list[ToolCallOut] | UnsetType = UNSET
    if reply.tool_calls:
        tool_calls = [
            ToolCallOut(id=c.id, function=FunctionCallOut(name=c.name, arguments=c.arguments)) for c in reply.tool_calls
        ]
    message = AssistantMessage(content=reply.content, tool_calls=tool_calls)
    completion = ChatCompletion(
        id=completion_id,
        created=int(time.time()),
        model=model,
        choices=[Choice(index=0, message=message, finish_reason=reply.finish_reason)],
        usage=_usage(record, reply),
        system_fingerprint=SYSTEM_FINGERPRINT,
    )
    record.completion_tokens = reply.completion_tokens
    record.finish(reply.finish_reason, 200)
    return web.Response(body=_ENCODER.encode(completion), content_type="application/json")


def _cut_short(record: RequestRecord, stopping: asyncio.Event) -> web.Response:
    if stopping.is_set():
        record.finish("shutdown", 503)
        return error_response(503, "the threadlog offline model is shutting down")
    # Nobody will read this answer; 499 is what proxies log for a client that left.
    record.finish("disconnected", 499)
    return error_response(499, "client closed the request")


async def respond_streamed(
    request: web.Request,
    model: str,
    completion_id: str,
    reply: Reply,
    record: RequestRecord,
    pace: Pace,
    stopping: asyncio.Event,
    *,
    include_usage: bool,
) -> web.StreamResponse:
    created = int(time.time())

    def frame(choices: list[ChunkChoice], usage: Usage | UnsetType = UNSET) -> bytes:
        chunk = ChatCompletionChunk(
            id=completion_id,
            created=created,
            model=model,
            system_fingerprint=SYSTEM_FINGERPRINT,
            choices=choices,
            usage=usage,
        )
        return b"data: " + _ENCODER.encode(chunk) + b"\n\n"

    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    sent = 0
    try:
        await response.prepare(request)
        opening = Delta(role="assistant", content=UNSET if reply.tool_calls else "")
        await response.write(frame([ChunkChoice(index=0, delta=opening)]))
        for i, delta in enumerate(stream_deltas(reply)):
            delay = pace.token_s + (pace.first_token_s if i == 0 else 0.0)
            if not await _timed_pause(request, delay, stopping, record):
                return await _stream_cut_short(request, response, record, sent)
            await response.write(frame([ChunkChoice(index=0, delta=delta)]))
            record.mark_first_token()
            sent += 1
        await response.write(frame([ChunkChoice(index=0, delta=Delta(), finish_reason=reply.finish_reason)]))
        if include_usage:
            await response.write(frame([], usage=_usage(record, reply)))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
    except ConnectionError:
        record.completion_tokens = sent
        record.finish("disconnected", 200)
        return response
    record.completion_tokens = reply.completion_tokens
    record.finish(reply.finish_reason, 200)
    return response


async def _stream_cut_short(
    request: web.Request, response: web.StreamResponse, record: RequestRecord, sent: int
) -> web.StreamResponse:
    record.completion_tokens = sent
    if client_gone(request):
        record.finish("disconnected", 200)
        return response
    # The status line is long gone; an error event is how OpenAI reports a failure mid-stream.
    detail = ErrorDetail(
        message="the threadlog offline model is shutting down", type="server_error", param=None, code=None
    )
    await response.write(b"data: " + _ENCODER.encode(ErrorBody(error=detail)) + b"\n\n")
    await response.write_eof()
    record.finish("shutdown", 200)
    return response
