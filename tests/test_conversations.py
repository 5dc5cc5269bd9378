"""The Conversations API through the official SDK (and raw HTTP for the list threadlog adds): conversations and
their items over the same streams as threads, checked against OpenAI's schemas."""

from __future__ import annotations

import time
import uuid
from typing import Any

import openai
import pytest

from threadlog.stack import Stack

from .rawhttp import Http
from .responses_helpers import conv_to_thread, error_of, raw_json, validate


def initial_items(tag: str) -> list[dict[str, Any]]:
    """Twenty items of every accepted shape, in order."""
    items: list[dict[str, Any]] = [
        {"role": "developer", "content": f"{tag} developer note"},
        {"role": "system", "content": f"{tag} system note"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"{tag} full user"}]},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": f"{tag} assistant said", "annotations": []}]},
        {"type": "function_call", "call_id": f"call_{tag}", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": f"call_{tag}", "output": "cold"},
    ]
    items += [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{tag} short {i}"} for i in range(14)]
    assert len(items) == 20
    return items


def item_text(item: Any) -> str:
    if item["type"] == "message":
        return "".join(p["text"] for p in item["content"])
    return str(item.get("output") or item.get("arguments"))


def sent_text(item: dict[str, Any]) -> str:
    if "content" in item:
        content = item["content"]
        return content if isinstance(content, str) else "".join(p["text"] for p in content)
    return str(item.get("output") or item.get("arguments"))


def test_conversation_lifecycle(client: openai.OpenAI) -> None:
    tag = uuid.uuid4().hex[:8]
    sent = initial_items(tag)
    raw = client.conversations.with_raw_response.create(items=sent, metadata={"user_id": tag, "topic": "weather"})
    body = raw_json(raw)
    validate(body, "ConversationResource")
    conv = raw.parse()
    assert conv.id.startswith("conv_") and conv.object == "conversation"
    assert isinstance(body["created_at"], int) and abs(body["created_at"] - time.time()) < 60
    assert body["metadata"] == {"user_id": tag, "topic": "weather"}

    # The twenty items, in the order sent, with ids of their kind; the Assistants view sees the same stream.
    listed = raw_json(client.conversations.items.with_raw_response.list(conv.id, order="asc", limit=100))
    validate(listed, "ConversationItemList")
    items = listed["data"]
    assert [i["type"] for i in items] == [s.get("type", "message") for s in sent]
    assert [i.get("role") for i in items] == [s.get("role") for s in sent]
    assert [item_text(i) for i in items] == [sent_text(s) for s in sent]
    assert items[2]["content"] == [{"type": "input_text", "text": f"{tag} full user"}]
    assert items[3]["content"][0]["type"] == "output_text" and items[3]["content"][0]["annotations"] == []
    assert items[4]["id"].startswith("fc_") and items[4]["call_id"] == f"call_{tag}"
    assert items[5]["call_id"] == f"call_{tag}" and items[5]["output"] == "cold"
    assert all(i["id"].startswith("msg_") for i in items if i["type"] == "message")
    assert all(i["status"] == "completed" for i in items)
    thread_id = conv_to_thread(conv.id)
    assert client.beta.threads.retrieve(thread_id).metadata == {"user_id": tag, "topic": "weather"}
    messages = client.beta.threads.messages.list(thread_id, order="asc", limit=100).data
    assert [m.id for m in messages] == [i["id"] for i in items if i.get("role") in ("user", "assistant")]

    got = client.conversations.with_raw_response.retrieve(conv.id)
    validate(raw_json(got), "ConversationResource")
    assert raw_json(got) == body

    updated = client.conversations.with_raw_response.update(conv.id, metadata={"user_id": tag, "topic": "rain"})
    validate(raw_json(updated), "ConversationResource")
    assert updated.parse().metadata == {"user_id": tag, "topic": "rain"}
    assert client.conversations.retrieve(conv.id).metadata == {"user_id": tag, "topic": "rain"}
    assert client.beta.threads.retrieve(thread_id).metadata == {"user_id": tag, "topic": "rain"}  # one map
    assert client.conversations.update(conv.id, metadata={"only": "this"}).metadata == {"only": "this"}

    deleted = client.conversations.with_raw_response.delete(conv.id)
    validate(raw_json(deleted), "DeletedConversationResource")
    assert raw_json(deleted) == {"id": conv.id, "object": "conversation.deleted", "deleted": True}
    for call in (lambda: client.conversations.retrieve(conv.id),
                 lambda: client.conversations.items.list(conv.id),
                 lambda: client.conversations.items.retrieve(items[0]["id"], conversation_id=conv.id),
                 lambda: client.conversations.update(conv.id, metadata={}),
                 lambda: client.conversations.delete(conv.id),
                 lambda: client.beta.threads.retrieve(thread_id),
                 lambda: client.beta.threads.messages.list(thread_id)):
        with pytest.raises(openai.NotFoundError) as e:
            call()
        error_of(e.value)


def test_create_limits(client: openai.OpenAI, stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    with pytest.raises(openai.BadRequestError) as e:
        client.conversations.create(items=[{"role": "user", "content": f"m{i}"} for i in range(21)],
                                    metadata={"tag": tag})
    assert error_of(e.value)["param"] == "items"
    # Nothing of it was written.
    http = Http(stack.base_url, stack.api_key)
    assert http.get("/conversations", params={"metadata[tag]": tag}).json()["data"] == []

    empty = raw_json(client.conversations.with_raw_response.create())
    validate(empty, "ConversationResource")
    assert empty["metadata"] == {}
    assert client.conversations.items.list(empty["id"]).data == []


def test_items_create_retrieve_delete(client: openai.OpenAI) -> None:
    conv = client.conversations.create()
    thread_id = conv_to_thread(conv.id)
    batch = [{"role": "user", "content": f"u{i}"} for i in range(18)]
    batch += [{"type": "function_call", "call_id": "call_items1", "name": "lookup", "arguments": "{}"},
              {"role": "assistant", "content": "calling"}]
    raw = client.conversations.items.with_raw_response.create(conv.id, items=batch)
    body = raw_json(raw)
    validate(body, "ConversationItemList")
    created = body["data"]
    assert len(created) == 20 and len({i["id"] for i in created}) == 20
    assert [item_text(i) for i in created[:18]] == [f"u{i}" for i in range(18)]
    assert body["first_id"] == created[0]["id"] and body["last_id"] == created[-1]["id"]
    assert body["has_more"] is False and body["object"] == "list"
    assert created[18]["type"] == "function_call" and created[19]["content"][0]["type"] == "output_text"
    assert len(raw.parse().data) == 20

    # The output of the open call, in a later call: accepted.
    out = client.conversations.items.create(conv.id, items=[
        {"type": "function_call_output", "call_id": "call_items1", "output": "found"}]).data[0]
    assert out.type == "function_call_output" and out.call_id == "call_items1"

    for item in (created[0], created[18], created[19], out.model_dump(exclude_unset=True)):
        got = client.conversations.items.with_raw_response.retrieve(item["id"], conversation_id=conv.id)
        validate(raw_json(got), "ConversationItem")
        assert raw_json(got) == item

    # Deleting an item answers the Conversation; the item is gone from both surfaces.
    victim = created[1]["id"]
    assert victim in {m.id for m in client.beta.threads.messages.list(thread_id, limit=100)}
    answer = client.conversations.items.with_raw_response.delete(victim, conversation_id=conv.id)
    validate(raw_json(answer), "ConversationResource")
    assert answer.parse().id == conv.id and answer.parse().object == "conversation"
    with pytest.raises(openai.NotFoundError) as e:
        client.conversations.items.retrieve(victim, conversation_id=conv.id)
    error_of(e.value)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.delete(victim, conversation_id=conv.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(victim, thread_id=thread_id)
    remaining = [i.id for i in client.conversations.items.list(conv.id, order="asc", limit=100)]
    assert remaining == [i["id"] for i in created if i["id"] != victim] + [out.id]
    # A function call item can be deleted too.
    client.conversations.items.delete(created[18]["id"], conversation_id=conv.id)
    assert created[18]["id"] not in {i.id for i in client.conversations.items.list(conv.id, limit=100)}

    with pytest.raises(openai.BadRequestError) as e:
        client.conversations.items.create(conv.id, items=[{"role": "user", "content": "x"}] * 21)
    assert error_of(e.value)["param"] == "items"
    with pytest.raises(openai.BadRequestError) as e:
        client.conversations.items.create(conv.id, items=[])
    assert error_of(e.value)["param"] == "items"
    with pytest.raises(openai.BadRequestError) as e:
        client.conversations.items.create(conv.id, items=[
            {"type": "function_call_output", "call_id": "call_never_made", "output": "x"}])
    error = error_of(e.value)
    assert error["param"] == "items" and "call_never_made" in error["message"]


def test_items_pagination_both_orders(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": f"m{i}"} for i in range(20)])
    client.conversations.items.create(conv.id, items=[{"role": "assistant", "content": f"m{i}"}
                                                      for i in range(20, 34)])
    ids = [i.id for i in client.conversations.items.list(conv.id, order="asc", limit=100)]
    assert len(ids) == 34

    # The SDK follows `after=<last_id>` page by page.
    asc = list(client.conversations.items.list(conv.id, order="asc", limit=7))
    assert [i.id for i in asc] == ids
    assert [i.content[0].text for i in asc] == [f"m{i}" for i in range(34)]  # type: ignore[union-attr]
    desc = [i.id for i in client.conversations.items.list(conv.id, limit=5)]  # default order: desc
    assert desc == ids[::-1]
    desc_explicit = [i.id for i in client.conversations.items.list(conv.id, order="desc", limit=9)]
    assert desc_explicit == ids[::-1]

    first = raw_json(client.conversations.items.with_raw_response.list(conv.id))
    validate(first, "ConversationItemList")
    assert [i["id"] for i in first["data"]] == ids[::-1][:20]  # default limit 20, newest first
    assert first["first_id"] == ids[-1] and first["last_id"] == ids[-20] and first["has_more"] is True
    page = client.conversations.items.list(conv.id, order="asc", after=ids[9], limit=10)
    assert [i.id for i in page.data] == ids[10:20] and page.has_more
    tail = client.conversations.items.list(conv.id, order="asc", after=ids[29], limit=10)
    assert [i.id for i in tail.data] == ids[30:] and not tail.has_more
    back = client.conversations.items.list(conv.id, order="desc", after=ids[5], limit=10)
    assert [i.id for i in back.data] == ids[4::-1] and not back.has_more
    for limit in (0, 101):
        with pytest.raises(openai.BadRequestError) as e:
            client.conversations.items.list(conv.id, limit=limit)
        assert error_of(e.value)["param"] == "limit"


def test_list_conversations_filters(client: openai.OpenAI, stack: Stack) -> None:
    user = "u-" + uuid.uuid4().hex[:8]
    mine = [client.conversations.create(metadata={"user_id": user, "n": str(i)}).id for i in range(5)]
    client.conversations.create(metadata={"user_id": user + "-other"})
    gone = client.conversations.create(metadata={"user_id": user, "n": "gone"}).id
    client.conversations.delete(gone)
    http = Http(stack.base_url, stack.api_key)

    body = http.get("/conversations", params={"metadata[user_id]": user, "limit": 3}).json()
    assert body["object"] == "list"
    for conv in body["data"]:
        validate(conv, "ConversationResource")
    assert [c["id"] for c in body["data"]] == mine[::-1][:3] and body["has_more"] is True
    assert body["first_id"] == mine[4] and body["last_id"] == mine[2]
    everything = http.get("/conversations", params={"metadata[user_id]": user}).json()
    assert [c["id"] for c in everything["data"]] == mine[::-1] and everything["has_more"] is False
    asc = http.get("/conversations", params={"metadata[user_id]": user, "order": "asc"}).json()
    assert [c["id"] for c in asc["data"]] == mine
    one = http.get("/conversations", params={"metadata[user_id]": user, "metadata[n]": "2"}).json()
    assert [c["id"] for c in one["data"]] == [mine[2]]
    assert one["data"][0]["metadata"] == {"user_id": user, "n": "2"}

    now = int(time.time())
    later = http.get("/conversations", params={"metadata[user_id]": user, "created_after": now + 60}).json()
    assert later["data"] == []
    recent = http.get("/conversations", params={"metadata[user_id]": user, "created_after": now - 60}).json()
    assert [c["id"] for c in recent["data"]] == mine[::-1]
    before = http.get("/conversations", params={"metadata[user_id]": user, "created_before": now - 60}).json()
    assert before["data"] == []
    assert http.get("/conversations", params={"limit": 0}).status_code == 400
    assert Http(stack.base_url).get("/conversations").status_code == 401


def test_list_conversations_cursor(client: openai.OpenAI, stack: Stack) -> None:
    user = "u-" + uuid.uuid4().hex[:8]
    mine = [client.conversations.create(metadata={"user_id": user}).id for i in range(5)]
    http = Http(stack.base_url, stack.api_key)
    body = http.get("/conversations", params={"metadata[user_id]": user, "limit": 2}).json()
    assert [c["id"] for c in body["data"]] == [mine[4], mine[3]] and body["has_more"]
    seen = [c["id"] for c in body["data"]]
    while body["has_more"]:  # follow the cursor as every OpenAI list does: after=<last_id>
        body = http.get("/conversations", params={"metadata[user_id]": user, "limit": 2,
                                                  "after": body["last_id"]}).json()
        assert body["data"], "a page promised by has_more came back empty"
        seen += [c["id"] for c in body["data"]]
    assert seen == mine[::-1]


@pytest.mark.parametrize(
    ("items", "param"),
    [
        ([{"type": "reasoning", "summary": []}], "items[0].type"),
        ([{"role": "user", "content": "ok"}, {"type": "web_search_call", "id": "ws_1"}], "items[1].type"),
        ([{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}], "items[0].content[0].type"),
        ([{"role": "tool", "content": "x"}], "items[0]"),
        ([{"type": "function_call_output", "call_id": "call_nowhere", "output": "x"}], "items"),
        ([{"type": "function_call_output", "output": "x"}], "items[0]"),
        ([{"type": "function_call", "call_id": "call_1", "name": "f"}], "items[0]"),
        ([{"role": "user", "content": "x"}] * 21, "items"),
    ],
)
def test_bad_items(client: openai.OpenAI, items: list[Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.conversations.create(items=items)
    assert error_of(e.value)["param"] == param


def test_bad_requests_and_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.conversations.create(metadata={f"k{i}": "v" for i in range(17)})
    assert error_of(e.value)["param"] == "metadata"
    with pytest.raises(openai.BadRequestError) as e:
        client.conversations.create(extra_body={"colour": "blue"})
    assert error_of(e.value)["param"] == "colour"
    conv = client.conversations.create()

    for call in (lambda: client.conversations.retrieve("conv_doesnotexist"),
                 lambda: client.conversations.update("conv_doesnotexist", metadata={"a": "b"}),
                 lambda: client.conversations.delete("conv_doesnotexist"),
                 lambda: client.conversations.items.list("conv_doesnotexist"),
                 lambda: client.conversations.items.create("conv_doesnotexist", items=[{"role": "user",
                                                                                         "content": "x"}]),
                 lambda: client.conversations.items.retrieve("msg_nope", conversation_id=conv.id),
                 lambda: client.conversations.items.delete("msg_nope", conversation_id=conv.id)):
        with pytest.raises(openai.NotFoundError) as e:
            call()
        error_of(e.value)
    with pytest.raises(openai.NotFoundError) as e:
        client.conversations.retrieve("conv_doesnotexist")
    assert "conv_doesnotexist" in error_of(e.value)["message"]
