"""Prefixed, time-ordered ids in OpenAI's style (thread_…, msg_…, run_…) and event ids."""

from __future__ import annotations

import os
import time
import uuid

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, rem = divmod(value, 36)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))


def new_id(prefix: str) -> str:
    """`prefix_` + 9 chars of milliseconds + 16 random chars: sortable by creation, unguessable."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(11), "big")
    return f"{prefix}_{_base36(millis, 9)}{_base36(rand, 16)}"


def new_event_id() -> uuid.UUID:
    """UUIDv7-style: time-ordered, so the unique index on event ids stays append-friendly."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | (0x7 << 76) | ((rand >> 68) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return uuid.UUID(int=value)


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and len(value) > len(prefix) + 1
