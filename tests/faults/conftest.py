"""Each fault test gets servers of its own: a private PostgreSQL and a private NATS that it may stop and start."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra import Infra
from threadlog.devenv import EmbeddedNats, EmbeddedPostgres, free_port


@dataclass
class Servers:
    postgres: EmbeddedPostgres
    nats: EmbeddedNats
    infra: Infra  # new_database() / new_stack() on these servers


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    postgres = EmbeddedPostgres(tmp_path / "postgres")
    nats = EmbeddedNats(tmp_path / "nats", port=free_port())
    try:
        postgres.start()
        nats.start()
        yield Servers(postgres, nats, Infra(postgres.url, nats.url, tmp_path / "stacks"))
    finally:
        nats.stop()
        postgres.stop()
