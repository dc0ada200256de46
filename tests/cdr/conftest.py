"""Collector fixtures: a unique stream on the session stack's Redis and a lake in a tmp dir."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
import redis

from control.cdr.collector import Collector
from control.settings import SETTINGS_ENV, Settings


@pytest.fixture
def lake_settings(tmp_path: Path, stack: Settings) -> Settings:
    tag = uuid.uuid4().hex[:10]
    return Settings(
        state_dir=tmp_path / "state",
        redis_port=stack.redis_port,
        event_streams=[f"test:events:{tag}"],
        collector_consumer=f"test-{tag}",
        collector_batch_size=500,
        collector_batch_sec=0.2,
        collector_lock_ttl_sec=5,
    )


@pytest.fixture
def r(lake_settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(lake_settings.redis_url)
    yield client
    for stream in lake_settings.event_streams:
        client.delete(stream, f"sipio:collector:lock:{stream}")
    client.close()


class Running:
    """A collector in a thread of the test process, stopped on exit."""

    def __init__(self, settings: Settings) -> None:
        self.collector = Collector(settings)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.collector.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Collector:
        self.thread.start()
        return self.collector

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def drained(client: redis.Redis, settings: Settings) -> bool:
    for stream in settings.event_streams:
        if not client.exists(stream):
            return False
        groups = client.xinfo_groups(stream)
        group = next((g for g in groups if g["name"].decode() == settings.collector_group), None)
        if group is None or group["pending"] or group["lag"] != 0:
            return False
    return True


def wait_drained(client: redis.Redis, settings: Settings, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not drained(client, settings):
        assert time.monotonic() < deadline, "collector did not drain the stream in time"
        time.sleep(0.05)


def spawn_collector(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """The collector as `sipio up` runs it: its own process, settings from settings.json."""
    env = {**os.environ, SETTINGS_ENV: str(settings.settings_path), "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "control.cdr"], env=env, stdout=out, stderr=out
        )
