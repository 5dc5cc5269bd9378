"""NATS JetStream: the streams threadlog publishes to, durable consumers, and core-NATS nudges.

Knows bytes, subjects and headers; knows nothing of events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api

log = logging.getLogger(__name__)

# JetStream drops a re-publish with a Nats-Msg-Id it saw within this window: it must outlast a relay restart.
DUPLICATE_WINDOW_S = 600.0
EVENTS_MAX_AGE_S = 7 * 24 * 3600.0
# Token deltas are kept this long for resumed streams; after that a resume gets the rest of a message at once.
DELTAS_MAX_AGE_S = 24 * 3600.0
PUBLISH_WINDOW = 64  # publishes kept in flight: sequential publish-and-ack is 5x slower (baselines.md)


class Subjects(msgspec.Struct, frozen=True):
    """Every subject and stream name, derived from one prefix so stacks can share a NATS server."""

    prefix: str

    @property
    def events_stream(self) -> str:
        return f"{self.prefix.upper().replace('.', '_').replace('-', '_')}_EVENTS"

    @property
    def deltas_stream(self) -> str:
        return self.events_stream.removesuffix("_EVENTS") + "_DELTAS"

    def event(self, stream_id: str, event_type: str) -> str:
        """Stream id first, so one stream's events are `<prefix>.ev.<stream_id>.>`."""
        return f"{self.prefix}.ev.{stream_id}.{event_type}"

    def events_of_type(self, event_type: str) -> str:
        return f"{self.prefix}.ev.*.{event_type}"

    def deltas(self, thread_id: str, run_id: str) -> str:
        """Token deltas of one run (core publishes kept by the retained deltas stream)."""
        return f"{self.prefix}.delta.{thread_id}.{run_id}"

    @property
    def all_deltas(self) -> str:
        return f"{self.prefix}.delta.>"

    def tail(self, stream_id: str) -> str:
        """Core-NATS nudge: `stream_id` has new events in the log (wakes live streams of it)."""
        return f"{self.prefix}.tail.{stream_id}"

    @property
    def all_events(self) -> str:
        return f"{self.prefix}.ev.>"

    @property
    def appended(self) -> str:
        """Core-NATS nudge: something was appended to the log (wakes the relay and the projector)."""
        return f"{self.prefix}.nudge.appended"

    @property
    def projected(self) -> str:
        """Core-NATS nudge carrying a projection checkpoint (wakes writers waiting for read-your-writes)."""
        return f"{self.prefix}.nudge.projected"

    def durable(self, role: str) -> str:
        return f"{self.prefix}-{role}".replace(".", "-")


class Outgoing(msgspec.Struct, frozen=True):
    subject: str
    data: bytes
    msg_id: str


class Bus:
    def __init__(self, nc: NatsClient, subjects: Subjects, replicas: int = 1) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(publish_async_max_pending=PUBLISH_WINDOW)
        self.subjects = subjects
        self._replicas = replicas

    async def ensure_streams(self) -> None:
        """Create or update the events stream; idempotent, safe from every process at start-up."""
        config = api.StreamConfig(
            name=self.subjects.events_stream,
            subjects=[self.subjects.all_events],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            max_age=EVENTS_MAX_AGE_S,
            duplicate_window=DUPLICATE_WINDOW_S,
            num_replicas=self._replicas,
        )
        deltas = api.StreamConfig(
            name=self.subjects.deltas_stream,
            subjects=[self.subjects.all_deltas],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            max_age=DELTAS_MAX_AGE_S,
            num_replicas=self._replicas,
        )
        for stream in (config, deltas):
            try:
                await self.js.add_stream(stream)
            except nats.js.errors.BadRequestError:
                await self.js.update_stream(stream)

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def publish_all(self, messages: Sequence[Outgoing], ack_timeout_s: float = 5.0) -> None:
        """Publish with up to PUBLISH_WINDOW in flight; returns once JetStream acknowledged every one."""
        futures: list[asyncio.Future[api.PubAck]] = []
        try:
            for m in messages:
                headers = {"Nats-Msg-Id": m.msg_id}
                future = await self.js.publish_async(m.subject, m.data, wait_stall=ack_timeout_s, headers=headers)
                futures.append(future)
            async with asyncio.timeout(ack_timeout_s):
                await asyncio.gather(*futures)
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    async def purge_stream_subjects(self, stream_id: str) -> None:
        """Drop every copy NATS keeps of a stream's events and deltas (erasure)."""
        await self.js.purge_stream(self.subjects.events_stream, subject=f"{self.subjects.prefix}.ev.{stream_id}.>")
        await self.js.purge_stream(self.subjects.deltas_stream, subject=f"{self.subjects.prefix}.delta.{stream_id}.>")

    async def nudge(self, subject: str, data: bytes = b"") -> None:
        """Fire-and-forget: a lost nudge costs a poll interval, never an event."""
        if not self.nc.is_connected:
            return
        with contextlib.suppress(nats.errors.Error, OSError):
            await self.nc.publish(subject, data)

    async def appended(self, stream_id: str) -> None:
        """Tell the relay, the projector and live streams of `stream_id` that the log grew."""
        await self.nudge(self.subjects.appended)
        await self.nudge(self.subjects.tail(stream_id))

    async def on_nudge(self, subject: str, callback: Callable[[Msg], Awaitable[None]]) -> Subscription:
        sub: Subscription = await self.nc.subscribe(subject, cb=callback)
        return sub

    async def pull(self, role: str, filter_subjects: list[str], ack_wait_s: float = 30.0,
                   max_deliver: int = -1) -> JetStreamContext.PullSubscription:
        """Bind to (creating if missing) the durable pull consumer of `role`."""
        config = api.ConsumerConfig(
            durable_name=self.subjects.durable(role),
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=ack_wait_s,
            max_deliver=max_deliver,
            filter_subjects=filter_subjects,
            num_replicas=self._replicas,
        )
        name = self.subjects.durable(role)
        try:
            await self.js.add_consumer(self.subjects.events_stream, config)
        except nats.js.errors.BadRequestError as e:
            # The server updates a durable whose new settings are compatible; otherwise it keeps the old ones.
            log.warning("consumer %s kept its earlier configuration: %s", name, e)
        return await self.js.pull_subscribe_bind(durable=name, stream=self.subjects.events_stream)


@asynccontextmanager
async def open_bus(url: str, prefix: str, *, name: str, replicas: int = 1) -> AsyncIterator[Bus]:
    """Connect (reconnecting for ever after a drop), make sure the streams exist, close on exit.

    No drain: callers stop their loops first, and drain would wait on pull inboxes nobody reads any more.
    """

    async def disconnected() -> None:
        log.warning("nats disconnected")

    async def reconnected() -> None:
        log.info("nats reconnected")

    async def error(e: Exception) -> None:
        log.debug("nats error: %r", e)

    nc = await nats.connect(
        url.split(","), name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=5,
        disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error,
    )
    bus = Bus(nc, Subjects(prefix), replicas)
    try:
        await bus.ensure_streams()
        yield bus
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 5)
