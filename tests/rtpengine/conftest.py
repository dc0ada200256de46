"""Fixtures: extra rtpengine nodes on free ports, the session stack's Redis, unique key prefixes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from control.rtpengine import NgClient
from control.settings import Settings
from tests.harness.rtpengine import RtpengineNode


@pytest.fixture(scope="package")
def node_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtpengineNode]:
    """A node with two named interfaces (loopback .1 and .2) for ``direction``."""
    node = RtpengineNode(
        "a", tmp_path_factory.mktemp("rtpe"), ("internal/127.0.0.1", "external/127.0.0.2")
    )
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="package")
def node_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtpengineNode]:
    node = RtpengineNode("b", tmp_path_factory.mktemp("rtpe"))
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def ng(node_a: RtpengineNode) -> Iterator[NgClient]:
    with NgClient(node_a.host, node_a.ng_port, timeout=1.0) as client:
        yield client


@pytest.fixture
def redis_client(stack: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url, socket_timeout=1.0)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test only; its keys are removed afterwards."""
    value = f"test:{uuid.uuid4().hex[:12]}"
    yield value
    keys = list(redis_client.scan_iter(match=f"{value}:*"))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    """Two seconds of 8 kHz 16-bit mono silence: long enough to stop while it plays."""
    import wave

    path = tmp_path / "prompt.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 16000)
    return path
