"""The rtpengine and Redis configuration files the roles write, loaded by the real daemons.

Each daemon runs here on loopback with the rendered file. Only what cannot hold on this
machine is replaced: addresses and ports in the inventory (loopback, free ports) and, for
Redis, the Debian paths given on the command line after the file.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from control.rtpengine import NgClient, NgError
from control.stack.components import CLEAN_PATH
from control.stack.ports import free_port, free_udp_range
from control.stack.process import ProcessRecord, log_tail, spawn, stop
from tests.deploy.inventory import ROLES_DIR, VAULTED, Inventory
from tests.harness.postgres import PostgresServer


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


@pytest.mark.postgres
def test_postgresql_setup_creates_the_role_and_database_once(postgres: PostgresServer) -> None:
    """The SQL the postgresql role feeds psql, against a real server: a role with the vaulted
    password (stored as SCRAM), its database, and nothing created twice."""
    tasks = yaml.safe_load((ROLES_DIR / "postgresql/tasks/main.yml").read_text())
    task = next(t for t in tasks if t["name"] == "sipio role and database")
    suffix = secrets.token_hex(4)
    password = "it's-vaulted/&" + suffix
    inventory = Inventory(
        extra_vars={
            "sipio_deploy_secrets": {**VAULTED, "postgres_password": password},
            "sipio_db_user": f"sipio_app_{suffix}",
            "sipio_db_name": f"sipio_db_{suffix}",
        }
    )
    script = inventory.render_text("postgresql", task["ansible.builtin.command"]["stdin"], "app1")
    argv = task["ansible.builtin.command"]["argv"]
    server = [str(postgres.bindir / "psql"), "-h", "127.0.0.1", "-p", str(postgres.port)]
    psql = [*server, "-U", "sipio", "-d", "postgres", *argv[1:]]

    def run() -> str:
        result = subprocess.run(
            psql, input=script, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert password not in result.stdout + result.stderr
        return result.stdout

    assert "role created" in run()  # the task reports a change
    assert "role exists" in run()  # and none the second time; the password is re-applied
    query = (
        "SELECT rolcanlogin, left(rolpassword, 14), "
        f"(SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'sipio_db_{suffix}') "
        f"FROM pg_authid WHERE rolname = 'sipio_app_{suffix}'"
    )
    check = subprocess.run(
        [*server, "-U", "sipio", "-d", "postgres", "-X", "-t", "-A", "-c", query],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert check.stdout.strip() == f"t|SCRAM-SHA-256$|sipio_app_{suffix}"
