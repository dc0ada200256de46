"""`sipio up / status / down` as an operator runs them, against the real components."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from control.demo import sipp
from control.rtpengine import NgClient
from control.settings import Settings
from control.stack import supervisor
from control.stack.ports import in_use
from control.stack.process import group_members
from tests.conftest import free_settings
from tests.harness.postgres import PostgresServer

COMPONENTS = {"redis", "rtpengine", "kamailio", "api", "collector", "reconciler"}


def sipio(binary: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_up_options_ping_down_leaves_no_process(
    tmp_path: Path, sipio_bin: str, backend: str, request: pytest.FixtureRequest
) -> None:
    state = tmp_path / "state"
    args = ["up", "--state-dir", str(state), "--free-ports", "--kamailio-children", "2"]
    if backend == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres")
        args += ["--db-url", server.create_database("stack_cli")]
    up = sipio(sipio_bin, *args)
    assert up.returncode == 0, up.stdout + up.stderr
    records = supervisor.load_records(state)
    try:
        assert {r.name for r in records} == COMPONENTS
        status = sipio(sipio_bin, "status", "--state-dir", str(state), "--json")
        assert status.returncode == 0, status.stdout
        report = json.loads(status.stdout)
        assert report["healthy"] is True
        assert {c["name"] for c in report["components"]} == COMPONENTS
        assert all(c["pid"] and c["healthy"] for c in report["components"])

        settings = Settings.load(state / "settings.json")
        if backend == "postgres":
            assert settings.db_url.startswith("postgresql")
        result = sipp.run(sipp.scenario("options.xml"), f"127.0.0.1:{settings.sip_port}")
        assert result.ok, result.output
        assert "SIP/2.0 200 Keepalive" in result.messages
        with NgClient(settings.ng_host, settings.ng_port) as ng:
            assert ng.ping()

        if backend == "sqlite":
            demo = sipio(sipio_bin, "demo", "--state-dir", str(state))
            assert demo.returncode == 0, demo.stdout + demo.stderr
            assert "CALL   1001 -> 1002 through Kamailio: INVITE -> 407 180 200" in demo.stdout
        kamailio = next(r for r in records if r.name == "kamailio")
        assert len(group_members(kamailio.pid)) > 2  # main + workers + rpc/ctl/timers

        again = sipio(sipio_bin, *args)
        assert again.returncode == 1
        assert "already running" in again.stderr
        assert_no_traceback(again)
    finally:
        down = sipio(sipio_bin, "down", "--state-dir", str(state))
    assert down.returncode == 0, down.stdout + down.stderr
    for record in records:
        assert group_members(record.pid) == [], f"{record.name} left processes behind"
    assert not (state / "stack.json").exists()
    assert not in_use("127.0.0.1", settings.sip_port, udp=True, tcp=True)
    after = sipio(sipio_bin, "status", "--state-dir", str(state))
    assert after.returncode == 1
    assert "down" in after.stdout


def test_failed_component_is_reported_with_its_log_and_the_rest_stopped(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is not an address of this host: Redis and rtpengine start, then
    # Kamailio cannot bind its listener and exits.
    settings = free_settings(tmp_path / "state", sip_host="192.0.2.1")
    with pytest.raises(supervisor.StackError) as err:
        supervisor.up(settings, timeout=20)
    message = str(err.value)
    assert "kamailio exited during start-up" in message
    assert "bind" in message.lower()  # the log tail explains why
    assert "has been stopped" in message
    started = supervisor.load_records(settings.state_dir)
    assert started == []
    for name in ("redis", "rtpengine"):
        log = (settings.log_dir / f"{name}.log").read_text()
        assert log, f"{name} was started before kamailio and logged"
    assert not in_use(settings.redis_host, settings.redis_port, udp=False, tcp=True)


def test_busy_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    settings = free_settings(tmp_path / "state")
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((settings.api_host, settings.api_port))
        holder.listen()
        with pytest.raises(supervisor.StackError, match=f"api_port 127.0.0.1:{settings.api_port}"):
            supervisor.up(settings)
    assert not (settings.log_dir / "redis.log").exists()


def test_bad_arguments_get_a_usage_error_not_a_traceback(tmp_path: Path, sipio_bin: str) -> None:
    bad_range = sipio(sipio_bin, "up", "--state-dir", str(tmp_path), "--rtp-ports", "lots")
    assert bad_range.returncode == 2
    assert "LOW-HIGH" in bad_range.stderr
    assert_no_traceback(bad_range)
    clash = sipio(
        sipio_bin, "up", "--state-dir", str(tmp_path), "--sip-port", "7000", "--api-port", "7000"
    )
    assert clash.returncode == 2
    assert "both use port 7000" in clash.stderr
    assert_no_traceback(clash)


def test_unreachable_postgres_is_a_clear_error_without_the_password(
    tmp_path: Path, sipio_bin: str
) -> None:
    from control.stack.ports import free_port

    url = f"postgresql://sipio:hunter2secret@127.0.0.1:{free_port(udp=False)}/sipio"
    proc = sipio(sipio_bin, "up", "--state-dir", str(tmp_path), "--free-ports", "--db-url", url)
    assert proc.returncode == 1
    assert "config database" in proc.stderr
    assert "hunter2secret" not in proc.stdout + proc.stderr
    assert_no_traceback(proc)
