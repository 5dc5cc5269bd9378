"""What a thread's stream says now: a pure fold over its events, used to decide commands. No I/O."""

from __future__ import annotations

import msgspec

from shared.events import (
    AnyEvent,
    MessageCreated,
    MessageDeleted,
    ThreadCreated,
    ThreadDeleted,
    ThreadModified,
)


class ThreadState(msgspec.Struct, kw_only=True):
    thread_id: str
    tenant_id: str | None = None
    version: int = 0
    exists: bool = False
    deleted: bool = False
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    message_ids: set[str] = msgspec.field(default_factory=set)
    active_run_id: str | None = None

    @property
    def live(self) -> bool:
        return self.exists and not self.deleted


def evolve(state: ThreadState, event: AnyEvent, tenant_id: str) -> ThreadState:
    """Apply one event in place (the state is private to its cache entry) and return it."""
    match event:
        case ThreadCreated(metadata=metadata):
            state.exists = True
            state.tenant_id = tenant_id
            state.metadata = dict(metadata)
        case ThreadModified(metadata=metadata):
            state.metadata = dict(metadata)
        case ThreadDeleted():
            state.deleted = True
        case MessageCreated(message_id=message_id):
            state.message_ids.add(message_id)
        case MessageDeleted(message_id=message_id):
            state.message_ids.discard(message_id)
    state.version += 1
    return state
