"""Every event threadlog records: msgspec Structs in one tagged union, each with a schema version.

Ids, positions and times of recording live on the stored row (see store.py), not in the event.
An event's tag reuses OpenAI's stream event name where one exists, so SSE mapping is a lookup.
"""

from __future__ import annotations

import msgspec

from .admin import AdminRead
from .assistants import AssistantConfig, AssistantCreated, AssistantDeleted, AssistantModified
from .base import (
    ContentBlock,
    Event,
    FunctionCall,
    FunctionDef,
    FunctionTool,
    ImageUrl,
    ImageUrlBlock,
    LastError,
    Metadata,
    RefusalBlock,
    ResponseFormat,
    TextBlock,
    TextValue,
    ToolCall,
    ToolChoice,
    ToolOutput,
    TruncationStrategy,
    Usage,
    text_of,
)
from .responses import (
    FunctionCallItem,
    FunctionCallOutputItem,
    ItemDeleted,
    ResponseCancelled,
    ResponseCancelling,
    ResponseCompleted,
    ResponseCreated,
    ResponseDeleted,
    ResponseFailed,
    ResponseIncomplete,
    ResponseStarted,
    ResponseTerminal,
)
from .runs import (
    RunCancelled,
    RunCancelling,
    RunCompleted,
    RunCreated,
    RunExpired,
    RunFailed,
    RunIncomplete,
    RunModified,
    RunRequiresAction,
    RunStarted,
    RunTerminal,
    StepCompleted,
    StepCreated,
    StepEnded,
    ToolOutputsSubmitted,
)
from .threads import (
    MessageCompleted,
    MessageCreated,
    MessageDeleted,
    MessageIncomplete,
    MessageModified,
    ThreadCreated,
    ThreadDeleted,
    ThreadErased,
    ThreadModified,
)

AnyEvent = (
    ThreadCreated | ThreadModified | ThreadDeleted | ThreadErased
    | MessageCreated | MessageCompleted | MessageIncomplete | MessageModified | MessageDeleted
    | AssistantCreated | AssistantModified | AssistantDeleted
    | RunCreated | RunStarted | RunRequiresAction | ToolOutputsSubmitted | RunModified | RunCancelling
    | RunCompleted | RunIncomplete | RunFailed | RunCancelled | RunExpired
    | StepCreated | StepCompleted | StepEnded
    | AdminRead
    | FunctionCallItem | FunctionCallOutputItem | ItemDeleted
    | ResponseCreated | ResponseStarted | ResponseCancelling | ResponseCompleted | ResponseIncomplete
    | ResponseFailed | ResponseCancelled | ResponseDeleted
)

EVENT_TYPES: dict[str, type[Event]] = {str(cls.__struct_config__.tag): cls for cls in AnyEvent.__args__}
CURRENT_SCHEMA: dict[str, int] = {tag: cls.schema_version for tag, cls in EVENT_TYPES.items()}


def event_type(event: Event) -> str:
    tag = event.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


class Codec:
    """Encoder and decoder built once and reused (msgspec's advice): the hot path of every append and read."""

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)

    def encode(self, event: Event) -> bytes:
        return self._encoder.encode(event)

    def decode(self, payload: bytes) -> AnyEvent:
        return self._decoder.decode(payload)


__all__ = [
    "CURRENT_SCHEMA",
    "EVENT_TYPES",
    "AdminRead",
    "AnyEvent",
    "AssistantConfig",
    "AssistantCreated",
    "AssistantDeleted",
    "AssistantModified",
    "Codec",
    "ContentBlock",
    "Event",
    "FunctionCall",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "FunctionDef",
    "FunctionTool",
    "ImageUrl",
    "ImageUrlBlock",
    "ItemDeleted",
    "LastError",
    "MessageCompleted",
    "MessageCreated",
    "MessageDeleted",
    "MessageIncomplete",
    "MessageModified",
    "Metadata",
    "RefusalBlock",
    "ResponseCancelled",
    "ResponseCancelling",
    "ResponseCompleted",
    "ResponseCreated",
    "ResponseDeleted",
    "ResponseFailed",
    "ResponseFormat",
    "ResponseIncomplete",
    "ResponseStarted",
    "ResponseTerminal",
    "RunCancelled",
    "RunCancelling",
    "RunCompleted",
    "RunCreated",
    "RunExpired",
    "RunFailed",
    "RunIncomplete",
    "RunModified",
    "RunRequiresAction",
    "RunStarted",
    "RunTerminal",
    "StepCompleted",
    "StepCreated",
    "StepEnded",
    "TextBlock",
    "TextValue",
    "ThreadCreated",
    "ThreadDeleted",
    "ThreadErased",
    "ThreadModified",
    "ToolCall",
    "ToolChoice",
    "ToolOutput",
    "ToolOutputsSubmitted",
    "TruncationStrategy",
    "Usage",
    "event_type",
    "text_of",
]
