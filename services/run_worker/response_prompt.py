"""A response's model input: the conversation's items (or the chain of previous responses), then its input.

Items come from the `items` read model, in the stream's order, never by folding the log again.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from shared.events import ResponseCreated
from shared.state import ResponseState
from shared.tokens import count_message_tokens

from .prompt import Chat, chat_request

_OWN = "SELECT body::text FROM items WHERE thread_id = $1 AND seq < $2 ORDER BY seq"
_CHAIN = """
WITH RECURSIVE chain AS (
    SELECT response_id, previous_response_id, thread_id, input_item_ids, body, 0 AS depth
    FROM responses WHERE response_id = $1
    UNION ALL
    SELECT r.response_id, r.previous_response_id, r.thread_id, r.input_item_ids, r.body, c.depth + 1
    FROM responses r JOIN chain c ON r.response_id = c.previous_response_id
)
SELECT thread_id, input_item_ids, body::text FROM chain ORDER BY depth DESC
"""
_UPTO = """SELECT body::text FROM items WHERE thread_id = $1
AND seq <= (SELECT coalesce(max(seq), 0) FROM items WHERE item_id = ANY($2::text[])) ORDER BY seq"""


async def history_items(pool: asyncpg.Pool, r: ResponseState) -> list[dict[str, Any]]:
    """Earlier responses of the chain (each with what its stream held up to its output), then this stream."""
    c = r.config
    items: list[dict[str, Any]] = []
    if c.previous_response_id is not None:
        for thread_id, input_ids, body in await pool.fetch(_CHAIN, c.previous_response_id):
            output_ids = [i["id"] for i in msgspec.json.decode(body)["output"]]
            rows = await pool.fetch(_UPTO, thread_id, [*input_ids, *output_ids])
            items.extend(msgspec.json.decode(row[0]) for row in rows)
    rows = await pool.fetch(_OWN, c.thread_id, r.created_version * 1000)
    items.extend(msgspec.json.decode(row[0]) for row in rows)
    return items


def _content(item: dict[str, Any]) -> str | list[dict[str, Any]]:
    parts = item.get("content", [])
    if all(p.get("type") in ("input_text", "output_text") for p in parts):
        return "".join(p.get("text", "") for p in parts)
    out: list[dict[str, Any]] = []
    for p in parts:
        if p.get("type") in ("input_text", "output_text"):
            out.append({"type": "text", "text": p.get("text", "")})
        elif p.get("type") == "input_image":
            out.append({"type": "image_url", "image_url": {"url": p["image_url"], "detail": p.get("detail", "auto")}})
        elif p.get("type") == "refusal":
            out.append({"type": "text", "text": p.get("refusal", "")})
    return out


def to_chat(items: list[dict[str, Any]], instructions: str | None) -> list[Chat]:
    messages: list[Chat] = [{"role": "system", "content": instructions}] if instructions else []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            messages.append({"role": item["role"], "content": _content(item)})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") is not None:
                last["tool_calls"].append(call)  # parallel calls: one assistant turn
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    return messages


def fit(messages: list[Chat], c: ResponseCreated, context_tokens: int) -> list[Chat] | None:
    """Keep within the context window: `auto` drops the oldest turns, `disabled` refuses (None)."""
    if count_message_tokens(messages) <= context_tokens:
        return messages
    if c.truncation == "disabled":
        return None
    head = [m for m in messages[:1] if m["role"] == "system"]
    body = messages[len(head):]
    while body and count_message_tokens([*head, *body]) > context_tokens:
        body.pop(0)
        while body and body[0]["role"] == "tool":  # never leave an output without its call
            body.pop(0)
    return [*head, *body] if body else None


def model_request(c: ResponseCreated, messages: list[Chat]) -> dict[str, Any]:
    request = chat_request(c.model, messages, c.tools, c.tool_choice, c.parallel_tool_calls, c.temperature, c.top_p)
    if c.max_output_tokens is not None:
        request["max_completion_tokens"] = c.max_output_tokens
    fmt = c.text_format
    if fmt is not None and fmt.get("type") == "json_object":
        request["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        request["response_format"] = {"type": "json_schema", "json_schema": schema}
    return request
