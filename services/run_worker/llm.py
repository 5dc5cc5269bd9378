"""The model, through the official openai SDK (any OpenAI-compatible endpoint): one client per process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import openai

from shared.events import FunctionCall, LastError, ToolCall, Usage
from shared.ids import new_id


class ModelError(Exception):
    """The model call failed for good (after the SDK's bounded retries); the run fails with `last_error`."""

    def __init__(self, error: LastError) -> None:
        super().__init__(error.message)
        self.error = error


class Fragment(msgspec.Struct, frozen=True):
    """One streamed piece: text, or a piece of the index-th tool call."""

    text: str | None = None
    tool_index: int | None = None
    tool_id: str | None = None
    tool_name: str | None = None
    tool_arguments: str | None = None


class Finish(msgspec.Struct, frozen=True):
    reason: str
    usage: Usage | None


def _error(e: Exception) -> LastError:
    if isinstance(e, openai.RateLimitError):
        return LastError(code="rate_limit_exceeded", message=f"The model endpoint refused for rate limits: {e}")
    if isinstance(e, openai.BadRequestError):
        return LastError(code="invalid_prompt", message=f"The model endpoint rejected the request: {e}")
    if isinstance(e, openai.AuthenticationError | openai.PermissionDeniedError):
        return LastError(code="server_error", message=f"The model endpoint refused our credentials: {e}")
    if isinstance(e, openai.APITimeoutError):
        return LastError(code="server_error", message="The model endpoint timed out.")
    if isinstance(e, openai.APIConnectionError):
        return LastError(code="server_error", message=f"Could not reach the model endpoint: {e}")
    return LastError(code="server_error", message=f"The model endpoint failed: {e}")


class Model:
    def __init__(self, base_url: str | None, api_key: str | None, *, timeout_s: float = 120.0,
                 max_retries: int = 2) -> None:
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "none", timeout=timeout_s,
                                         max_retries=max_retries)

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[Fragment | Finish]:
        """Yield fragments, then one Finish. Errors become ModelError with OpenAI's last_error codes."""
        try:
            stream = await self.client.chat.completions.create(**request, stream=True,
                                                               stream_options={"include_usage": True})
            reason = "stop"
            usage: Usage | None = None
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        usage = Usage(prompt_tokens=chunk.usage.prompt_tokens,
                                      completion_tokens=chunk.usage.completion_tokens,
                                      total_tokens=chunk.usage.total_tokens)
                    for choice in chunk.choices:
                        delta = choice.delta
                        if delta.content:
                            yield Fragment(text=delta.content)
                        for call in delta.tool_calls or []:
                            fn = call.function
                            yield Fragment(tool_index=call.index, tool_id=call.id, tool_name=fn.name if fn else None,
                                           tool_arguments=fn.arguments if fn else None)
                        if choice.finish_reason:
                            reason = choice.finish_reason
            yield Finish(reason, usage)
        except openai.OpenAIError as e:
            raise ModelError(_error(e)) from e

    async def close(self) -> None:
        await self.client.close()


class ToolCallBuilder:
    """Assembles streamed tool-call pieces by index, as the OpenAI stream delivers them."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, f: Fragment) -> None:
        assert f.tool_index is not None
        call = self._calls.setdefault(f.tool_index, {"id": "", "name": "", "arguments": ""})
        if f.tool_id:
            call["id"] = f.tool_id
        if f.tool_name:
            call["name"] += f.tool_name
        if f.tool_arguments:
            call["arguments"] += f.tool_arguments

    def calls(self) -> list[ToolCall]:
        return [ToolCall(id=c["id"] or new_id("call"), function=FunctionCall(name=c["name"], arguments=c["arguments"]))
                for _, c in sorted(self._calls.items())]

    def __bool__(self) -> bool:
        return bool(self._calls)
