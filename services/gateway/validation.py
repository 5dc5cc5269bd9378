"""Request shapes and checks shared by assistants, runs and (later) responses: tools, tool_choice, formats."""

from __future__ import annotations

import re
from typing import Any, Literal

from shared.errors import InvalidRequestError
from shared.events import FunctionDef, FunctionTool, ResponseFormat, ToolChoice, TruncationStrategy

from .commands import Strict

_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_TOOLS = 128


class FunctionSpec(Strict):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionToolSpec(Strict, tag_field="type", tag="function"):
    function: FunctionSpec


class CodeInterpreterSpec(Strict, tag_field="type", tag="code_interpreter"):
    pass


class FileSearchSpec(Strict, tag_field="type", tag="file_search"):
    file_search: dict[str, Any] | None = None


ToolSpec = FunctionToolSpec | CodeInterpreterSpec | FileSearchSpec


class TruncationSpec(Strict):
    type: Literal["auto", "last_messages"]
    last_messages: int | None = None


def check_tools(tools: list[ToolSpec] | None, param: str = "tools") -> list[FunctionTool]:
    out: list[FunctionTool] = []
    names: set[str] = set()
    for i, tool in enumerate(tools or []):
        if not isinstance(tool, FunctionToolSpec):
            raise InvalidRequestError(
                f"Invalid '{param}[{i}]': only function tools are supported (threadlog has no code interpreter "
                "or file search).", param=f"{param}[{i}].type", code="unsupported_parameter")
        f = tool.function
        if not _FUNCTION_NAME.match(f.name):
            raise InvalidRequestError(
                f"Invalid '{param}[{i}].function.name': '{f.name}' does not match '^[a-zA-Z0-9_-]{{1,64}}$'.",
                param=f"{param}[{i}].function.name", code="invalid_value")
        if f.name in names:
            raise InvalidRequestError(f"Invalid '{param}': duplicate function name '{f.name}'.", param=param,
                                      code="invalid_value")
        names.add(f.name)
        out.append(FunctionTool(function=FunctionDef(name=f.name, description=f.description,
                                                     parameters=f.parameters, strict=f.strict)))
    if len(out) > MAX_TOOLS:
        raise InvalidRequestError(f"Invalid '{param}': at most {MAX_TOOLS} tools.", param=param,
                                  code="array_above_max_length")
    return out


def check_tool_choice(choice: ToolChoice | None, tools: list[FunctionTool]) -> ToolChoice:
    if choice is None:
        return "auto"
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise InvalidRequestError(f"Invalid 'tool_choice': '{choice}'. Expected 'none', 'auto' or 'required'.",
                                      param="tool_choice", code="invalid_value")
        if choice == "required" and not tools:
            raise InvalidRequestError("'tool_choice' is 'required' but no tools are given.", param="tool_choice",
                                      code="invalid_value")
        return choice
    name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else None
    if not isinstance(name, str):
        raise InvalidRequestError(
            "Invalid 'tool_choice': expected {'type': 'function', 'function': {'name': ...}} "
            "(only function tools are supported).", param="tool_choice", code="invalid_value")
    if name not in {t.function.name for t in tools}:
        raise InvalidRequestError(f"Invalid 'tool_choice': no tool named '{name}'.", param="tool_choice",
                                  code="invalid_value")
    return {"type": "function", "function": {"name": name}}


def check_response_format(value: ResponseFormat | None) -> ResponseFormat:
    if value is None or value == "auto":
        return "auto"
    if isinstance(value, dict):
        kind = value.get("type")
        if kind in ("text", "json_object") and set(value) == {"type"}:
            return {"type": kind}
        schema = value.get("json_schema")
        if kind == "json_schema" and isinstance(schema, dict) and isinstance(schema.get("name"), str):
            return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequestError(
        "Invalid 'response_format': expected 'auto', {'type': 'text'}, {'type': 'json_object'} or "
        "{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': ...}}.", param="response_format",
        code="invalid_value")


def check_sampling(temperature: float | None, top_p: float | None) -> None:
    if temperature is not None and not 0 <= temperature <= 2:
        raise InvalidRequestError(f"Invalid 'temperature': {temperature} is not between 0 and 2.",
                                  param="temperature", code="invalid_value")
    if top_p is not None and not 0 <= top_p <= 1:
        raise InvalidRequestError(f"Invalid 'top_p': {top_p} is not between 0 and 1.", param="top_p",
                                  code="invalid_value")


def check_token_limit(value: int | None, param: str, minimum: int = 256) -> int | None:
    if value is not None and value < minimum:
        raise InvalidRequestError(f"Invalid '{param}': {value} is less than the minimum of {minimum}.",
                                  param=param, code="integer_below_min_value")
    return value


def check_truncation(spec: TruncationSpec | None) -> TruncationStrategy:
    if spec is None or spec.type == "auto":
        if spec is not None and spec.last_messages is not None:
            raise InvalidRequestError("'truncation_strategy.last_messages' applies only to type 'last_messages'.",
                                      param="truncation_strategy.last_messages", code="invalid_value")
        return TruncationStrategy()
    if spec.last_messages is None or spec.last_messages < 1:
        raise InvalidRequestError("'truncation_strategy.last_messages' must be an integer of at least 1.",
                                  param="truncation_strategy.last_messages", code="invalid_value")
    return TruncationStrategy(type="last_messages", last_messages=spec.last_messages)
