"""Session-wide real servers, a shared service stack, and the official SDK pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from threadlog.stack import Stack

from .infra import Infra, open_infra


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with open_infra() as infra:
        yield infra


@pytest.fixture(scope="session")
def stack(infra: Infra) -> Iterator[Stack]:
    """One running threadlog shared by the API tests (they use ids of their own, so they don't collide)."""
    stack = infra.new_stack("shared")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=stack.api_key, max_retries=0)
