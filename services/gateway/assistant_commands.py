"""Assistant requests and decisions: create, modify (partial), delete."""

from __future__ import annotations

from typing import Any

import msgspec

from shared.errors import InvalidRequestError, NotFoundError
from shared.events import AssistantConfig, AssistantCreated, AssistantDeleted, AssistantModified, Event
from shared.state import AssistantState

from .commands import Strict, check_metadata, check_tool_resources, visible
from .validation import ToolSpec, check_response_format, check_sampling, check_tools


class CreateAssistant(Strict):
    model: str
    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    tools: list[ToolSpec] | None = None
    metadata: dict[str, str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    response_format: str | dict[str, Any] | None = None
    tool_resources: dict[str, Any] | None = None
    reasoning_effort: str | None = None


class ModifyAssistant(Strict):
    """Every field optional: only those present change (absent is UNSET, explicit null clears)."""

    model: str | msgspec.UnsetType = msgspec.UNSET
    name: str | msgspec.UnsetType | None = msgspec.UNSET
    description: str | msgspec.UnsetType | None = msgspec.UNSET
    instructions: str | msgspec.UnsetType | None = msgspec.UNSET
    tools: list[ToolSpec] | msgspec.UnsetType | None = msgspec.UNSET
    metadata: dict[str, str] | msgspec.UnsetType | None = msgspec.UNSET
    temperature: float | msgspec.UnsetType | None = msgspec.UNSET
    top_p: float | msgspec.UnsetType | None = msgspec.UNSET
    response_format: str | dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    tool_resources: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    reasoning_effort: str | msgspec.UnsetType | None = msgspec.UNSET


MAX_NAME = 256
MAX_DESCRIPTION = 512
MAX_INSTRUCTIONS = 256_000


def _check_texts(name: str | None, description: str | None, instructions: str | None) -> None:
    for param, value, limit in (("name", name, MAX_NAME), ("description", description, MAX_DESCRIPTION),
                                ("instructions", instructions, MAX_INSTRUCTIONS)):
        if value is not None and len(value) > limit:
            raise InvalidRequestError(f"Invalid '{param}': string too long. Expected at most {limit} characters.",
                                      param=param, code="string_above_max_length")


def _refuse_reasoning(value: object) -> None:
    if value not in (None, msgspec.UNSET):
        raise InvalidRequestError("'reasoning_effort' is not supported by threadlog's chat-completions models.",
                                  param="reasoning_effort", code="unsupported_parameter")


def config_from(cmd: CreateAssistant) -> AssistantConfig:
    if not cmd.model.strip():
        raise InvalidRequestError("Invalid 'model': empty string.", param="model", code="empty_string")
    _refuse_reasoning(cmd.reasoning_effort)
    check_tool_resources(cmd.tool_resources)
    check_sampling(cmd.temperature, cmd.top_p)
    _check_texts(cmd.name, cmd.description, cmd.instructions)
    return AssistantConfig(
        model=cmd.model, name=cmd.name, description=cmd.description, instructions=cmd.instructions,
        tools=check_tools(cmd.tools), metadata=check_metadata(cmd.metadata), temperature=cmd.temperature,
        top_p=cmd.top_p, response_format=check_response_format(cmd.response_format),
    )


def require_assistant(state: AssistantState, tenant_id: str | None, param: str = "assistant_id") -> AssistantConfig:
    if not state.live or not visible(state.tenant_id, tenant_id) or state.config is None:
        raise NotFoundError(f"No assistant found with id '{state.assistant_id}'.", param=param)
    return state.config


def decide_create_assistant(assistant_id: str, cmd: CreateAssistant, now: int) -> list[Event]:
    return [AssistantCreated(assistant_id=assistant_id, created_at=now, config=config_from(cmd))]


def decide_modify_assistant(state: AssistantState, tenant_id: str | None, cmd: ModifyAssistant) -> list[Event]:
    current = require_assistant(state, tenant_id)
    merged: dict[str, Any] = msgspec.to_builtins(current)  # plain values, tools tagged as on the wire
    for field in ModifyAssistant.__struct_fields__:
        value = getattr(cmd, field)
        if value is not msgspec.UNSET:
            merged[field] = msgspec.to_builtins(value)
    create = msgspec.convert(merged, CreateAssistant)
    return [AssistantModified(assistant_id=state.assistant_id, config=config_from(create))]


def decide_delete_assistant(state: AssistantState, tenant_id: str | None) -> list[Event]:
    require_assistant(state, tenant_id)
    return [AssistantDeleted(assistant_id=state.assistant_id)]
