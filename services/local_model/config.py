"""Settings of the offline model; built from the environment by the entry point only, then passed down."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

MODEL_ID = "threadlog-offline"
DEFAULT_PORT = 8090


class LocalModelConfig(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # Simulated generation speed; a `+delay<N>` model name overrides token_delay_ms per request.
    token_delay_ms: float = 0.0
    first_token_delay_ms: float = 0.0
    # Bounds memory when benchmarks send far more requests than anyone will inspect.
    request_log_limit: int = 10_000
    log_level: str = "INFO"


_ENV_FIELDS = {
    "THREADLOG_LOCAL_MODEL_HOST": "host",
    "THREADLOG_LOCAL_MODEL_PORT": "port",
    "THREADLOG_LOCAL_MODEL_TOKEN_DELAY_MS": "token_delay_ms",
    "THREADLOG_LOCAL_MODEL_FIRST_TOKEN_MS": "first_token_delay_ms",
    "THREADLOG_LOCAL_MODEL_REQUEST_LOG_LIMIT": "request_log_limit",
    "THREADLOG_LOG_LEVEL": "log_level",
}


def config_from_env(env: Mapping[str, str]) -> LocalModelConfig:
    """Read THREADLOG_LOCAL_MODEL_* (and THREADLOG_LOG_LEVEL); raises ValueError on a malformed value."""
    raw = {field: env[name] for name, field in _ENV_FIELDS.items() if env.get(name)}
    try:
        config = msgspec.convert(raw, LocalModelConfig, strict=False)
    except msgspec.ValidationError as e:
        raise ValueError(f"invalid offline model configuration: {e}") from None
    if config.token_delay_ms < 0 or config.first_token_delay_ms < 0 or config.request_log_limit < 1:
        raise ValueError("offline model delays must be >= 0 and the request log limit >= 1")
    return config
