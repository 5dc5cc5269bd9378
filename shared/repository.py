"""Streams as decision state: cached folds, optimistic appends, retries on conflict.

A cached state may be stale (another process appended): the append at its version then fails with a
conflict, the tail of the stream is read, and the command is decided again on the fresh state.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

import msgspec

from shared.errors import ServiceError, VersionConflictError
from shared.events import AnyEvent, Event
from shared.ids import new_event_id
from shared.store import AppendResult, EventStore, NewEvent


class StreamState(Protocol):
    version: int
    tenant_id: str | None


S = TypeVar("S", bound=StreamState)
MAX_ATTEMPTS = 8


class Outcome(msgspec.Struct, frozen=True):
    events: Sequence[Event]
    result: AppendResult | None


class Counters(Protocol):
    def appended(self, n: int) -> None: ...
    def conflicted(self) -> None: ...


class NoCounters:
    def appended(self, n: int) -> None:
        pass

    def conflicted(self) -> None:
        pass


class Repository(Generic[S]):
    def __init__(self, store: EventStore, new_state: Callable[[str], S], evolve: Callable[[S, AnyEvent, str], S],
                 counters: Counters | None = None, capacity: int = 10_000) -> None:
        self._store = store
        self._new_state = new_state
        self._evolve = evolve
        self._counters = counters or NoCounters()
        self._capacity = capacity
        self._cache: OrderedDict[str, S] = OrderedDict()

    async def load(self, stream_id: str) -> S:
        """The state as of the newest event in the log (reads only the tail beyond the cached version)."""
        state = self._cache.get(stream_id)
        if state is None:
            state = self._remember(stream_id, self._new_state(stream_id))
        self._cache.move_to_end(stream_id)
        for record in await self._store.read_stream(stream_id, state.version):
            if record.stream_version == state.version + 1:  # a concurrent load may have folded it already
                self._evolve(state, self._store.load(record), record.tenant_id)
        return state

    async def execute(self, stream_id: str, tenant_id: str | None, decide: Callable[[S], Sequence[Event]], *,
                      new: bool = False, correlation_id: uuid.UUID | None = None,
                      causation_id: uuid.UUID | None = None) -> Outcome:
        """Decide on the current state and append; on conflict, catch up and decide again.

        `new`: the id was just minted, so the stream is known to be empty and is not read first.
        """
        state = self._cache.get(stream_id)
        current = new or state is None  # True once the state is known to match the log
        if new:
            state = self._remember(stream_id, self._new_state(stream_id))
        elif state is None:
            state = await self.load(stream_id)
        for _ in range(MAX_ATTEMPTS):
            try:
                events = decide(state)
            except ServiceError:
                if current:
                    raise
                # A refusal on a cached state may be stale (e.g. the run it blames has ended): confirm it.
                state, current = await self.load(stream_id), True
                continue
            if not events:
                if current:
                    return Outcome(events, None)
                # "Nothing to do" on a cached state may be stale too (e.g. a cancel of a run already ended).
                state, current = await self.load(stream_id), True
                continue
            expected = state.version
            owner = state.tenant_id or tenant_id
            if owner is None:
                raise ValueError(f"no project owns the new stream {stream_id}")
            try:
                result = await self._store.append(
                    stream_id, expected, [NewEvent(event=e, event_id=new_event_id()) for e in events],
                    tenant_id=owner, correlation_id=correlation_id, causation_id=causation_id,
                )
            except VersionConflictError:
                self._counters.conflicted()
                state, current = await self.load(stream_id), True
                continue
            self._counters.appended(len(events))
            if state.version == expected:  # else a concurrent load already folded these from the log
                for e in events:
                    self._evolve(state, e, owner)  # type: ignore[arg-type]
            return Outcome(events, result)
        raise VersionConflictError(stream_id, state.version)

    def cached(self, stream_id: str) -> S | None:
        """The cached state as it is, without reading the log (for hints, never for decisions)."""
        return self._cache.get(stream_id)

    def forget(self, stream_id: str) -> None:
        self._cache.pop(stream_id, None)

    def _remember(self, stream_id: str, state: S) -> S:
        self._cache[stream_id] = state
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        return state
