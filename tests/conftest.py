"""Fixtures that start real components on free loopback ports, once per test session."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from control.settings import Settings
from control.stack import supervisor
from control.stack.ports import free_port, free_stack_ports
from tests.harness.postgres import PostgresServer
from tests.harness.redis_server import cluster, own_redis  # noqa: F401  (shared fixtures)


def free_settings(state_dir: Path, **overrides: object) -> Settings:
    """Settings for a stack on free ports under ``state_dir``."""
    values: dict[str, object] = {
        "state_dir": state_dir,
        **free_stack_ports(),
        "kamailio_children": 2,
        "api_workers": 1,
        "config_check_sec": 0.2,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A whole stack (Redis, rtpengine, Kamailio + KEMI, API) shared by the session."""
    media_port = free_port()
    settings = free_settings(
        tmp_path_factory.mktemp("stack"),
        media_nodes=[f"sip:127.0.0.1:{media_port}"],
        media_ping_interval=0,  # the SIPp media node answers INVITEs only
    )
    supervisor.up(settings)
    try:
        yield settings
    finally:
        supervisor.down(settings.state_dir)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sipio_bin() -> str:
    """The console script of the venv running the tests."""
    import sys

    candidate = Path(sys.executable).parent / "sipio"
    found = str(candidate) if candidate.exists() else shutil.which("sipio")
    assert found, "sipio console script not installed (pip install -e .)"
    return found


@pytest.fixture
def redis_client(stack: Settings) -> Iterator[redis.Redis]:
    """A client of the session stack's Redis."""
    client = redis.Redis.from_url(stack.redis_url, socket_timeout=2.0)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test only; its keys are removed afterwards."""
    value = f"test:{uuid.uuid4().hex[:12]}"
    yield value
    keys = list(redis_client.scan_iter(match=f"{value}:*", count=1000))
    if keys:
        redis_client.delete(*keys)
