"""Controller tests run against the session stack's real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from control.settings import Settings


@pytest.fixture(scope="session")
def redis_url(stack: Settings) -> str:
    return stack.redis_url


@pytest.fixture
def redis_sync(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=2.0)
    try:
        yield client
    finally:
        client.close()
