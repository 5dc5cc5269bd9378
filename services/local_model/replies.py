"""What the offline model answers, decided purely from the request: canned text, `say N words` filler,
tool calls named in the prompt (`call <tool> {json}`), or an echo of tool results; and how it streams."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

import msgspec

from shared.tokens import content_text, count_tokens, split_tokens

from .schema import ChatRequest, Delta, FunctionDelta, Message, ToolCallDelta, ToolChoiceObject

REPLY_PREFIX = "This is the threadlog offline model. You said: "
# Lets tests and benchmarks control reply length without depending on the prompt's own length.
_SAY_WORDS_RE = re.compile(r"\bsay\s+(\d+)\s+words?\b", re.IGNORECASE)
# A benchmark asking for more is a mistake; refusing to build a gigabyte reply keeps the server alive.
MAX_SAY_WORDS = 1_000_000


class ReplyError(ValueError):
    """The request asks for something no model could do; the server answers 400."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class PlannedToolCall(msgspec.Struct, frozen=True):
    id: str
    name: str
    arguments: str


class Reply(msgspec.Struct, frozen=True):
    # Content tokens as they will be streamed, already cut at the completion limit.
    tokens: tuple[str, ...]
    tool_calls: tuple[PlannedToolCall, ...]
    finish_reason: str

    @property
    def content(self) -> str | None:
        return None if self.tool_calls else "".join(self.tokens)

    @property
    def completion_tokens(self) -> int:
        if self.tool_calls:
            return sum(count_tokens(c.name) + count_tokens(c.arguments) for c in self.tool_calls)
        return len(self.tokens)


def plan_reply(request: ChatRequest, new_call_id: Callable[[], str]) -> Reply:
    """The whole reply to `request`; `new_call_id` is the only source of variation."""
    limit = completion_limit(request)
    calls = plan_tool_calls(request)
    if calls:
        planned = tuple(PlannedToolCall(id=new_call_id(), name=n, arguments=a) for n, a in calls)
        return Reply(tokens=(), tool_calls=planned, finish_reason="tool_calls")
    tokens = split_tokens(reply_text(request))
    if limit is not None and len(tokens) > limit:
        return Reply(tokens=tuple(tokens[:limit]), tool_calls=(), finish_reason="length")
    return Reply(tokens=tuple(tokens), tool_calls=(), finish_reason="stop")


def completion_limit(request: ChatRequest) -> int | None:
    for param, value in (
        ("max_completion_tokens", request.max_completion_tokens),
        ("max_tokens", request.max_tokens),
    ):
        if value is not None:
            if value < 1:
                raise ReplyError(f"{param} must be at least 1, got {value}", param)
            return value
    return None


def reply_text(request: ChatRequest) -> str:
    results = trailing_tool_results(request.messages)
    if results:
        text = "Tool results: " + "; ".join(f"{label}: {output}" for label, output in results)
    else:
        said = last_user_text(request.messages)
        match = _SAY_WORDS_RE.search(said)
        if match:
            count = int(match.group(1))
            if count > MAX_SAY_WORDS:
                raise ReplyError(f"the offline model says at most {MAX_SAY_WORDS} words", "messages")
            text = " ".join(f"word{i}" for i in range(1, count + 1))
        else:
            text = REPLY_PREFIX + said
    fmt = request.response_format
    if fmt is not None and fmt.type in ("json_object", "json_schema"):
        return json.dumps({"reply": text}, ensure_ascii=False)
    return text


def last_user_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return content_text(msgspec.to_builtins(message.content))
    return ""


def trailing_tool_results(messages: Sequence[Message]) -> list[tuple[str, str]]:
    """(tool name or call id, output) for the tool messages that end the conversation, in order."""
    start = len(messages)
    while start > 0 and messages[start - 1].role == "tool":
        start -= 1
    names: dict[str, str] = {}
    for message in messages[:start]:
        for call in message.tool_calls or ():
            names[call.id] = call.function.name
    results = []
    for message in messages[start:]:
        call_id = message.tool_call_id or ""
        label = message.name or names.get(call_id) or call_id or "tool"
        results.append((label, content_text(msgspec.to_builtins(message.content))))
    return results


def offered_tool_names(request: ChatRequest) -> list[str]:
    return [t.function.name for t in request.tools or () if t.type == "function" and t.function is not None]


def plan_tool_calls(request: ChatRequest) -> list[tuple[str, str]]:
    """(name, JSON arguments) of the calls to make; empty when the reply should be text."""
    names = offered_tool_names(request)
    choice = request.tool_choice
    if not names or choice == "none":
        return []
    ends_with_user = bool(request.messages) and request.messages[-1].role == "user"
    mentions = find_tool_mentions(last_user_text(request.messages), names) if ends_with_user else []
    if isinstance(choice, ToolChoiceObject) and choice.type == "function" and choice.function is not None:
        forced = choice.function.name
        if forced not in names:
            raise ReplyError(f"tool_choice names {forced!r}, which is not among the tools", "tool_choice")
        arguments = next((a for n, a in mentions if n == forced), "{}")
        return [(forced, arguments)]
    if not mentions and choice == "required":
        return [(names[0], "{}")]
    if request.parallel_tool_calls is False:
        return mentions[:1]
    return mentions


def find_tool_mentions(text: str, names: Sequence[str]) -> list[tuple[str, str]]:
    """Each `call <name>` in `text`, in order, with the first JSON object before the next mention."""
    # Longest first, so `get_weather_hourly` is not read as `get_weather`.
    alternatives = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))
    pattern = re.compile(rf"\b(?i:call)\s+({alternatives})(?![\w-])")
    matches = list(pattern.finditer(text))
    mentions = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        mentions.append((match.group(1), _first_json_object(text[match.end() : end])))
    return mentions


def _first_json_object(text: str) -> str:
    decoder = json.JSONDecoder()
    position = text.find("{")
    while position != -1:
        try:
            value, _ = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False)
        position = text.find("{", position + 1)
    return "{}"


def stream_deltas(reply: Reply) -> list[Delta]:
    """The deltas after the opening role chunk; each one costs a token's delay."""
    if not reply.tool_calls:
        return [Delta(content=token) for token in reply.tokens]
    deltas = []
    for index, call in enumerate(reply.tool_calls):
        opening = ToolCallDelta(
            index=index, id=call.id, type="function", function=FunctionDelta(name=call.name, arguments="")
        )
        deltas.append(Delta(tool_calls=[opening]))
        deltas.extend(
            Delta(tool_calls=[ToolCallDelta(index=index, function=FunctionDelta(arguments=piece))])
            for piece in split_tokens(call.arguments)
        )
    return deltas
