"""Talking to a running stack from the orchestrating process: the official SDK and the offline model's log."""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

import openai

from threadlog.stack import Stack


def sdk(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=stack.api_key, max_retries=0)


def model_sdk(stack: Stack) -> openai.OpenAI:
    """The SDK pointed straight at the offline model (the baseline for run latencies)."""
    return openai.OpenAI(base_url=f"{model_url(stack)}/v1", api_key="offline", max_retries=0)


def model_url(stack: Stack) -> str:
    assert stack.local_model is not None and stack.local_model.probe_port is not None
    return f"http://127.0.0.1:{stack.local_model.probe_port}"


def root_url(stack: Stack) -> str:
    return stack.base_url.removesuffix("/v1")


def marker() -> str:
    return "m" + uuid.uuid4().hex[:12]


def model_requests(stack: Stack) -> list[dict[str, Any]]:
    """The offline model's record of chat-completion requests (received / first-token / finished times)."""
    with urllib.request.urlopen(f"{model_url(stack)}/_local/requests", timeout=30) as response:
        data = json.loads(response.read())["data"]
    return [r for r in data if r["method"] == "POST" and r["path"] == "/v1/chat/completions"]


def clear_model_requests(stack: Stack) -> None:
    request = urllib.request.Request(f"{model_url(stack)}/_local/requests", method="DELETE")
    with urllib.request.urlopen(request, timeout=30):
        pass


def words(n: int) -> str:
    return " ".join(f"word{i}" for i in range(1, n + 1))
