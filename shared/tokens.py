"""Deterministic offline tokenizer: the run-worker budgets prompts with it and the offline model reports
usage with it, so both always agree. No vocabulary, no downloads; a token is a word or punctuation mark
together with the whitespace before it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# Possessive quantifiers keep long whitespace runs linear; the last branch keeps trailing whitespace, so
# joining the pieces gives back the text exactly.
_TOKEN_RE = re.compile(r"\s*+\w+|\s*+[^\w\s]|\s++")

# Role markers and separators cost something in real chat formats; a flat charge keeps budgets honest.
MESSAGE_OVERHEAD_TOKENS = 4
# Images have no text to split; a flat charge stands in for whatever a vision model would bill.
IMAGE_PART_TOKENS = 85


def split_tokens(text: str) -> list[str]:
    """The tokens of `text`; `"".join(split_tokens(text)) == text` always holds."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    return sum(1 for _ in _TOKEN_RE.finditer(text))


def content_text(content: object) -> str:
    """The text of a chat message's content: a string, or a list of parts whose text parts are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [_part_text(part) for part in content]
        return "\n".join(t for t in texts if t is not None)
    return ""


def count_content_tokens(content: object) -> int:
    if isinstance(content, list):
        total = 0
        for part in content:
            text = _part_text(part)
            if text is not None:
                total += count_tokens(text)
            elif _part_type(part) in ("image_url", "input_image", "image_file"):
                total += IMAGE_PART_TOKENS
        return total
    return count_tokens(content_text(content))


def count_message_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Prompt size of OpenAI-shaped chat messages (plain dicts): content, names and tool calls, plus
    MESSAGE_OVERHEAD_TOKENS per message."""
    total = 0
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS
        total += count_content_tokens(message.get("content"))
        name = message.get("name")
        if isinstance(name, str):
            total += count_tokens(name)
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list):
            for call in tool_calls:
                function = call.get("function") if isinstance(call, Mapping) else None
                if isinstance(function, Mapping):
                    total += count_tokens(str(function.get("name") or ""))
                    total += count_tokens(str(function.get("arguments") or ""))
    return total


def _part_type(part: object) -> str | None:
    if isinstance(part, Mapping):
        kind = part.get("type")
        return kind if isinstance(kind, str) else None
    return None


def _part_text(part: object) -> str | None:
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping) and _part_type(part) in ("text", "input_text", "output_text"):
        text = part.get("text")
        return text if isinstance(text, str) else ""
    return None
