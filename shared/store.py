"""The event store: append with an expected stream version, read a stream, read the global order gap-safely.

Nothing above this module imports asyncpg's exceptions: driver errors become ours here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

import asyncpg
import msgspec

from shared.errors import DuplicateEventError, UnavailableError, VersionConflictError
from shared.events import AnyEvent, Codec, Event, event_type
from shared.upcast import EventLoader


class Cursor(msgspec.Struct, frozen=True, order=True):
    """A place in the global order: (writing transaction id, position). Compare as a tuple."""

    txid: int = 0
    position: int = 0


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    event: Event
    event_id: uuid.UUID


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """A stored event: the envelope from the row plus the payload bytes exactly as written."""

    position: int
    txid: int
    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    tenant_id: str
    payload: bytes
    recorded_at: datetime
    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None
    redacted: bool = False  # erased content: the payload is written in the current shape of its type

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.txid, self.position)


class AppendResult(msgspec.Struct, frozen=True):
    version: int  # the stream's version after the append
    cursor: Cursor  # the last appended event's place in the global order
    positions: list[int]


# One statement, one round trip: the version guard, the insert of every event and their positions.
# A racing writer that drew the same versions hits the (stream_id, stream_version) unique index.
_APPEND = """
INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, tenant_id, payload,
                    correlation_id, causation_id)
SELECT $1, $2 + e.ord, e.id, e.typ, e.sv, $3, e.payload, $4, $5
FROM unnest($6::uuid[], $7::text[], $8::int2[], $9::bytea[]) WITH ORDINALITY AS e(id, typ, sv, payload, ord)
WHERE (SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1) = $2
RETURNING position, txid, stream_version
"""

_COLUMNS = """position, txid, stream_id, stream_version, event_id, event_type, schema_version, tenant_id,
              payload, recorded_at, correlation_id, causation_id, redacted"""

_READ_STREAM = f"""
SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version
"""

# Only rows of transactions older than every still-open one: a late-committing row can never be
# skipped, because nothing at or beyond the oldest open transaction is handed out yet.
_READ_ALL = f"""
SELECT {_COLUMNS} FROM events
WHERE (txid, position) > ($1, $2)
  AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
ORDER BY txid, position
LIMIT $3
"""

_READ_ALL_UNTIL = f"""
SELECT {_COLUMNS} FROM events
WHERE (txid, position) > ($1, $2) AND (txid, position) <= ($4, $5)
  AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
ORDER BY txid, position
LIMIT $3
"""

_EXISTING = """
SELECT event_id, stream_id, event_type, payload, position, txid, stream_version
FROM events WHERE event_id = ANY($1::uuid[]) ORDER BY position
"""


def _recorded(row: asyncpg.Record) -> Recorded:
    return Recorded(
        position=row[0], txid=row[1], stream_id=row[2], stream_version=row[3], event_id=row[4],
        event_type=row[5], schema_version=row[6], tenant_id=row[7], payload=row[8], recorded_at=row[9],
        correlation_id=row[10], causation_id=row[11], redacted=row[12],
    )


class EventStore:
    def __init__(self, pool: asyncpg.Pool, codec: Codec | None = None) -> None:
        self._pool = pool
        self.codec = codec or Codec()
        self.loader = EventLoader(self.codec)

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        tenant_id: str,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
    ) -> AppendResult:
        """Append `events` if the stream is at `expected_version` (0: the stream must not exist yet).

        Retrying with the same event ids and content is a no-op that returns the first result.
        """
        ids = [e.event_id for e in events]
        payloads = [self.codec.encode(e.event) for e in events]
        types = [event_type(e.event) for e in events]
        versions = [type(e.event).schema_version for e in events]
        try:
            rows = await self._pool.fetch(
                _APPEND, stream_id, expected_version, tenant_id, correlation_id, causation_id,
                ids, types, versions, payloads,
            )
        except asyncpg.UniqueViolationError as e:
            if e.constraint_name != "events_event_id_key":
                raise VersionConflictError(stream_id, expected_version) from None
            rows = []
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as e:
            raise UnavailableError(f"the event log is unavailable: {e.__class__.__name__}") from None
        if rows:
            last = rows[-1]
            return AppendResult(last[2], Cursor(last[1], last[0]), [r[0] for r in rows])
        return await self._replayed_or_conflict(stream_id, expected_version, ids, types, payloads)

    async def _replayed_or_conflict(
        self, stream_id: str, expected: int, ids: list[uuid.UUID], types: list[str], payloads: list[bytes]
    ) -> AppendResult:
        existing = await self._pool.fetch(_EXISTING, ids)
        if not existing:
            raise VersionConflictError(stream_id, expected)
        by_id = {row[0]: row for row in existing}
        for event_id, typ, payload in zip(ids, types, payloads, strict=True):
            row = by_id.get(event_id)
            if row is None or row[1] != stream_id or row[2] != typ or bytes(row[3]) != payload:
                raise DuplicateEventError(
                    f"event id {event_id} was already used for different content", code="duplicate_event_id"
                )
        last = existing[-1]
        return AppendResult(last[6], Cursor(last[5], last[4]), [r[4] for r in existing])

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[Recorded]:
        rows = await self._pool.fetch(_READ_STREAM, stream_id, after_version)
        return [_recorded(r) for r in rows]

    async def read_all(self, after: Cursor, limit: int = 500, until: Cursor | None = None) -> list[Recorded]:
        """Events after `after` (and up to `until`) in the global order, never past a transaction that might
        still commit."""
        if until is None:
            rows = await self._pool.fetch(_READ_ALL, after.txid, after.position, limit)
        else:
            rows = await self._pool.fetch(_READ_ALL_UNTIL, after.txid, after.position, limit, until.txid,
                                          until.position)
        return [_recorded(r) for r in rows]

    def load(self, record: Recorded) -> AnyEvent:
        if record.redacted:
            return self.codec.decode(record.payload)
        return self.loader.load(record.event_type, record.schema_version, record.payload)

    async def redact_stream(self, stream_id: str, before_version: int,
                            redactor: Callable[[AnyEvent], AnyEvent]) -> int:
        """Rewrite the payloads of a stream's events before `before_version` without their content.

        The only rewrite the log allows (the immutability trigger is lifted for this transaction only).
        Returns how many events were redacted.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL threadlog.allow_rewrite = 'on'")
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version < $2 AND NOT redacted"
                " ORDER BY stream_version FOR UPDATE", stream_id, before_version)
            updates = [(r[0], self.codec.encode(redactor(self.load(_recorded(r))))) for r in rows]
            await conn.executemany("UPDATE events SET payload = $2, redacted = true WHERE position = $1", updates)
        return len(updates)
