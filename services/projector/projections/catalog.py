"""Every projection, applied in turn to each event: the one function the projector and a rebuild run."""

from __future__ import annotations

from shared.events import AnyEvent
from shared.store import Recorded

from . import Statement, assistants, items, responses, runs, threads, usage

# Order matters within an event: items before responses (a response's output is read from its items).
PROJECTIONS = (threads.project, assistants.project, runs.project, items.project, responses.project, usage.project)


def project(record: Recorded, event: AnyEvent) -> list[Statement]:
    statements: list[Statement] = []
    for projection in PROJECTIONS:
        statements.extend(projection(record, event))
    return statements
