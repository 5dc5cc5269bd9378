"""The `runs` and `run_steps` read models: rows inserted at creation, then patched (`body || patch`)."""

from __future__ import annotations

from shared import wire
from shared.events import AnyEvent, RunCreated, StepCreated
from shared.patches import run_patch, step_patch
from shared.store import Recorded

from . import Statement, as_json

INSERT_RUN = """INSERT INTO runs (run_id, thread_id, tenant_id, assistant_id, seq, status, body)
VALUES ($1, $2, $3, $4, $5, 'queued', $6::jsonb)"""
PATCH_RUN = "UPDATE runs SET status = coalesce($2, status), body = body || $3::jsonb WHERE run_id = $1"
INSERT_STEP = """INSERT INTO run_steps (step_id, run_id, thread_id, tenant_id, seq, body)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)"""
PATCH_STEP = "UPDATE run_steps SET body = body || $2::jsonb WHERE step_id = $1"


def project(record: Recorded, event: AnyEvent) -> list[Statement]:
    match event:
        case RunCreated():
            body = as_json(wire.run_object(event))
            return [(INSERT_RUN, (event.run_id, event.thread_id, record.tenant_id, event.assistant_id,
                                  record.stream_version, body))]
        case StepCreated():
            body = as_json(wire.step_object(event))
            return [(INSERT_STEP, (event.step_id, event.run_id, event.thread_id, record.tenant_id,
                                   record.stream_version, body))]
    statements: list[Statement] = []
    run = run_patch(event)
    if run is not None:
        run_id = str(getattr(event, "run_id", ""))
        statements.append((PATCH_RUN, (run_id, run.get("status"), as_json(run))))
    step = step_patch(event)
    if step is not None:
        statements.append((PATCH_STEP, (step[0], as_json(step[1]))))
    return statements
