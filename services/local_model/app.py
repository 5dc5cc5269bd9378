"""HTTP surface of the offline model: /v1/chat/completions and /v1/models as OpenAI serves them, plus
/healthz and the /_local/requests log for tests and benchmarks."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid

import msgspec
from aiohttp import web

from shared.tokens import count_message_tokens

from .config import MODEL_ID, LocalModelConfig
from .errors import error_response
from .hooks import ModelHooks, parse_hooks
from .replies import ReplyError, plan_reply
from .requestlog import RequestLog, RequestRecord
from .schema import ChatRequest, ModelCard, ModelList
from .streaming import Pace, pause, respond_streamed, respond_whole

CONFIG_KEY = web.AppKey("config", LocalModelConfig)
REQUEST_LOG_KEY = web.AppKey("request_log", RequestLog)
# Set on shutdown so hanging and slow requests end instead of holding the server open.
STOPPING_KEY = web.AppKey("stopping", asyncio.Event)

# Long conversations with tool output exceed aiohttp's 1 MiB default body limit.
MAX_BODY_BYTES = 64 * 1024 * 1024
# A fixed date keeps /v1/models byte-for-byte deterministic.
MODEL_CREATED = 1_735_689_600

_REQUEST_DECODER = msgspec.json.Decoder(ChatRequest)
_JSON_DECODER = msgspec.json.Decoder()
LOGGER_NAME = "threadlog.local_model"
_log = logging.getLogger(LOGGER_NAME)


def make_app(config: LocalModelConfig) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[CONFIG_KEY] = config
    app[REQUEST_LOG_KEY] = RequestLog(config.request_log_limit)
    app[STOPPING_KEY] = asyncio.Event()
    app.on_shutdown.append(_on_shutdown)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    app.router.add_route("*", "/v1/{tail:.*}", unknown_endpoint)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/_local/requests", get_requests)
    app.router.add_delete("/_local/requests", clear_requests)
    return app


async def _on_shutdown(app: web.Application) -> None:
    app[STOPPING_KEY].set()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    record = request.app[REQUEST_LOG_KEY].start(request.method, request.path)
    try:
        response = await _answer(request, record)
    except asyncio.CancelledError:
        if record.outcome is None:
            record.finish("cancelled", 499)
        raise
    _log.debug(
        "chat completion",
        extra={
            "seq": record.seq,
            "model": record.model,
            "status": record.status,
            "outcome": record.outcome,
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
        },
    )
    return response


async def _answer(request: web.Request, record: RequestRecord) -> web.StreamResponse:
    body = await request.read()
    try:
        chat = _REQUEST_DECODER.decode(body)
    except msgspec.DecodeError as e:
        record.body = _lenient_body(body)
        return _fail(record, 400, f"invalid chat completion request: {e}")
    # Decoding succeeded, so the bytes are valid JSON and can be served back verbatim.
    record.body = msgspec.Raw(body)
    record.model = chat.model
    record.stream = bool(chat.stream)
    hooks = parse_hooks(chat.model)
    if hooks.hang:
        await pause(request, math.inf, request.app[STOPPING_KEY])
        record.finish("hang", 499)
        return error_response(504, "the threadlog offline model was asked to hang (+hang)")
    if hooks.error_status is not None:
        status = hooks.error_status
        message = f"simulated HTTP {status} from the threadlog offline model (+error{status})"
        return _fail(record, status, message)
    if chat.n not in (None, 1):
        return _fail(record, 400, "the threadlog offline model generates a single choice (n=1)", param="n")
    if not chat.messages:
        return _fail(record, 400, "messages must contain at least one message", param="messages")
    try:
        reply = plan_reply(chat, _new_call_id)
    except ReplyError as e:
        return _fail(record, 400, str(e), param=e.param)
    record.prompt_tokens = count_message_tokens(msgspec.to_builtins(chat.messages))
    pace = _pace(request.app[CONFIG_KEY], hooks)
    stopping = request.app[STOPPING_KEY]
    completion_id = "chatcmpl-" + uuid.uuid4().hex
    if chat.stream:
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        return await respond_streamed(
            request, chat.model, completion_id, reply, record, pace, stopping, include_usage=include_usage
        )
    return await respond_whole(request, chat.model, completion_id, reply, record, pace, stopping)


def _pace(config: LocalModelConfig, hooks: ModelHooks) -> Pace:
    token_ms = config.token_delay_ms if hooks.token_delay_ms is None else hooks.token_delay_ms
    first_ms = hooks.first_token_delay_ms
    if first_ms is None:
        first_ms = config.first_token_delay_ms
    return Pace(first_token_s=first_ms / 1000, token_s=token_ms / 1000)


def _new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def _lenient_body(body: bytes) -> object:
    try:
        return _JSON_DECODER.decode(body)
    except msgspec.DecodeError:
        return body.decode("utf-8", errors="replace")


def _fail(
    record: RequestRecord, status: int, message: str, *, param: str | None = None, code: str | None = None
) -> web.Response:
    record.finish("error", status)
    return error_response(status, message, param=param, code=code)


async def list_models(request: web.Request) -> web.Response:
    _log_plain(request)
    cards = ModelList(data=[ModelCard(id=MODEL_ID, created=MODEL_CREATED)])
    return _json(cards)


async def get_model(request: web.Request) -> web.Response:
    # Any name is served, as chat completions accept any name.
    _log_plain(request)
    return _json(ModelCard(id=request.match_info["model"], created=MODEL_CREATED))


async def unknown_endpoint(request: web.Request) -> web.Response:
    record = request.app[REQUEST_LOG_KEY].start(request.method, request.path)
    message = f"the threadlog offline model does not serve {request.method} {request.path}"
    return _fail(record, 404, message, code="unknown_url")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def get_requests(request: web.Request) -> web.Response:
    return _json(request.app[REQUEST_LOG_KEY].snapshot())


async def clear_requests(request: web.Request) -> web.Response:
    return web.json_response({"deleted": request.app[REQUEST_LOG_KEY].clear()})


def _log_plain(request: web.Request) -> None:
    request.app[REQUEST_LOG_KEY].start(request.method, request.path).finish("ok", 200)


def _json(value: object) -> web.Response:
    return web.Response(body=msgspec.json.encode(value), content_type="application/json")
