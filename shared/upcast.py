"""Old events are upgraded on read by a chain of small pure steps; the log itself is never rewritten."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from shared.events import CURRENT_SCHEMA, AnyEvent, Codec

Step = Callable[[dict[str, Any]], dict[str, Any]]



def requires_action_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """`usage` (the asking model call's usage) became `call_usage`, so `usage` always means a run total."""
    out = dict(data)
    out["call_usage"] = out.pop("usage")
    return out


# (event type, from version) -> step to version + 1. A missing step is a KeyError: fail loudly, never guess.
STEPS: dict[tuple[str, int], Step] = {
    ("thread.run.requires_action", 1): requires_action_v1_to_v2,
}


class EventLoader:
    """Turns a stored (type, schema version, payload) into the current event shape."""

    def __init__(self, codec: Codec, steps: dict[tuple[str, int], Step] | None = None) -> None:
        self._codec = codec
        self._steps = STEPS if steps is None else steps

    def load(self, event_type: str, schema_version: int, payload: bytes) -> AnyEvent:
        current = CURRENT_SCHEMA[event_type]
        if schema_version == current:
            return self._codec.decode(payload)  # fast path: bytes straight to Structs
        data: dict[str, Any] = msgspec.json.decode(payload)
        for version in range(schema_version, current):
            data = self._steps[event_type, version](data)
        event: AnyEvent = msgspec.convert(data, AnyEvent)
        return event
