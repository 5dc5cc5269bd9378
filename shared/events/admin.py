"""Events about access itself: reads by admin keys are part of the record."""

from __future__ import annotations

from .base import Event


class AdminRead(Event, frozen=True, tag="admin.read"):
    """An admin key read across projects. One stream per read: audit entries never contend."""

    key_id: str
    method: str
    path: str
    query: str
    at: int
