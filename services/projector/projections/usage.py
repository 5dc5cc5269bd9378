"""The `run_usage` read model: one row per finished run, for totals by project, thread, assistant and day."""

from __future__ import annotations

from shared.events import (
    AnyEvent,
    ResponseCancelled,
    ResponseCompleted,
    ResponseFailed,
    ResponseIncomplete,
    RunCancelled,
    RunCompleted,
    RunExpired,
    RunFailed,
    RunIncomplete,
)
from shared.store import Recorded

from . import Statement

INSERT_USAGE = """INSERT INTO run_usage (run_id, tenant_id, thread_id, assistant_id, ended_at, prompt_tokens,
                                       completion_tokens, total_tokens)
SELECT run_id, tenant_id, thread_id, assistant_id, $2, $3, $4, $5 FROM runs WHERE run_id = $1"""


INSERT_RESPONSE_USAGE = """INSERT INTO run_usage (run_id, tenant_id, thread_id, assistant_id, ended_at, prompt_tokens,
                                                completion_tokens, total_tokens)
SELECT response_id, tenant_id, coalesce(conversation_id, thread_id), '', $2, $3, $4, $5
FROM responses WHERE response_id = $1"""


def project(record: Recorded, event: AnyEvent) -> list[Statement]:
    match event:
        case ResponseCompleted() | ResponseIncomplete() | ResponseFailed() | ResponseCancelled():
            u = event.usage
            ended = int(record.recorded_at.timestamp())
            return [(INSERT_RESPONSE_USAGE, (event.response_id, ended, u.prompt_tokens, u.completion_tokens,
                                             u.total_tokens))]
        case RunCompleted() | RunIncomplete() | RunFailed() | RunCancelled() | RunExpired():
            u = event.usage
            ended = int(record.recorded_at.timestamp())
            return [(INSERT_USAGE, (event.run_id, ended, u.prompt_tokens, u.completion_tokens, u.total_tokens))]
    return []
