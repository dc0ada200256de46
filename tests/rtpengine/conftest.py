"""Fixtures: extra rtpengine nodes on free ports, the session stack's Redis, unique key prefixes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from control.rtpengine import NgClient
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
