"""The model's input for a run: instructions, the thread's messages (truncated as asked), the run's tool rounds.

Messages come from the read model (indexed by thread and order), never by folding the whole log again.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from shared.events import FunctionTool, RunCreated, ToolChoice
from shared.state import RunState
from shared.tokens import count_message_tokens

Chat = dict[str, Any]

_ALL = """SELECT body::text FROM messages WHERE thread_id = $1 AND run_id IS DISTINCT FROM $2 ORDER BY seq"""
_LAST = """SELECT body::text FROM (SELECT body, seq FROM messages WHERE thread_id = $1 AND run_id IS DISTINCT FROM $2
ORDER BY seq DESC LIMIT $3) m ORDER BY seq"""


def _chat_content(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if all(b.get("type") == "text" for b in blocks):
        return "".join(b["text"]["value"] for b in blocks)
    parts: list[dict[str, Any]] = []
    for b in blocks:
        if b.get("type") == "text":
            parts.append({"type": "text", "text": b["text"]["value"]})
        elif b.get("type") == "image_url":
            parts.append({"type": "image_url", "image_url": b["image_url"]})
        elif b.get("type") == "refusal":
            parts.append({"type": "text", "text": b["refusal"]})
    return parts


async def thread_history(pool: asyncpg.Pool, run: RunCreated) -> list[Chat]:
    """The thread's messages as chat messages, oldest first, without this run's own (in-progress) ones."""
    strategy = run.truncation_strategy
    if strategy.type == "last_messages" and strategy.last_messages is not None:
        rows = await pool.fetch(_LAST, run.thread_id, run.run_id, strategy.last_messages)
    else:
        rows = await pool.fetch(_ALL, run.thread_id, run.run_id)
    history: list[Chat] = []
    for row in rows:
        body = msgspec.json.decode(row[0])
        history.append({"role": body["role"], "content": _chat_content(body["content"])})
    return history


def tool_rounds(run: RunState) -> list[Chat]:
    """Each answered round: the assistant's calls, then one tool message per output."""
    out: list[Chat] = []
    for r in run.rounds:
        if r.outputs is None:
            continue
        out.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in r.tool_calls]})
        out.extend({"role": "tool", "tool_call_id": o.tool_call_id, "content": o.output} for o in r.outputs)
    return out


def build_messages(run: RunState, history: list[Chat]) -> list[Chat] | None:
    """The chat messages, oldest history dropped to fit max_prompt_tokens (None: cannot fit at all)."""
    c = run.config
    head: list[Chat] = [{"role": "system", "content": c.instructions}] if c.instructions else []
    tail = tool_rounds(run)
    limit = c.max_prompt_tokens
    if limit is None:
        return [*head, *history, *tail]
    fixed = count_message_tokens([*head, *tail])
    kept: list[Chat] = []
    budget = limit - fixed
    for message in reversed(history):  # keep the newest messages that fit
        cost = count_message_tokens([message])
        if cost > budget:
            break
        kept.append(message)
        budget -= cost
    if fixed > limit or (history and not kept):
        return None
    return [*head, *reversed(kept), *tail]


def _chat_tool(tool: FunctionTool) -> dict[str, Any]:
    fn: dict[str, Any] = msgspec.to_builtins(tool.function)
    return {"type": "function", "function": fn}


def chat_request(model: str, messages: list[Chat], tools: list[FunctionTool], tool_choice: ToolChoice,
                 parallel_tool_calls: bool, temperature: float | None, top_p: float | None) -> dict[str, Any]:
    """The settings runs and responses share, as chat.completions takes them (tools only when offered)."""
    request: dict[str, Any] = {"model": model, "messages": messages}
    if tools:
        request["tools"] = [_chat_tool(t) for t in tools]
        request["tool_choice"] = tool_choice
        request["parallel_tool_calls"] = parallel_tool_calls
    if temperature is not None:
        request["temperature"] = temperature
    if top_p is not None:
        request["top_p"] = top_p
    return request


def model_request(run: RunState, messages: list[Chat]) -> dict[str, Any]:
    """The chat.completions request, with every run setting that has a chat-completions meaning."""
    c = run.config
    request = chat_request(c.model, messages, c.tools, c.tool_choice, c.parallel_tool_calls, c.temperature, c.top_p)
    if c.response_format != "auto":
        request["response_format"] = c.response_format
    if c.max_completion_tokens is not None:
        request["max_completion_tokens"] = max(1, c.max_completion_tokens - run.usage.completion_tokens)
    return request
