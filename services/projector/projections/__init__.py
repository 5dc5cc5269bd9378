"""Projections: pure functions from one stored event to the SQL statements that apply it."""

from __future__ import annotations

from shared import wire

Statement = tuple[str, tuple[object, ...]]


def as_json(value: object) -> str:
    """A jsonb parameter: the wire encoding of an object or patch, as text."""
    return wire.encode(value).decode()

# Every table a projection writes: rebuilt from the log by `threadlog replay`, compared by `--verify`.
READ_MODEL_TABLES = ["threads", "messages", "assistants", "runs", "run_steps", "run_usage", "items", "responses"]
