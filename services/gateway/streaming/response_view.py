"""What a watcher of a response sees: the Responses stream events, from the same log and deltas as runs."""

from __future__ import annotations

import copy
from typing import Any

from shared import deltas as delta_format
from shared import wire_responses
from shared.events import (
    AnyEvent,
    FunctionCallItem,
    MessageCompleted,
    MessageCreated,
    MessageIncomplete,
    ResponseCancelled,
    ResponseCompleted,
    ResponseCreated,
    ResponseFailed,
    ResponseIncomplete,
    ResponseStarted,
    text_of,
)
from shared.patches import response_patch

Obj = dict[str, Any]
Named = tuple[str, Obj]
ENDED = frozenset({"completed", "incomplete", "failed", "cancelled"})


def _text_part(text: str) -> Obj:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class ResponseView:
    def __init__(self, response_id: str) -> None:
        self.response_id = response_id
        self.response: Obj | None = None
        self.items: dict[str, Obj] = {}
        self.index: dict[str, int] = {}

    def concerns(self, event: AnyEvent) -> bool:
        if isinstance(event, MessageCompleted | MessageIncomplete):
            return event.message_id in self.items
        if isinstance(event, MessageCreated):
            return event.response_id == self.response_id and event.role == "assistant"
        return getattr(event, "response_id", None) == self.response_id

    def _with(self, kind: str) -> Named:
        assert self.response is not None
        return kind, {"response": copy.deepcopy(self.response)}

    def _add(self, item_id: str, item: Obj) -> int:
        self.items[item_id] = item
        self.index[item_id] = len(self.index)
        return self.index[item_id]

    def apply(self, event: AnyEvent) -> list[Named]:
        match event:
            case ResponseCreated():
                self.response = wire_responses.response_object(event)
                created = [self._with("response.created")]
                return [*created, self._with("response.queued")] if event.background else created
            case ResponseStarted():
                assert self.response is not None
                self.response["status"] = "in_progress"
                return [self._with("response.in_progress")]
            case MessageCreated():
                item = wire_responses.message_item(event)
                i = self._add(event.message_id, item)
                return [("response.output_item.added", {"output_index": i, "item": copy.deepcopy(item)}),
                        ("response.content_part.added", {"item_id": event.message_id, "output_index": i,
                                                         "content_index": 0, "part": _text_part("")})]
            case MessageCompleted() | MessageIncomplete():
                final = text_of(event.content)
                item = self.items[event.message_id]
                item.update(status="completed" if isinstance(event, MessageCompleted) else "incomplete",
                            content=[_text_part(final)])
                i = self.index[event.message_id]
                where: Obj = {"item_id": event.message_id}
                return [
                    ("response.output_text.done", {**where, "output_index": i, "content_index": 0, "text": final,
                                                   "logprobs": []}),
                    ("response.content_part.done", {**where, "output_index": i, "content_index": 0,
                                                    "part": _text_part(final)}),
                    ("response.output_item.done", {"output_index": i, "item": copy.deepcopy(item)}),
                ]
            case FunctionCallItem():
                item = wire_responses.function_call_item(event)
                i = self._add(event.item_id, item)
                where = {"item_id": event.item_id, "output_index": i}
                return [
                    ("response.output_item.added", {"output_index": i,
                                                    "item": {**item, "arguments": "", "status": "in_progress"}}),
                    ("response.function_call_arguments.delta", {**where, "delta": event.arguments}),
                    ("response.function_call_arguments.done", {**where, "name": event.name,
                                                               "arguments": event.arguments}),
                    ("response.output_item.done", {"output_index": i, "item": copy.deepcopy(item)}),
                ]
        patch = response_patch(event)
        if patch is None or self.response is None:
            return []
        self.response.update(patch)
        if isinstance(event, ResponseCompleted | ResponseIncomplete | ResponseFailed | ResponseCancelled):
            self.response["output"] = [copy.deepcopy(self.items[i]) for i in event.output_item_ids if i in self.items]
        if isinstance(event, ResponseCancelled):
            return []  # the Responses stream has no cancelled event: the stream just ends
        return [self._with(f"response.{self.response['status']}")]

    def opens(self, event: AnyEvent) -> tuple[str, str] | None:
        return (event.message_id, "text") if isinstance(event, MessageCreated) else None

    def ends(self, item_id: str, kind: str, event: AnyEvent) -> bool:
        return isinstance(event, MessageCompleted | MessageIncomplete) and event.message_id == item_id

    def delta(self, item_id: str, d: delta_format.Delta) -> Named:
        return "response.output_text.delta", {"item_id": item_id, "output_index": self.index.get(item_id, 0),
                                              "content_index": 0, "delta": d.text, "logprobs": []}

    def remainder(self, item_id: str, kind: str, have: int, event: AnyEvent) -> list[tuple[int, Named]]:
        if isinstance(event, MessageCompleted | MessageIncomplete):
            final = text_of(event.content)
            if have < len(final):
                return [(len(final), self.delta(item_id, delta_format.Delta(item=item_id, kind="text",
                                                                             end=len(final), text=final[have:])))]
        return []

    def finished(self) -> bool:
        return self.response is not None and self.response["status"] in ENDED
