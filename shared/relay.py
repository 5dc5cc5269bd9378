"""The outbox relay: publishes every committed event, in log order, to JetStream.

The events table is the outbox: an event and its "to be published" mark are the same row, committed by the
same statement. The relay follows the log from its checkpoint, keeps publishes in flight with the event id
as Nats-Msg-Id (JetStream drops a re-send after a crash), and moves its checkpoint once a batch is acked.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import msgspec
import nats.errors

from shared.bus import Bus, Outgoing
from shared.checkpoints import lead, load_checkpoint, nap, save_checkpoint
from shared.db import DATABASE_ERRORS
from shared.store import EventStore, Recorded

log = logging.getLogger(__name__)

RELAY_LOCK_ID = 7_245_002
CHECKPOINT = "relay"
BATCH = 1000

_ENVELOPE = msgspec.msgpack.Encoder()
_ENVELOPE_DECODER = msgspec.msgpack.Decoder(Recorded)


def encode_envelope(record: Recorded) -> bytes:
    return _ENVELOPE.encode(record)


def decode_envelope(data: bytes) -> Recorded:
    return _ENVELOPE_DECODER.decode(data)


class Relay:
    def __init__(self, database_url: str, pool: asyncpg.Pool, store: EventStore, bus: Bus) -> None:
        self._database_url = database_url
        self._pool = pool
        self._store = store
        self._bus = bus
        self.wake = asyncio.Event()
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Lead or wait to lead; relay while leading; start over after any loss of database or bus."""
        await self._bus.on_nudge(self._bus.subjects.appended, self._on_nudge)
        while not stop.is_set():
            try:
                async with lead(self._database_url, RELAY_LOCK_ID) as leadership:
                    log.info("relay: leading")
                    cursor = await load_checkpoint(self._pool, CHECKPOINT)
                    nudged, tries = True, [0]
                    while leadership.held and not stop.is_set():
                        self.wake.clear()  # clear first: a nudge landing mid-read is kept
                        batch = await self._store.read_all(cursor, BATCH)
                        if batch:
                            await self._bus.publish_all([self._outgoing(r) for r in batch])
                            new = batch[-1].cursor
                            if not await save_checkpoint(self._pool, CHECKPOINT, cursor, new):
                                break  # someone else moved it: re-read under a fresh lead
                            cursor = new
                            self.published += len(batch)
                        if len(batch) < BATCH:
                            nudged = await nap(self.wake, len(batch), nudged, idle_s=0.5, tries=tries)
            except (*DATABASE_ERRORS, asyncpg.PostgresError, nats.errors.Error) as e:
                log.warning("relay: %s: %s; retrying", e.__class__.__name__, e)
                await asyncio.sleep(0.5)

    def _outgoing(self, record: Recorded) -> Outgoing:
        subject = self._bus.subjects.event(record.stream_id, record.event_type)
        return Outgoing(subject, encode_envelope(record), str(record.event_id))

    async def _on_nudge(self, _msg: object) -> None:
        self.wake.set()
