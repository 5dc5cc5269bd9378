"""Test hooks carried in the model name, so a client that can only pick a model can still ask for
failures and latency: `+error<status>`, `+hang`, `+delay<ms per token>`, `+first<ms to first token>`."""

from __future__ import annotations

import re

import msgspec

_HOOK_RE = re.compile(r"\+(?:(error|delay|first)(\d+)|(hang))(?![A-Za-z0-9])")


class ModelHooks(msgspec.Struct, frozen=True, kw_only=True):
    error_status: int | None = None
    hang: bool = False
    token_delay_ms: float | None = None
    first_token_delay_ms: float | None = None


def parse_hooks(model: str) -> ModelHooks:
    """Hooks named in `model`; the last one of a kind wins, and `+error` outside 400-599 is ignored."""
    error_status: int | None = None
    hang = False
    token_delay: float | None = None
    first_token_delay: float | None = None
    for match in _HOOK_RE.finditer(model):
        kind, number, hang_word = match.groups()
        if hang_word:
            hang = True
        elif kind == "error" and 400 <= int(number) <= 599:
            error_status = int(number)
        elif kind == "delay":
            token_delay = float(number)
        elif kind == "first":
            first_token_delay = float(number)
    return ModelHooks(
        error_status=error_status,
        hang=hang,
        token_delay_ms=token_delay,
        first_token_delay_ms=first_token_delay,
    )
