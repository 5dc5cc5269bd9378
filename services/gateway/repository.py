"""Thread streams as decision state: cached folds, optimistic appends, retries on conflict.

A cached state may be stale (another gateway or the run-worker appended): the append at its version then
fails with a conflict, the tail of the stream is read, and the command is decided again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import msgspec

from shared.errors import VersionConflictError
from shared.events import Event
from shared.ids import new_event_id
from shared.state import ThreadState, evolve
from shared.store import AppendResult, EventStore, NewEvent

from .metrics import GatewayMetrics

Decide = Callable[[ThreadState], Sequence[Event]]
MAX_ATTEMPTS = 8


class Outcome(msgspec.Struct, frozen=True):
    events: Sequence[Event]
    result: AppendResult | None


class ThreadRepository:
    def __init__(self, store: EventStore, metrics: GatewayMetrics, capacity: int = 10_000) -> None:
        self._store = store
        self._metrics = metrics
        self._capacity = capacity
        self._cache: OrderedDict[str, ThreadState] = OrderedDict()

    async def load(self, thread_id: str) -> ThreadState:
        """The state as of the newest event in the log (reads only the tail beyond the cached version)."""
        state = self._cache.get(thread_id)
        if state is None:
            state = ThreadState(thread_id=thread_id)
            self._remember(state)
        self._cache.move_to_end(thread_id)
        for record in await self._store.read_stream(thread_id, state.version):
            if record.stream_version == state.version + 1:  # a concurrent refresh may have folded it already
                evolve(state, self._store.load(record), record.tenant_id)
        return state

    async def execute(self, thread_id: str, tenant_id: str, decide: Decide, *, new: bool = False) -> Outcome:
        """Decide on the current state and append; on conflict, catch up and decide again.

        `new`: the id was just minted, so the stream is known to be empty and is not read first.
        """
        state = self._cache.get(thread_id)
        if new:
            state = ThreadState(thread_id=thread_id)
            self._remember(state)
        elif state is None:
            state = await self.load(thread_id)
        for _ in range(MAX_ATTEMPTS):
            events = decide(state)
            if not events:
                return Outcome(events, None)
            expected = state.version
            try:
                result = await self._store.append(
                    thread_id, expected, [NewEvent(event=e, event_id=new_event_id()) for e in events],
                    tenant_id=state.tenant_id or tenant_id,
                )
            except VersionConflictError:
                self._metrics.conflicts.inc()
                state = await self.load(thread_id)
                continue
            self._metrics.appends.inc(len(events))
            if state.version == expected:  # else a concurrent load already folded these from the log
                for e in events:
                    evolve(state, e, state.tenant_id or tenant_id)  # type: ignore[arg-type]
            return Outcome(events, result)
        raise VersionConflictError(thread_id, state.version)

    def forget(self, thread_id: str) -> None:
        self._cache.pop(thread_id, None)

    def _remember(self, state: ThreadState) -> None:
        self._cache[state.thread_id] = state
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
