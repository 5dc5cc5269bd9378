"""Where the executor sends token deltas as they stream (the seam live streaming plugs into)."""

from __future__ import annotations

from typing import Protocol

from shared.events import ToolCall


class Deltas(Protocol):
    async def text(self, thread_id: str, run_id: str, message_id: str, fragment: str) -> None: ...
    async def tool_call(self, thread_id: str, run_id: str, step_id: str, index: int, call_id: str | None,
                        name: str | None, arguments: str | None) -> None: ...
    async def attempt_started(self, thread_id: str, run_id: str, attempt: int) -> None: ...


class NoDeltas:
    async def text(self, thread_id: str, run_id: str, message_id: str, fragment: str) -> None:
        pass

    async def tool_call(self, thread_id: str, run_id: str, step_id: str, index: int, call_id: str | None,
                        name: str | None, arguments: str | None) -> None:
        pass

    async def attempt_started(self, thread_id: str, run_id: str, attempt: int) -> None:
        pass


__all__ = ["Deltas", "NoDeltas", "ToolCall"]
