"""Carries out one run: claim it at the expected version, hold a lease, call the model, record the outcome.

Every append goes through a decision that first checks the run is still this attempt's: a worker that lost
its lease (and was taken over) appends nothing, so a thread never gets two answers for one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import asyncpg

from shared.budgets import Budgets
from shared.bus import Bus
from shared.consistency import ConsistencyWaiter
from shared.db import DATABASE_ERRORS
from shared.events import ContentBlock, Event, LastError, TextBlock, TextValue, Usage
from shared.repository import Repository
from shared.state import ThreadState
from shared.store import Cursor
from shared.tokens import count_message_tokens, count_tokens

from . import decisions, response_decisions, response_prompt
from .deltas import Deltas
from .leases import Leases
from .llm import Finish, Fragment, Model, ModelError, ToolCallBuilder
from .prompt import build_messages, model_request, thread_history

log = logging.getLogger(__name__)
Decide = Callable[[ThreadState], Sequence[Event]]
Kind = Literal["run", "response"]


class RunExpiredError(Exception):
    pass


def estimate_usage(messages: list[dict[str, Any]], text: str) -> Usage:
    """For endpoints that report no usage: our own offline count."""
    prompt, completion = count_message_tokens(messages), count_tokens(text)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def now_s() -> int:
    return int(time.time())


class Executor:
    def __init__(self, *, pool: asyncpg.Pool, threads: Repository[ThreadState], model: Model, leases: Leases,
                 waiter: ConsistencyWaiter, bus: Bus, deltas: Deltas, budgets: Budgets, worker_id: str,
                 lease_ms: int, context_tokens: int = 128_000) -> None:
        self._pool = pool
        self.threads = threads
        self._model = model
        self._leases = leases
        self._waiter = waiter
        self._bus = bus
        self._deltas = deltas
        self._budgets = budgets
        self._context_tokens = context_tokens
        self.worker_id = worker_id
        self._lease_s = lease_ms / 1000
        self.active: dict[str, asyncio.Task[None]] = {}
        self.cancel_requested: set[str] = set()
        self._partial: dict[str, str] = {}  # the text streamed so far, kept by an ended (cancelled) message

    async def append(self, thread_id: str, tenant_id: str, decide: Decide) -> None:
        outcome = await self.threads.execute(thread_id, tenant_id, decide)
        if outcome.result is not None:
            await self._bus.appended(thread_id)

    async def claim(self, thread_id: str, run_id: str, tenant_id: str,
                    kind: Kind = "run") -> tuple[decisions.Action, int]:
        """Decide what to do with a delivery about a run (or response); on "execute", it is ours at the returned
        attempt."""
        alive = await self._leases.holder_alive(run_id, self.worker_id)
        chosen: list[decisions.Action] = ["drop"]
        claim = decisions.claim if kind == "run" else response_decisions.claim

        def decide(state: ThreadState) -> Sequence[Event]:
            events, chosen[0] = claim(state, run_id, self.worker_id, now_s(), alive)
            return events

        await self.threads.load(thread_id)
        await self.append(thread_id, tenant_id, decide)
        state = await self.threads.load(thread_id)
        turn = state.runs.get(run_id) if kind == "run" else state.responses.get(run_id)
        attempt = turn.attempt if turn is not None else 0
        if chosen[0] == "execute":
            await self._leases.take(run_id, self.worker_id, attempt)
        return chosen[0], attempt

    async def execute(self, thread_id: str, run_id: str, tenant_id: str, attempt: int, after: Cursor,
                      keepalive: Callable[[], object], kind: Kind = "run") -> None:
        """Run the attempt to a stable point (an answer, requires_action, or an end). Cancellation-safe."""
        heartbeat = asyncio.create_task(self._heartbeat(thread_id, run_id, attempt, keepalive))
        text = ""
        fail = decisions.fail if kind == "run" else response_decisions.fail
        try:
            await self._deltas.attempt_started(thread_id, run_id, attempt)
            if kind == "run":
                text = await self._attempt(thread_id, run_id, tenant_id, attempt, after)
            else:
                text = await self._response_attempt(thread_id, run_id, tenant_id, attempt, after)
        except decisions.SupersededError:
            log.info("run superseded", extra={"run_id": run_id, "attempt": attempt})
        except asyncio.CancelledError:
            if run_id not in self.cancel_requested:
                raise  # shutting down: the lease lapses and another worker takes the run over
            await self._end(thread_id, run_id, tenant_id, attempt, "cancelled", self._partial.get(run_id, text), kind)
        except RunExpiredError:
            await self._end(thread_id, run_id, tenant_id, attempt, "expired", self._partial.get(run_id, text), kind)
        except ModelError as e:
            failure = e.error
            await self._guarded(thread_id, tenant_id, lambda s: fail(s, run_id, attempt, now_s(), failure))
        except Exception as e:
            log.exception("run failed unexpectedly", extra={"run_id": run_id})
            error = LastError(code="server_error", message=f"threadlog failed to carry out the run: {e!r}")
            await self._guarded(thread_id, tenant_id, lambda s: fail(s, run_id, attempt, now_s(), error))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            self.cancel_requested.discard(run_id)
            self._partial.pop(run_id, None)
            self._deltas.finished(run_id)
            with contextlib.suppress(Exception):
                await self._leases.release(run_id, self.worker_id, attempt)

    async def _guarded(self, thread_id: str, tenant_id: str, decide: Decide) -> None:
        with contextlib.suppress(decisions.SupersededError):
            await self.append(thread_id, tenant_id, decide)

    async def _end(self, thread_id: str, run_id: str, tenant_id: str, attempt: int, how: str, text: str,
                   kind: Kind) -> None:
        content: list[ContentBlock] = [TextBlock(text=TextValue(value=text))] if text else []

        def decide(state: ThreadState) -> Sequence[Event]:
            if kind == "response":
                response = response_decisions.ours(state, run_id, attempt)
                error = LastError(code="server_error", message="The response expired before it could finish.")
                if how == "cancelled":
                    return response_decisions.ended(state, response, now_s(), "cancelled", content=content)
                return response_decisions.ended(state, response, now_s(), "failed", content=content, error=error)
            run = decisions.ours(state, run_id, attempt)
            return decisions.ended(state, run, now_s(), how, content=content)  # type: ignore[arg-type]

        await self._guarded(thread_id, tenant_id, decide)

    async def _attempt(self, thread_id: str, run_id: str, tenant_id: str, attempt: int, after: Cursor) -> str:
        state = await self.threads.load(thread_id)
        run = decisions.ours(state, run_id, attempt)
        while not await self._waiter.wait(after, thread_id):  # the thread's messages must be in the read model
            if now_s() >= run.config.expires_at:
                raise RunExpiredError(run_id)
        messages = build_messages(run, await thread_history(self._pool, run.config))
        if messages is None:
            await self.append(thread_id, tenant_id, lambda s: decisions.prompt_too_long(s, run_id, attempt, now_s()))
            return ""
        if await self._budgets.of(tenant_id):  # spending is checked before the money is spent, never after
            refusal = await self._budgets.refusal(tenant_id, thread_id, count_message_tokens(messages) + 1)
            if refusal is not None:
                raise ModelError(LastError(code="rate_limit_exceeded", message=refusal))
        text, calls, finish = await self._stream_model(
            thread_id, run_id, tenant_id, model_request(run, messages),
            lambda s: decisions.start_message(s, run_id, attempt, now_s()),
            lambda s: decisions.start_tool_calls(s, run_id, attempt, now_s()), run.config.expires_at)
        usage = finish.usage or estimate_usage(messages, text)
        content: list[ContentBlock] = [TextBlock(text=TextValue(value=text))] if text else []
        if calls:
            tool_calls = calls.calls()
            await self.append(thread_id, tenant_id, lambda s: decisions.finish_tool_calls(
                s, run_id, attempt, tool_calls, usage, now_s(), content))
        else:
            if not text:  # an empty answer still gets its message, as the hosted API does
                await self.append(thread_id, tenant_id, lambda s: decisions.start_message(s, run_id, attempt, now_s()))
            await self.append(thread_id, tenant_id, lambda s: decisions.finish_text(
                s, run_id, attempt, content, usage, now_s(), truncated=finish.reason == "length"))
        return text

    async def _stream_model(self, thread_id: str, turn_id: str, tenant_id: str, request: dict[str, Any],
                            start_message: Decide, start_tools: Decide,
                            expires_at: int) -> tuple[str, ToolCallBuilder, Finish]:
        """Call the model; record where its answer goes as it starts; forward deltas as they stream."""
        text, calls = "", ToolCallBuilder()
        finish = Finish("stop", None)
        async for piece in self._model.stream(request):
            if now_s() >= expires_at:
                raise RunExpiredError(turn_id)
            if isinstance(piece, Finish):
                finish = piece
            elif piece.text is not None:
                if not text:
                    await self.append(thread_id, tenant_id, start_message)
                text += piece.text
                self._partial[turn_id] = text
                await self._text_delta(thread_id, turn_id, piece)
            elif piece.tool_index is not None:
                if not calls:
                    await self.append(thread_id, tenant_id, start_tools)
                calls.add(piece)
                await self._tool_delta(thread_id, turn_id, piece)
        return text, calls, finish

    async def _response_attempt(self, thread_id: str, response_id: str, tenant_id: str, attempt: int,
                                after: Cursor) -> str:
        state = await self.threads.load(thread_id)
        response = response_decisions.ours(state, response_id, attempt)
        c = response.config
        while not await self._waiter.wait(after, thread_id):  # the items must be in the read model
            if now_s() >= c.expires_at:
                raise RunExpiredError(response_id)
        messages = response_prompt.fit(response_prompt.to_chat(
            await response_prompt.history_items(self._pool, response), c.instructions), c, self._context_tokens)
        if messages is None:
            raise ModelError(LastError(code="invalid_prompt", message="The input exceeds the context window "
                                       f"({self._context_tokens} tokens) and truncation is disabled."))
        if await self._budgets.of(tenant_id):
            refusal = await self._budgets.refusal(tenant_id, thread_id, count_message_tokens(messages) + 1)
            if refusal is not None:
                raise ModelError(LastError(code="rate_limit_exceeded", message=refusal))
        text, calls, finish = await self._stream_model(
            thread_id, response_id, tenant_id, response_prompt.model_request(c, messages),
            lambda s: response_decisions.start_message(s, response_id, attempt, now_s()), lambda s: [],
            c.expires_at)
        usage = finish.usage or estimate_usage(messages, text)
        content: list[ContentBlock] = [TextBlock(text=TextValue(value=text))] if text else []
        tool_calls = calls.calls() if calls else []
        await self.append(thread_id, tenant_id, lambda s: response_decisions.finish(
            s, response_id, attempt, content, tool_calls, usage, now_s(), truncated=finish.reason == "length"))
        return text

    async def _text_delta(self, thread_id: str, run_id: str, piece: Fragment) -> None:
        state = self.threads.cached(thread_id)
        turn = (state.runs.get(run_id) or state.responses.get(run_id)) if state else None
        if turn is not None and turn.message_id is not None and piece.text:
            await self._deltas.text(thread_id, run_id, turn.message_id, piece.text)

    async def _tool_delta(self, thread_id: str, run_id: str, piece: Fragment) -> None:
        state = self.threads.cached(thread_id)
        run = state.runs.get(run_id) if state else None
        if run is not None and run.step_id is not None and piece.tool_index is not None:
            await self._deltas.tool_call(thread_id, run_id, run.step_id, piece.tool_index, piece.tool_id,
                                         piece.tool_name, piece.tool_arguments)

    async def _heartbeat(self, thread_id: str, run_id: str, attempt: int, keepalive: Callable[[], object]) -> None:
        """Renew the lease; notice a takeover or a cancel that no nudge told us about."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                if not await self._leases.renew(run_id, self.worker_id, attempt):
                    log.warning("lease lost", extra={"run_id": run_id})
                    self._stop(run_id, cancel=False)
                    return
                result = keepalive()
                if asyncio.iscoroutine(result):
                    await result
                state = await self.threads.load(thread_id)
                turn = state.runs.get(run_id) or state.responses.get(run_id)
                if turn is not None and turn.status == "cancelling":
                    self._stop(run_id, cancel=True)
            except (*DATABASE_ERRORS, asyncpg.PostgresError) as e:
                log.warning("heartbeat failed: %r", e, extra={"run_id": run_id})

    def request_cancel(self, run_id: str) -> bool:
        return self._stop(run_id, cancel=True)

    def _stop(self, run_id: str, *, cancel: bool) -> bool:
        task = self.active.get(run_id)
        if task is None or task.done():
            return False
        if cancel:
            self.cancel_requested.add(run_id)
        task.cancel()
        return True

