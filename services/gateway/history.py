"""A thread's messages as they were at a past point of the log: a fold of its stream, in memory. Pure."""

from __future__ import annotations

from typing import Any

import msgspec

from shared import wire
from shared.events import AnyEvent, MessageCreated, MessageDeleted, MessageModified
from shared.patches import message_patch

from .http import ListParams


def messages_as_of(events: list[tuple[int, AnyEvent]], run_id: str | None) -> list[tuple[str, int, dict[str, Any]]]:
    """(message id, order, wire object) of every message alive after `events` (version, event), in order."""
    live: dict[str, tuple[int, dict[str, Any]]] = {}
    for version, event in events:
        match event:
            case MessageCreated():
                live[event.message_id] = (version, msgspec.to_builtins(wire.message_object(event)))
            case MessageModified():
                if event.message_id in live:
                    live[event.message_id][1]["metadata"] = dict(event.metadata)
            case MessageDeleted():
                live.pop(event.message_id, None)
            case _:
                changed = message_patch(event)
                if changed is not None and changed[0] in live:
                    live[changed[0]][1].update(msgspec.to_builtins(changed[1]))
    rows = [(mid, seq, body) for mid, (seq, body) in live.items() if run_id is None or body.get("run_id") == run_id]
    return sorted(rows, key=lambda r: r[1])


def page_of(rows: list[tuple[str, int, dict[str, Any]]], params: ListParams) -> bytes:
    """The same cursor page a list of the live read model gives."""
    ordered = rows if params.order == "asc" else list(reversed(rows))
    ids = [r[0] for r in ordered]
    start, stop = 0, len(ordered)
    if params.after is not None:
        start = ids.index(params.after) + 1 if params.after in ids else len(ordered)
    if params.before is not None:
        stop = ids.index(params.before) if params.before in ids else 0
        start = max(0, stop - params.limit)
        window = ordered[start:stop]
        has_more = start > 0
    else:
        window = ordered[start:start + params.limit]
        has_more = start + params.limit < len(ordered)
    encoder = msgspec.json.Encoder()
    return wire.list_page([encoder.encode(r[2]) for r in window], window[0][0] if window else None,
                          window[-1][0] if window else None, has_more)
