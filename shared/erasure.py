"""Erasure without breaking the log: what a redacted event keeps, and the rewrite of an erased stream.

A redacted event keeps its type, ids, order and timestamps (the audit trail of what happened and when) and
loses everything a person wrote or was told: message content, metadata, instructions, tool arguments and
outputs. The chain keeps verifying because it covers the payload's hash, stored before the rewrite.
"""

from __future__ import annotations

import msgspec

from shared.events import (
    AnyEvent,
    FunctionCall,
    MessageCompleted,
    MessageCreated,
    MessageIncomplete,
    MessageModified,
    RunCreated,
    RunModified,
    RunRequiresAction,
    StepCompleted,
    ThreadCreated,
    ThreadModified,
    ToolCall,
    ToolOutput,
    ToolOutputsSubmitted,
)

REDACTED = "[erased]"


def _calls(calls: list[ToolCall] | None) -> list[ToolCall] | None:
    if calls is None:
        return None
    return [ToolCall(id=c.id, function=FunctionCall(name=c.function.name, arguments="")) for c in calls]


def _outputs(outputs: list[ToolOutput] | None) -> list[ToolOutput] | None:
    if outputs is None:
        return None
    return [ToolOutput(tool_call_id=o.tool_call_id, output="") for o in outputs]


def redact(event: AnyEvent) -> AnyEvent:
    """The same event without personal content (a valid event of the same type and schema)."""
    replace = msgspec.structs.replace
    match event:
        case ThreadCreated() | ThreadModified() | MessageModified() | RunModified():
            return replace(event, metadata={})
        case MessageCreated():
            return replace(event, content=[], metadata={})
        case MessageCompleted() | MessageIncomplete():
            return replace(event, content=[])
        case RunCreated():
            return replace(event, instructions="", metadata={})
        case RunRequiresAction():
            return replace(event, tool_calls=_calls(event.tool_calls) or [])
        case ToolOutputsSubmitted():
            return replace(event, tool_outputs=_outputs(event.tool_outputs) or [])
        case StepCompleted():
            return replace(event, tool_calls=_calls(event.tool_calls), tool_outputs=_outputs(event.tool_outputs))
    return event
