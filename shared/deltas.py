"""Token deltas of a run: published by the worker as they stream, kept for a while, replayed on resume.

Each delta carries `end`: the length of the item's canonical text once the delta is applied (for a message,
its text; for a tool-calls step, one character per call started plus the arguments). SSE ids are built from
it, so a client that resumes tells us exactly how much of an item it already holds, even after the retained
deltas are gone (the rest then comes from the log's completed item in one piece).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Literal

import msgspec
import nats.errors
from nats.js import api

from shared.bus import Bus

log = logging.getLogger(__name__)


class Delta(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    item: str  # message id (text) or step id (tool calls)
    kind: Literal["text", "tool"]
    end: int
    text: str = ""  # the fragment (text) or the arguments fragment (tool)
    index: int = 0  # tool call index in the step
    call_id: str | None = None  # set on the first fragment of a tool call
    name: str | None = None


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Delta)


def encode(delta: Delta) -> bytes:
    return _ENCODER.encode(delta)


def decode(data: bytes) -> Delta:
    return _DECODER.decode(data)


async def publish(bus: Bus, thread_id: str, run_id: str, delta: Delta) -> None:
    """Core publish, no ack wait: the retained stream keeps it; a lost one is rebuilt from the log."""
    await bus.nudge(bus.subjects.deltas(thread_id, run_id), encode(delta))


async def retained(bus: Bus, thread_id: str, run_id: str, timeout_s: float = 2.0) -> list[Delta]:
    """Every delta of the run still kept by the deltas stream, in publish order."""
    subject = bus.subjects.deltas(thread_id, run_id)
    try:
        info = await bus.js.stream_info(bus.subjects.deltas_stream, subjects_filter=subject)
    except (TimeoutError, nats.errors.Error) as e:
        log.warning("deltas unavailable: %r", e)
        return []
    count = (info.state.subjects or {}).get(subject, 0)
    if not count:
        return []
    out: list[Delta] = []
    try:
        sub = await bus.js.subscribe(subject, ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL)
    except (TimeoutError, nats.errors.Error) as e:
        # E.g. the server's consumer limit: the stream still ends with the whole text, in coarser pieces.
        log.warning("deltas unavailable: %r", e)
        return []
    try:
        while len(out) < count:
            msg = await sub.next_msg(timeout=timeout_s)
            with contextlib.suppress(msgspec.DecodeError):
                out.append(decode(msg.data))
    except (TimeoutError, nats.errors.TimeoutError):
        log.warning("deltas: read %d of %d", len(out), count)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return out


class RetainedReads:
    """One read of a run's retained deltas shared by every stream that attaches meanwhile (single flight).

    A stream may use a read that started after its own live subscription: whatever was published before the
    read started is in it, and whatever came after reaches the stream live.
    """

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._reads: dict[tuple[str, str], tuple[float, asyncio.Task[list[Delta]]]] = {}

    async def get(self, thread_id: str, run_id: str, subscribed_at: float) -> list[Delta]:
        key = (thread_id, run_id)
        hit = self._reads.get(key)
        if hit is None or hit[0] < subscribed_at:
            task = asyncio.create_task(retained(self._bus, thread_id, run_id))
            hit = self._reads[key] = (time.monotonic(), task)
            task.add_done_callback(lambda _: self._forget_later(key, hit))
        return list(await asyncio.shield(hit[1]))

    def _forget_later(self, key: tuple[str, str], hit: tuple[float, asyncio.Task[list[Delta]]]) -> None:
        def forget() -> None:
            if self._reads.get(key) is hit:
                del self._reads[key]

        asyncio.get_running_loop().call_later(5.0, forget)


class ItemProgress(msgspec.Struct):
    """How far an item's deltas got: its canonical length and text so far (per tool call for steps)."""

    end: int = 0
    text: str = ""
    calls: dict[int, str] = msgspec.field(default_factory=dict)


def progress(deltas: list[Delta]) -> dict[str, ItemProgress]:
    out: dict[str, ItemProgress] = {}
    for d in deltas:
        p = out.setdefault(d.item, ItemProgress())
        if d.end <= p.end:
            continue  # a duplicate (or a takeover's replay)
        p.end = d.end
        if d.kind == "text":
            p.text += d.text
        else:
            p.calls[d.index] = p.calls.get(d.index, "") + d.text
    return out
