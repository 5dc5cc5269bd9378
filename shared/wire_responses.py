"""Conversations and Responses wire objects, built from the same events as the Assistants view.

A thread and a conversation are one stream: `thread_<suffix>` and `conv_<suffix>` name it on each surface.
"""

from __future__ import annotations

from typing import Any

from shared.events import (
    ContentBlock,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    ImageUrlBlock,
    MessageCreated,
    RefusalBlock,
    ResponseCreated,
    TextBlock,
    ToolCall,
    ToolOutput,
)

Obj = dict[str, Any]


def to_thread_id(any_id: str) -> str:
    return "thread_" + any_id[5:] if any_id.startswith("conv_") else any_id


def to_conversation_id(thread_id: str) -> str:
    return "conv_" + thread_id[7:] if thread_id.startswith("thread_") else thread_id


def call_item_id(call_id: str) -> str:
    """A run's tool call seen as a conversation item: a stable id derived from the call's."""
    return "fc_" + call_id.removeprefix("call_")


def output_item_id(call_id: str) -> str:
    return "fco_" + call_id.removeprefix("call_")


def parts(role: str, content: list[ContentBlock]) -> list[Obj]:
    out: list[Obj] = []
    for block in content:
        match block:
            case TextBlock(text=text):
                if role == "assistant":
                    out.append({"type": "output_text", "text": text.value, "annotations": [], "logprobs": []})
                else:
                    out.append({"type": "input_text", "text": text.value})
            case ImageUrlBlock(image_url=image):
                out.append({"type": "input_image", "image_url": image.url, "detail": image.detail})
            case RefusalBlock(refusal=refusal):
                out.append({"type": "refusal", "refusal": refusal})
    return out


def message_item(e: MessageCreated) -> Obj:
    return {"type": "message", "id": e.message_id, "status": e.status, "role": e.role,
            "content": parts(e.role, e.content)}


def function_call_item(e: FunctionCallItem) -> Obj:
    return {"type": "function_call", "id": e.item_id, "call_id": e.call_id, "name": e.name,
            "arguments": e.arguments, "status": "completed"}


def function_output_item(e: FunctionCallOutputItem) -> Obj:
    return {"type": "function_call_output", "id": e.item_id, "call_id": e.call_id, "output": e.output,
            "status": "completed"}


def run_call_items(calls: list[ToolCall]) -> list[Obj]:
    return [{"type": "function_call", "id": call_item_id(c.id), "call_id": c.id, "name": c.function.name,
             "arguments": c.function.arguments, "status": "completed"} for c in calls]


def run_output_items(outputs: list[ToolOutput]) -> list[Obj]:
    return [{"type": "function_call_output", "id": output_item_id(o.tool_call_id), "call_id": o.tool_call_id,
             "output": o.output, "status": "completed"} for o in outputs]


def conversation_object(thread_id: str, created_at: int, metadata: dict[str, str]) -> Obj:
    return {"id": to_conversation_id(thread_id), "object": "conversation", "created_at": created_at,
            "metadata": metadata}


def flat_tool(tool: FunctionTool) -> Obj:
    f = tool.function
    return {"type": "function", "name": f.name, "description": f.description, "parameters": f.parameters,
            "strict": f.strict if f.strict is not None else True}


def tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "name": choice["function"]["name"]}
    return choice


def response_object(e: ResponseCreated) -> Obj:
    """The Response as created (queued / in_progress); later events patch it."""
    return {
        "id": e.response_id, "object": "response", "created_at": e.created_at,
        "status": "queued" if e.background else "in_progress", "completed_at": None, "background": e.background,
        "conversation": {"id": to_conversation_id(e.conversation_id)} if e.conversation_id else None,
        "previous_response_id": e.previous_response_id, "error": None, "incomplete_details": None,
        "instructions": e.instructions, "max_output_tokens": e.max_output_tokens, "max_tool_calls": None,
        "model": e.model, "output": [], "parallel_tool_calls": e.parallel_tool_calls, "metadata": e.metadata,
        "reasoning": None, "service_tier": "default", "store": e.store, "temperature": e.temperature,
        "text": {"format": e.text_format or {"type": "text"}}, "tool_choice": tool_choice(e.tool_choice),
        "tools": [flat_tool(t) for t in e.tools], "top_p": e.top_p, "truncation": e.truncation, "usage": None,
        "user": e.user,
    }


def response_usage(prompt: int, completion: int) -> Obj:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}

