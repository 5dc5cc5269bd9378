"""Threads and messages through the official openai SDK, as product backends use them."""

from __future__ import annotations

import time
import uuid
from typing import Any

import openai
import pytest

from threadlog.stack import Stack

from .openapi import validate
from .rawhttp import Http


def raw_json(response: Any) -> Any:
    return response.http_response.json()


def test_thread_lifecycle(client: openai.OpenAI) -> None:
    raw = client.beta.threads.with_raw_response.create(
        messages=[{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi, how can I help?"}],
        metadata={"user_id": "u-life"},
    )
    body = raw_json(raw)
    validate(body, "ThreadObject")
    thread = raw.parse()
    assert thread.id.startswith("thread_") and thread.object == "thread"
    assert isinstance(body["created_at"], int) and abs(body["created_at"] - time.time()) < 60
    assert client.beta.threads.retrieve(thread.id).metadata == {"user_id": "u-life"}

    messages = client.beta.threads.messages.list(thread.id, order="asc")
    assert [m.role for m in messages.data] == ["user", "assistant"]
    assert [m.content[0].text.value for m in messages.data] == ["Hello", "Hi, how can I help?"]  # type: ignore[union-attr]

    updated = client.beta.threads.update(thread.id, metadata={"user_id": "u-life", "topic": "greeting"})
    assert updated.metadata == {"user_id": "u-life", "topic": "greeting"}
    assert client.beta.threads.retrieve(thread.id).metadata == {"user_id": "u-life", "topic": "greeting"}

    raw_deleted = client.beta.threads.with_raw_response.delete(thread.id)
    validate(raw_json(raw_deleted), "DeleteThreadResponse")
    assert raw_deleted.parse().deleted is True
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.create(thread.id, role="user", content="too late")


def test_message_crud(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    raw = client.beta.threads.messages.with_raw_response.create(
        thread.id, role="user", content=[{"type": "text", "text": "part one"},
                                         {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
        metadata={"k": "v"})
    body = raw_json(raw)
    validate(body, "MessageObject")
    msg = raw.parse()
    assert msg.id.startswith("msg_") and msg.thread_id == thread.id and msg.status == "completed"
    assert body["content"][0] == {"type": "text", "text": {"value": "part one", "annotations": []}}
    assert body["content"][1]["image_url"]["url"] == "https://example.com/a.png"
    for key in ("assistant_id", "run_id", "incomplete_details", "incomplete_at"):
        assert key in body and body[key] is None

    got = client.beta.threads.messages.retrieve(msg.id, thread_id=thread.id)
    assert got.id == msg.id and got.metadata == {"k": "v"}
    updated = client.beta.threads.messages.update(msg.id, thread_id=thread.id, metadata={"k": "w"})
    assert updated.metadata == {"k": "w"}
    assert client.beta.threads.messages.retrieve(msg.id, thread_id=thread.id).metadata == {"k": "w"}

    deleted = client.beta.threads.messages.delete(msg.id, thread_id=thread.id)
    assert deleted.deleted and deleted.id == msg.id and deleted.object == "thread.message.deleted"
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(msg.id, thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.delete(msg.id, thread_id=thread.id)
    assert client.beta.threads.messages.list(thread.id).data == []


def test_pagination_both_orders(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    # Created within the same seconds: order must come from the log, not the timestamp.
    ids = [client.beta.threads.messages.create(thread.id, role="user", content=f"m{i}").id for i in range(55)]

    asc = [m.id for m in client.beta.threads.messages.list(thread.id, order="asc", limit=7)]
    assert asc == ids
    desc = [m.id for m in client.beta.threads.messages.list(thread.id, limit=10)]  # default order: desc
    assert desc == ids[::-1]

    page = client.beta.threads.messages.list(thread.id, order="asc", limit=20)
    body = raw_json(client.beta.threads.messages.with_raw_response.list(thread.id, order="asc", limit=20))
    validate(body, "ListMessagesResponse")
    assert body["first_id"] == ids[0] and body["last_id"] == ids[19] and body["has_more"] is True
    assert [m.id for m in page.data] == ids[:20]

    default = client.beta.threads.messages.list(thread.id)
    assert len(default.data) == 20  # default limit

    before = client.beta.threads.messages.list(thread.id, order="asc", before=ids[30], limit=5)
    assert [m.id for m in before.data] == ids[25:30] and before.has_more
    before_desc = client.beta.threads.messages.list(thread.id, order="desc", before=ids[30], limit=5)
    assert [m.id for m in before_desc.data] == ids[35:30:-1]
    last = client.beta.threads.messages.list(thread.id, order="asc", after=ids[50], limit=10)
    assert [m.id for m in last.data] == ids[51:] and not last.has_more


def test_list_filter_by_run_id(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "no run wrote me"}])
    assert client.beta.threads.messages.list(thread.id, run_id="run_unknown").data == []
    assert len(client.beta.threads.messages.list(thread.id).data) == 1


def test_list_threads_filters(client: openai.OpenAI, stack: Stack) -> None:
    user = "u-" + uuid.uuid4().hex[:8]
    mine = [client.beta.threads.create(metadata={"user_id": user, "n": str(i)}).id for i in range(5)]
    client.beta.threads.create(metadata={"user_id": user + "-other"})
    http = Http(stack.base_url, stack.api_key)

    body = http.get("/threads", params={"metadata[user_id]": user, "limit": 3}).json()
    assert [t["id"] for t in body["data"]] == mine[::-1][:3] and body["has_more"] is True
    validate(body["data"][0], "ThreadObject")
    rest = http.get("/threads", params={"metadata[user_id]": user, "after": body["last_id"]}).json()
    assert [t["id"] for t in rest["data"]] == mine[::-1][3:] and rest["has_more"] is False
    asc = http.get("/threads", params={"metadata[user_id]": user, "order": "asc"}).json()
    assert [t["id"] for t in asc["data"]] == mine
    one = http.get("/threads", params={"metadata[user_id]": user, "metadata[n]": "2"}).json()
    assert [t["id"] for t in one["data"]] == [mine[2]]

    now = int(time.time())
    assert http.get("/threads", params={"metadata[user_id]": user, "created_after": now + 60}).json()["data"] == []
    recent = http.get("/threads", params={"metadata[user_id]": user, "created_after": now - 60}).json()
    assert len(recent["data"]) == 5
    assert http.get("/threads", params={"metadata[user_id]": user, "created_before": now - 60}).json()["data"] == []


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    validate(body, "ErrorResponse")
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def test_not_found_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.beta.threads.retrieve("thread_doesnotexist")
    assert error_of(e.value)["type"] == "invalid_request_error"
    thread = client.beta.threads.create()
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve("msg_nope", thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.update("thread_nope", metadata={"a": "b"})
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.delete("thread_nope")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.update("msg_nope", thread_id=thread.id, metadata={})


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, None),
        ({"metadata": {"k": "v" * 513}}, "metadata.k"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": ""}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "x" * 256_001}]}, "messages[0].content"),
        ({"extra_body": {"colour": "blue"}}, "colour"),
        ({"tool_resources": {"code_interpreter": {"file_ids": ["file_1"]}}}, "tool_resources"),
    ],
)
def test_bad_thread_input(client: openai.OpenAI, kwargs: dict[str, Any], param: str | None) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.create(**kwargs)
    error = error_of(e.value)
    assert error["type"] == "invalid_request_error" and error["message"]
    if param is not None:
        assert error["param"] == param


def test_bad_message_and_list_input(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.messages.create(thread.id, role="user", content=[])
    assert error_of(e.value)["param"] == "content"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.create(thread.id, role="user", content="x",
                                            attachments=[{"file_id": "file_1", "tools": [{"type": "file_search"}]}])
    for limit in (0, 101):
        with pytest.raises(openai.BadRequestError) as e:
            client.beta.threads.messages.list(thread.id, limit=limit)
        assert error_of(e.value)["param"] == "limit"
    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.messages.list(thread.id, order="sideways")  # type: ignore[arg-type]
    assert error_of(e.value)["param"] == "order"
    # Nothing of the refused requests reached the thread.
    assert client.beta.threads.messages.list(thread.id).data == []


def test_malformed_json_and_wrong_key(stack: Stack) -> None:
    http = Http(stack.base_url, stack.api_key)
    response = http.post("/threads", content=b"{not json")
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    bad = openai.OpenAI(base_url=stack.base_url, api_key="tl-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.beta.threads.create()
    assert error_of(e.value)["code"] == "invalid_api_key"
    assert Http(stack.base_url).get("/threads").status_code == 401


def test_health_and_metrics(stack: Stack) -> None:
    root = Http(stack.base_url.removesuffix("/v1"))
    assert root.get("/healthz").json()["status"] == "ok"
    assert root.get("/readyz").status_code == 200
    assert "threadlog_http_requests_total" in root.get("/metrics").text
    for service in (stack.projector, *stack.workers):
        probe = Http(f"http://127.0.0.1:{service.probe_port}")
        assert probe.get("/metrics").status_code == 200
        assert probe.get("/readyz").status_code == 200
