"""Projections: pure functions from one stored event to the SQL statements that apply it."""

from __future__ import annotations

Statement = tuple[str, tuple[object, ...]]

# Every table a projection writes: rebuilt from the log by `threadlog replay`, compared by `--verify`.
READ_MODEL_TABLES = ["threads", "messages", "assistants", "runs", "run_steps", "run_usage", "items", "responses"]
