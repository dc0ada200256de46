"""Pieces every benchmark uses: one stack component started on its own, and timing loops."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from control.settings import Settings
from control.stack.components import Component, RedisServer
from control.stack.ports import free_port
from control.stack.process import ProcessRecord, spawn, stop
from control.stack.supervisor import StackError, wait_healthy


def start_one(
    component: Component, extra: Sequence[str] = (), timeout: float = 10
) -> ProcessRecord:
    """Start one component the way `sipio up` does (prepare, spawn, wait until healthy)."""
    component.prepare()
    record = spawn(
        component.name, [*component.argv(), *extra], component.env(), component.log_path,
        component.settings.state_dir,
    )  # fmt: skip
    try:
        wait_healthy(component, record, timeout)
    except StackError:
        stop(record)
        raise
    return record


@contextmanager
def own_redis() -> Iterator[str]:
    """A redis-server of the benchmark's own on a free loopback port; yields its URL."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(state_dir=Path(tmp) / "stack", redis_port=free_port(udp=False))
        record = start_one(RedisServer(settings))
        try:
            yield settings.redis_url
        finally:
            stop(record)


def per_second(count: int, action: Callable[[int], object]) -> tuple[float, float]:
    """(operations per second, microseconds each) for ``count`` sequential runs, after a
    warm-up of up to 200 runs (sockets, caches, server threads)."""
    for i in range(min(200, count)):
        action(-1 - i)
    started = time.perf_counter()
    for i in range(count):
        action(i)
    wall = time.perf_counter() - started
    return count / wall, wall / count * 1e6
