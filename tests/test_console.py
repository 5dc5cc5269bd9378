"""The operator console (/console) end to end, in a real headless Chromium (Debian's, driven by Playwright).

A stack of its own; threads are made through the official SDK, then found, read, watched and acted on through
the page, as a support person would. No browser is downloaded: `scripts/ensure_chromium.sh` (run by `make test`)
installs Debian's chromium, and these tests skip, saying why, when it or the `playwright` package is missing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import openai
import pytest

from threadlog.stack import Stack

from .infra import Infra
from .runs_helpers import wait_ended, words
from .tenancy_helpers import create_key

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks the Assistants API so
sync_api = pytest.importorskip("playwright.sync_api", reason="the `playwright` package is not installed")
Page = sync_api.Page
expect = sync_api.expect

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed (scripts/ensure_chromium.sh installs Debian's chromium)",
                allow_module_level=True)
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
# As root, Chromium refuses to start without --no-sandbox; the rest keep it off the network and quiet.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SLOW_MODEL = "threadlog-offline+delay50"  # the offline model, 50 ms between tokens


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


# --- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def console_stack(infra: Infra) -> Iterator[Stack]:
    stack = infra.new_stack("console")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def sdk(console_stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=console_stack.base_url, api_key=console_stack.api_key, max_retries=0)


@pytest.fixture(scope="module")
def assistant_id(sdk: openai.OpenAI) -> str:
    tool = {"type": "function", "function": {"name": "lookup_order", "parameters": {
        "type": "object", "properties": {"order": {"type": "string"}}}}}
    return sdk.beta.assistants.create(model="threadlog-offline", name="Support bot", instructions="Be brief.",
                                         tools=[tool]).id  # type: ignore[list-item]


@pytest.fixture(scope="module")
def browser(console_stack: Stack) -> Iterator[Any]:
    # Playwright's sync API runs an event loop in this thread while the browser is open, so asyncio.run()
    # (which the infra fixtures use to make databases) must be done before: hence the stack comes first.
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the page threw: {errors}"


def sign_in(page: Page, stack: Stack, key: str) -> None:
    page.goto(stack.base_url.removesuffix("/v1") + "/console")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    wait_for_list(page)


# The list marks which search its rows answer (data-loaded = the hash); the old list's mark is stale at once.
LIST_LOADED = "() => document.querySelector('table.threads')?.dataset.loaded === location.hash"


def wait_for_list(page: Page) -> None:
    page.wait_for_function(LIST_LOADED)


def open_thread(page: Page, stack: Stack, thread_id: str) -> None:
    page.goto(f"{stack.base_url.removesuffix('/v1')}/console#/threads/{thread_id}")
    page.locator(f'.timeline[data-thread-id="{thread_id}"]').wait_for()


def search(page: Page, *, user_id: str = "", text: str = "") -> None:
    page.get_by_label("Metadata key").fill("user_id")
    page.get_by_label("Metadata value").fill(user_id)
    page.get_by_label("Text in messages").fill(text)
    page.get_by_role("button", name="Search").click()
    wait_for_list(page)


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("document.getElementById('flash').textContent = ''")  # a transient toast is not the page
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def finished_thread(sdk: openai.OpenAI, assistant_id: str, user_id: str, text: str) -> str:
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": text}],
                                        metadata={"user_id": user_id, "plan": "pro"})
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id,
                                                   poll_interval_ms=50)
    assert run.status == "completed"
    return thread.id


# --- scenarios -----------------------------------------------------------------------------------------------


def test_sign_in_find_a_thread_by_user_and_read_it_with_its_audit_trail(
        page: Page, console_stack: Stack, sdk: openai.OpenAI, assistant_id: str) -> None:
    for i in range(3):  # neighbours, so the search has something to leave out
        finished_thread(sdk, assistant_id, unique(f"other{i}"), f"say {3 + i} words")
    user = unique("u")
    thread_id = finished_thread(sdk, assistant_id, user, "say 7 words")
    sdk.beta.threads.messages.create(thread_id, role="user", content='call lookup_order {"order": "A-17"}')
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id,
                                                   poll_interval_ms=50)
    assert run.status == "requires_action" and run.required_action is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    sdk.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread_id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "shipped"}],
        poll_interval_ms=50)

    # A wrong key is refused on the sign-in form; the right one shows the project's threads, newest first.
    page.goto(console_stack.base_url.removesuffix("/v1") + "/console")
    page.get_by_label("API key").fill("tl-not-a-key")
    page.get_by_role("button", name="Sign in").click()
    assert "not accepted" in page.get_by_role("alert").filter(has_text="key").inner_text()
    sign_in(page, console_stack, console_stack.api_key)
    rows = page.locator("table.threads tbody tr")
    assert rows.count() >= 4
    assert rows.first.get_attribute("data-thread-id") == thread_id
    assert rows.first.locator("td[data-label=Messages]").inner_text() == "4"
    assert rows.first.locator("td[data-label='Last run']").inner_text() == "completed"
    screenshot(page, "console-threads.png")

    search(page, user_id=user)
    assert rows.count() == 1 and rows.first.get_attribute("data-thread-id") == thread_id
    search(page, text="A-17")  # text inside a message
    assert [rows.nth(i).get_attribute("data-thread-id") for i in range(rows.count())] == [thread_id]

    rows.first.get_by_role("link").click()
    page.get_by_role("heading", name=f"Thread {thread_id}").wait_for()
    conversation = page.locator(".timeline")
    conversation.get_by_text(words(7)).wait_for()
    tool = conversation.locator(".tool-call")
    assert "lookup_order" in tool.inner_text() and '"A-17"' in tool.inner_text() and "shipped" in tool.inner_text()
    assert page.locator(".run[data-status=completed]").count() == 2
    assert "Tokens" in page.locator(".run").first.inner_text()

    # The audit view: every event of the thread, and the chain check once the sealer has reached them.
    history = page.locator(".events li")
    assert history.first.get_attribute("data-type") == "thread.created"
    assert page.locator(".events li[data-type='thread.run.tool_outputs_submitted']").count() == 1
    page.locator(".chain[data-state=ok]").wait_for(timeout=20_000)
    sealed = page.locator(".chain").inner_text()
    assert "Chain check passed" in sealed and f"{history.count()} of {history.count()} events sealed" in sealed
    screenshot(page, "console-thread.png")


def test_a_streamed_run_appears_token_by_token(
        page: Page, console_stack: Stack, sdk: openai.OpenAI, assistant_id: str) -> None:
    thread_id = finished_thread(sdk, assistant_id, unique("stream"), "say 2 words")
    sign_in(page, console_stack, console_stack.api_key)
    open_thread(page, console_stack, thread_id)
    page.locator(".run[data-status=completed]").wait_for()

    sdk.beta.threads.messages.create(thread_id, role="user", content="say 40 words")
    run = sdk.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id, model=SLOW_MODEL)
    probe = f"""() => {{
        const run = document.querySelector('.run[data-run-id="{run.id}"]');
        const text = run?.querySelector('.turn-assistant .text');
        return [run?.dataset.status ?? null, text?.textContent ?? ""];
    }}"""
    samples: list[tuple[str | None, str]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, text = page.evaluate(probe)
        samples.append((status, text))
        if status == "completed":
            break
        time.sleep(0.05)
    assert samples[-1][0] == "completed", samples[-3:]
    final = samples[-1][1]
    assert final == words(40)
    # Before the run completed, the page showed the answer growing, in more than a couple of steps.
    partial = [len(text) for status, text in samples if status != "completed" and 0 < len(text) < len(final)]
    print("samples (run status, text length):", [(status, len(text)) for status, text in samples])  # on failure
    assert len(set(partial)) >= 5
    assert partial == sorted(partial), "the streamed text never shrinks"
    assert all(final.startswith(text) for status, text in samples if status != "completed")


def test_cancel_a_run_from_the_page(
        page: Page, console_stack: Stack, sdk: openai.OpenAI, assistant_id: str) -> None:
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "say 300 words"}],
                                        metadata={"user_id": unique("cancel")})
    run = sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id, model=SLOW_MODEL)
    sign_in(page, console_stack, console_stack.api_key)
    open_thread(page, console_stack, thread.id)
    section = page.locator(f'.run[data-run-id="{run.id}"]')
    page.locator(f'.run[data-run-id="{run.id}"] .turn-assistant .text:not(:empty)').wait_for()
    section.get_by_role("button", name="Cancel run").click()
    page.locator(f'.run[data-run-id="{run.id}"][data-status=cancelled]').wait_for()
    assert wait_ended(sdk, thread.id, run.id, 10).status == "cancelled"
    assert page.locator(".events li[data-type='thread.run.cancelled']").count() == 1


def test_edit_metadata_and_delete_a_thread_from_the_page(
        page: Page, console_stack: Stack, sdk: openai.OpenAI, assistant_id: str) -> None:
    user = unique("edit")
    thread_id = finished_thread(sdk, assistant_id, user, "say 3 words")
    sign_in(page, console_stack, console_stack.api_key)
    open_thread(page, console_stack, thread_id)

    page.get_by_text("Edit metadata").click()
    page.get_by_role("button", name="Add pair").click()
    page.get_by_label("Key 3").fill("ticket")
    page.get_by_label("Value 3").fill("T-42")
    page.get_by_role("button", name="Save metadata").click()
    page.locator(".events li[data-type='thread.modified']").wait_for()
    assert sdk.beta.threads.retrieve(thread_id).metadata == {"user_id": user, "plan": "pro", "ticket": "T-42"}
    expect(page.locator(".summary")).to_contain_text("ticket=T-42")

    # Deleting asks first; keeping it changes nothing.
    page.get_by_role("button", name="Delete thread…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Keep it").click()
    assert sdk.beta.threads.retrieve(thread_id).id == thread_id
    page.get_by_role("button", name="Delete thread…").click()
    dialog.get_by_role("button", name="Delete thread", exact=True).click()
    wait_for_list(page)
    with pytest.raises(openai.NotFoundError):
        sdk.beta.threads.retrieve(thread_id)
    search(page, user_id=user)
    assert page.locator(".count").inner_text() == "No threads match."


def test_a_project_key_sees_only_its_project(
        page: Page, console_stack: Stack, sdk: openai.OpenAI, assistant_id: str) -> None:
    key_b = create_key(console_stack, "proj_b")
    client_b = openai.OpenAI(base_url=console_stack.base_url, api_key=key_b, max_retries=0)
    user_b = unique("b")
    thread_b = client_b.beta.threads.create(messages=[{"role": "user", "content": "secret of project B"}],
                                            metadata={"user_id": user_b}).id

    sign_in(page, console_stack, console_stack.api_key)  # project A's key
    search(page, user_id=user_b)
    assert page.locator(".count").inner_text() == "No threads match."
    search(page, text="secret of project B")
    assert page.locator(".count").inner_text() == "No threads match."
    page.goto(f"{console_stack.base_url.removesuffix('/v1')}/console#/threads/{thread_b}")
    assert "No thread found" in page.locator("#view > .error").inner_text()
    assert page.locator(".timeline").count() == 0

    # B's own key does see it: the refusal above is the project boundary, not a broken page.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, console_stack, key_b)
    search(page, user_id=user_b)
    assert page.locator("table.threads tbody tr").first.get_attribute("data-thread-id") == thread_b


def test_a_conversation_shows_its_responses_and_tool_calls(
        page: Page, console_stack: Stack, sdk: openai.OpenAI) -> None:
    conversation = sdk.conversations.create(metadata={"user_id": unique("conv")})
    tools: Any = [{"type": "function", "name": "lookup_order",
                   "parameters": {"type": "object", "properties": {"order": {"type": "string"}}}}]
    first = sdk.responses.create(model="threadlog-offline", conversation=conversation.id, tools=tools,
                                 input='call lookup_order {"order": "B-2"}')
    call = next(o for o in first.output if o.type == "function_call")
    output: Any = [{"type": "function_call_output", "call_id": call.call_id, "output": "delivered"}]
    second = sdk.responses.create(model="threadlog-offline", conversation=conversation.id, tools=tools, input=output)
    sign_in(page, console_stack, console_stack.api_key)
    open_thread(page, console_stack, conversation.id)
    timeline = page.locator(".timeline")
    assert [timeline.locator(".response").nth(i).get_attribute("data-response-id") for i in range(2)] == [
        first.id, second.id]
    tool = timeline.locator(".tool-call")
    assert tool.count() == 1 and '"B-2"' in tool.inner_text() and "delivered" in tool.inner_text()
    assert timeline.locator(".turn-assistant .text").inner_text() == second.output_text


def test_usage_charts_and_a_tampered_event_fail_the_chain_check(
        page: Page, console_stack: Stack, sdk: openai.OpenAI, assistant_id: str) -> None:
    thread_id = finished_thread(sdk, assistant_id, unique("tamper"), "say 4 words")
    sign_in(page, console_stack, console_stack.api_key)
    page.get_by_role("link", name="Usage").click()
    page.get_by_role("heading", name="Usage").wait_for()
    charts = page.locator("figure.chart")
    assert charts.count() == 3
    for i in range(3):
        assert charts.nth(i).locator("svg rect.bar").count() >= 1
    assert thread_id in (charts.nth(2).locator("svg").text_content() or "")

    open_thread(page, console_stack, thread_id)
    page.locator(".chain[data-state=ok]").wait_for(timeout=20_000)
    position = tamper_with_first_message(console_stack.env["DATABASE_URL"], thread_id)
    page.get_by_role("button", name="Check chain again").click()
    page.locator(".chain[data-state=failed]").wait_for()
    assert f"payload_changed at position {position}" in page.locator(".chain").inner_text()


def tamper_with_first_message(database_url: str, thread_id: str) -> int:
    """Rewrite one stored payload behind the log's back (the maintenance switch the immutability trigger allows)."""

    async def go() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL threadlog.allow_rewrite = 'on'")
                row = await conn.fetchrow(
                    "SELECT position, payload FROM events WHERE stream_id = $1"
                    " AND event_type = 'thread.message.created' ORDER BY stream_version LIMIT 1", thread_id)
                forged = bytes(row["payload"]).replace(b"say 4 words", b"say 5 words")
                await conn.execute("UPDATE events SET payload = $1 WHERE position = $2", forged, row["position"])
                return int(row["position"])
        finally:
            await conn.close()

    # Not asyncio.run() here: Playwright's loop is running in this thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()
