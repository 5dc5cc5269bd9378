"""Where the executor sends token deltas as they stream: the run's deltas subject on NATS.

A takeover attempt first reads what the lapsed attempt already sent, and only sends text beyond it (when its
answer begins the same way), so watchers never see the same words twice.
"""

from __future__ import annotations

from typing import Protocol

from shared import deltas
from shared.bus import Bus


class Deltas(Protocol):
    async def attempt_started(self, thread_id: str, run_id: str, attempt: int) -> None: ...
    async def text(self, thread_id: str, run_id: str, message_id: str, fragment: str) -> None: ...
    async def tool_call(self, thread_id: str, run_id: str, step_id: str, index: int, call_id: str | None,
                        name: str | None, arguments: str | None) -> None: ...
    def finished(self, run_id: str) -> None: ...


class _Item:
    def __init__(self, sent: str = "", silenced: bool = False) -> None:
        self.sent = sent  # what watchers already have (from every attempt)
        self.total = ""  # what this attempt produced
        self.silenced = silenced
        self.end = 0
        self.calls: dict[int, str] = {}


class NatsDeltas:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._items: dict[str, dict[str, _Item]] = {}  # run id -> item id -> progress

    async def attempt_started(self, thread_id: str, run_id: str, attempt: int) -> None:
        items: dict[str, _Item] = {}
        if attempt > 1:
            for item_id, p in deltas.progress(await deltas.retained(self._bus, thread_id, run_id)).items():
                items[item_id] = _Item(sent=p.text, silenced=bool(p.calls))
        self._items[run_id] = items

    def _item(self, run_id: str, item_id: str) -> _Item:
        return self._items.setdefault(run_id, {}).setdefault(item_id, _Item())

    async def text(self, thread_id: str, run_id: str, message_id: str, fragment: str) -> None:
        item = self._item(run_id, message_id)
        item.total += fragment
        if not item.total.startswith(item.sent):
            return  # still replaying what was sent, or diverged: the completed message carries the text
        new = item.total[len(item.sent):]
        if new:
            item.sent = item.total
            await deltas.publish(self._bus, thread_id, run_id, deltas.Delta(
                item=message_id, kind="text", end=len(item.total), text=new))

    async def tool_call(self, thread_id: str, run_id: str, step_id: str, index: int, call_id: str | None,
                        name: str | None, arguments: str | None) -> None:
        item = self._item(run_id, step_id)
        if item.silenced:
            return  # a lapsed attempt streamed this step; requires_action carries the full calls
        if index not in item.calls:
            item.calls[index] = ""
            item.end += 1
        item.calls[index] += arguments or ""
        item.end += len(arguments or "")
        await deltas.publish(self._bus, thread_id, run_id, deltas.Delta(
            item=step_id, kind="tool", end=item.end, text=arguments or "", index=index, call_id=call_id, name=name))

    def finished(self, run_id: str) -> None:
        self._items.pop(run_id, None)


class NoDeltas:
    async def attempt_started(self, thread_id: str, run_id: str, attempt: int) -> None:
        pass

    async def text(self, thread_id: str, run_id: str, message_id: str, fragment: str) -> None:
        pass

    async def tool_call(self, thread_id: str, run_id: str, step_id: str, index: int, call_id: str | None,
                        name: str | None, arguments: str | None) -> None:
        pass

    def finished(self, run_id: str) -> None:
        pass
