"""Redis servers of a test's own (never the session stack's): to stop and restart, or to run
as a one-node Redis Cluster owning every slot (which refuses cross-slot commands)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from control.stack.components import CLEAN_PATH
from control.stack.ports import free_port, in_use
from control.stack.process import ProcessRecord, spawn, stop


class OwnRedis:
    """A redis-server of the test's own (never the session stack's), to stop and restart, or
    to run as a one-node Redis Cluster owning every slot (which refuses cross-slot scripts)."""

    def __init__(self, directory: Path, cluster: bool = False) -> None:
        self.directory = directory
        self.cluster = cluster
        self.port = free_port(udp=False)
        while cluster and (
            self.port > 55535 or in_use("127.0.0.1", self.port + 10000, udp=False, tcp=True)
        ):
            self.port = free_port(udp=False)  # the cluster bus listens on port + 10000
        self.record: ProcessRecord | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server", path=CLEAN_PATH)
        assert binary, "redis-server missing: install the Debian package redis-server"
        argv = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            "",
        ]
        if self.cluster:
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        self.record = spawn(
            "redis-own", argv, {"PATH": CLEAN_PATH}, self.directory / "redis.log", self.directory
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "own redis-server did not start"
                time.sleep(0.02)
        if self.cluster:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                assert time.monotonic() < deadline, "own cluster did not come up"
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.record is not None:
            assert stop(self.record)
            self.record = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    server = OwnRedis(tmp_path, cluster=True)
    server.start()
    client = RedisCluster(host="127.0.0.1", port=server.port)
    try:
        yield client
    finally:
        client.close()
        server.stop()
