"""The rtpengine and Redis configuration files the roles write, loaded by the real daemons.

Each daemon runs here on loopback with the rendered file. Only what cannot hold on this
machine is replaced: addresses and ports in the inventory (loopback, free ports) and, for
Redis, the Debian paths given on the command line after the file.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from control.rtpengine import NgClient, NgError
from control.stack.components import CLEAN_PATH
from control.stack.ports import free_port, free_udp_range
from control.stack.process import ProcessRecord, log_tail, spawn, stop
from tests.deploy.inventory import VAULTED, Inventory


@pytest.fixture
def running(tmp_path: Path) -> Iterator[list[ProcessRecord]]:
    records: list[ProcessRecord] = []
    yield records
    for record in records:
        stop(record, timeout=5.0)


def test_rtpengine_starts_from_the_rendered_configuration(
    tmp_path: Path, running: list[ProcessRecord]
) -> None:
    binary = shutil.which("rtpengine", path=CLEAN_PATH)
    assert binary, "Debian package rtpengine-daemon (make deps)"
    ng_port = free_port(tcp=False)
    rtp = free_udp_range(100)
    inventory = Inventory(
        extra_vars={
            "sipio_deploy_secrets": VAULTED,
            "rtpengine_kernel_forwarding": False,  # no kernel module on a test machine
            "rtpengine_interface": "127.0.0.1",
            "rtpengine_ng_ip": "127.0.0.1",
            "sipio_rtpengine_ng_port": ng_port,
            "sipio_rtp_port_min": rtp.start,
            "sipio_rtp_port_max": rtp.stop - 1,
        }
    )
    conf = tmp_path / "rtpengine.conf"
    conf.write_text(inventory.render("rtpengine", "rtpengine.conf.j2", "sip1"))
    log = tmp_path / "rtpengine.log"
    argv = [binary, f"--config-file={conf}", "--foreground", "--log-stderr",
            f"--pidfile={tmp_path / 'rtpengine.pid'}"]  # fmt: skip
    running.append(spawn("rtpengine-deploy", argv, {"PATH": CLEAN_PATH}, log, tmp_path))
    deadline = time.monotonic() + 15
    with NgClient("127.0.0.1", ng_port, timeout=0.2) as ng:
        while time.monotonic() < deadline:
            try:
                if ng.ping():
                    break
            except NgError:
                pass
        else:
            pytest.fail(f"rtpengine did not answer ng ping:\n{log_tail(log)}")
    assert "Unknown option" not in log.read_text()


def test_redis_runs_the_rendered_configuration(
    tmp_path: Path, running: list[ProcessRecord]
) -> None:
    binary = shutil.which("redis-server", path=CLEAN_PATH)
    assert binary, "Debian package redis-server (make deps)"
    port = free_port(udp=False)
    inventory = Inventory(
        extra_vars={
            "sipio_deploy_secrets": VAULTED,
            "redis_bind_ip": "127.0.0.1",
            "sipio_redis_port": port,
        }
    )
    conf = tmp_path / "redis.conf"
    conf.write_text(inventory.render("redis", "redis.conf.j2", "app1"))
    # Debian's paths and systemd supervision cannot apply here; everything else is the file.
    argv = [binary, str(conf), "--dir", str(tmp_path), "--logfile", "",
            "--pidfile", str(tmp_path / "redis.pid"), "--supervised", "no"]  # fmt: skip
    log = tmp_path / "redis.log"
    running.append(spawn("redis-deploy", argv, {"PATH": CLEAN_PATH}, log, tmp_path))
    client = redis.Redis(port=port, socket_timeout=1.0, socket_connect_timeout=1.0)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            break
        except redis.RedisError:
            if time.monotonic() > deadline:
                pytest.fail(f"redis did not start:\n{log_tail(log)}")
            time.sleep(0.1)
    try:
        config = {
            key: client.config_get(key)[key]
            for key in ("maxmemory-policy", "appendonly", "appendfsync", "protected-mode")
        }
        assert config == {
            "maxmemory-policy": "noeviction",  # admission counters are never evicted
            "appendonly": "yes",
            "appendfsync": "everysec",
            "protected-mode": "yes",
        }
    finally:
        client.close()
