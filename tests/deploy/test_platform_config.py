"""The other roles' files, checked against the code that reads them: settings.json against
control/settings.py, the unit command lines against the `sipio` CLI, Kamailio's configuration
against kemi/cfg.py (the renderer `sipio up` uses), rtpengine/Redis/PostgreSQL against the
addresses the settings point at."""

from __future__ import annotations

import configparser
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from sqlalchemy.engine import make_url

from control.cli import main as sipio_cli
from control.settings import Settings
from kemi.cfg import render, render_dispatcher
from tests.deploy.inventory import ANSIBLE_DIR, ROLES_DIR, VAULTED, Inventory

SIPIO_HOSTS = ["sip1", "app1", "app2"]
RENDERER = ROLES_DIR / "kamailio" / "files" / "render_kamailio_cfg.py"
RESTORE = re.compile(r'^modparam\("uac", "restore_passwd", "[^"]*"\)$', re.MULTILINE)


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return Inventory()


def settings_of(inventory: Inventory, host: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(inventory.render("sipio", "settings.json.j2", host))
    return data


def host_units(inventory: Inventory, host: str) -> list[dict[str, Any]]:
    """The selection sipio's tasks make: units of the host's groups that are enabled."""
    variables = inventory.hostvars[host]
    return [
        u
        for u in variables["sipio_units"]
        if u["group"] in variables["group_names"] and u["enabled"]
    ]


def exec_start(unit_text: str) -> list[str]:
    lines = [line for line in unit_text.splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1
    return shlex.split(lines[0].removeprefix("ExecStart="))


def test_each_controller_places_callbacks_on_its_own_media_node(inventory: Inventory) -> None:
    """app1 pairs with media1, app2 with media2: every FreeSWITCH has a callback dialer, and
    each target's event socket lets that controller in."""
    seen = {}
    for host in ("app1", "app2"):
        settings = Settings.model_validate(settings_of(inventory, host))
        seen[host] = (settings.freeswitch_esl_host, settings.freeswitch_esl_port)
    assert seen == {"app1": ("10.20.0.21", 8021), "app2": ("10.20.0.22", 8021)}
    for host in ("media1", "media2"):
        allowed = inventory.hostvars[host]["freeswitch_esl_clients"]
        assert {"10.20.0.31", "10.20.0.32"} <= set(allowed)


@pytest.mark.parametrize("host", SIPIO_HOSTS)
def test_settings_json_is_valid_for_control_settings(inventory: Inventory, host: str) -> None:
    data = settings_of(inventory, host)
    settings = Settings.model_validate(data)
    private = inventory.hostvars[host]["sipio_private_ip"]
    assert settings.media_nodes == ["sip:10.20.0.21:5080", "sip:10.20.0.22:5080"]
    assert settings.rtpengine_nodes == ["10.20.0.10:22222"]
    assert (settings.redis_host, settings.redis_port) == ("10.20.0.31", 6379)
    assert (settings.esl_host, settings.esl_port) == (private, 8084)
    assert settings.sip_host == "198.51.100.10"  # Kamailio's own, or the bridges' proxy
    assert settings.collector_consumer == f"collector-{host}"
    url = make_url(settings.db_url)
    assert (url.host, url.port, url.database, url.username) == (
        "10.20.0.31",
        5432,
        "sipio",
        "sipio",
    )
    assert url.password == VAULTED["postgres_password"]  # '/', '&' and ':' survive the URL
    # Tenant secrets: the shared OpenBao store; its AppRole secret id stays out of the file.
    assert settings.secrets.backend == "vault"
    assert str(settings.secrets.vault.secret_id_file) == "/etc/sipio/bao-secret-id"
    assert VAULTED["sipio_approle_secret_id"] not in json.dumps(data)


def test_settings_overrides_reach_the_file() -> None:
    inventory = Inventory(
        extra_vars={
            "sipio_deploy_secrets": VAULTED,
            "sipio_settings_overrides": {"digest_algorithm": "SHA-256"},
        }
    )
    assert Settings.model_validate(settings_of(inventory, "app1")).digest_algorithm == "SHA-256"


def _parse_cli(argv: list[str]) -> click.Context:
    """Parse a `sipio <command> ...` line with the real CLI: an unknown flag is an error."""
    parent = click.Context(sipio_cli, info_name="sipio")
    command = sipio_cli.get_command(parent, argv[1])
    assert command is not None, argv[1]
    return command.make_context(argv[1], argv[2:], parent=parent)


@pytest.mark.parametrize("host", SIPIO_HOSTS)
def test_units_run_commands_the_sipio_cli_accepts(inventory: Inventory, host: str) -> None:
    variables = inventory.hostvars[host]
    venv = variables["sipio_venv"]
    for unit in host_units(inventory, host):
        text = inventory.render("sipio", "sipio.service.j2", host, unit=unit)
        assert "User=sipio" in text
        assert f"Environment=SIPIO_SETTINGS={variables['sipio_state_dir']}/settings.json" in text
        argv = exec_start(text)
        if argv[0] == f"{venv}/bin/sipio":
            ctx = _parse_cli(argv)
            assert ctx.params["state_dir"] == Path(variables["sipio_state_dir"])
        else:
            assert argv[:3] == [f"{venv}/bin/python", "-m", "gunicorn"]
            module = argv[-1].split(":")[0]
            assert importlib.util.find_spec(module) is not None, module
            assert argv[argv.index("--bind") + 1] == f"{variables['sipio_private_ip']}:8080"


def test_each_process_lands_on_its_hosts(inventory: Inventory) -> None:
    assert [u["name"] for u in host_units(inventory, "sip1")] == ["sipio-reconciler"]
    assert [u["name"] for u in host_units(inventory, "app1")] == [
        "sipio-api",
        "sipio-collector",
        "sipio-esl-controller",
    ]
    assert [u["name"] for u in host_units(inventory, "app2")] == ["sipio-esl-controller"]


def test_esl_controller_listens_where_the_dialplan_connects(inventory: Inventory) -> None:
    for host in ("app1", "app2"):
        unit = next(u for u in host_units(inventory, host) if u["name"] == "sipio-esl-controller")
        ctx = _parse_cli(exec_start(inventory.render("sipio", "sipio.service.j2", host, unit=unit)))
        target = f"{ctx.params['host']}:{ctx.params['port']}"
        assert target in inventory.hostvars["media1"]["freeswitch_esl_controllers"]
        assert ctx.params["node_id"] == host
        assert ctx.params["proxy"] == "198.51.100.10:5060"  # bridges go back through Kamailio
        assert ctx.params["media_root"] == inventory.hostvars["media1"]["freeswitch_media_root"]


def test_no_reconciler_with_several_kamailio_nodes() -> None:
    """It would release the calls of the Kamailio nodes it does not see."""
    hosts = yaml.safe_load((ANSIBLE_DIR / "inventory/example/hosts.yml").read_text())
    hosts["all"]["children"]["kamailio"]["hosts"]["sip2"] = {
        "sipio_private_ip": "10.20.0.11",
        "kamailio_sip_ip": "198.51.100.11",
    }
    inventory = Inventory(hosts_yaml=hosts)
    assert host_units(inventory, "sip1") == host_units(inventory, "sip2") == []
    acl = inventory.render("freeswitch", "autoload_configs/acl.conf.xml.j2", "media1")
    assert "198.51.100.11/32" in acl and "198.51.100.10/32" in acl


def test_kamailio_cfg_is_the_one_sipio_up_renders(inventory: Inventory, tmp_path: Path) -> None:
    data = settings_of(inventory, "sip1") | {"state_dir": str(tmp_path / "state")}
    (tmp_path / "state").mkdir()
    settings_path = tmp_path / "state" / "settings.json"
    settings_path.write_text(json.dumps(data))
    cfg = tmp_path / "kamailio.cfg"

    def run() -> str:
        result = subprocess.run(
            [sys.executable, str(RENDERER), str(settings_path), str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout.strip()

    assert run() == "cfg settings dispatcher"
    settings = Settings.load(settings_path)
    expected = render(settings)
    assert RESTORE.sub("", cfg.read_text()) == RESTORE.sub("", expected)
    assert "listen=udp:198.51.100.10:5060" in expected
    assert settings.dispatcher_list.read_text() == render_dispatcher(settings)
    assert "1 sip:10.20.0.21:5080 0 0" in settings.dispatcher_list.read_text()
    secret = RESTORE.search(cfg.read_text())
    assert secret is not None
    assert run() == "unchanged"  # the uac restore secret is kept: idempotent
    # New media nodes: only dispatcher.list changes (reloaded in place, no restart).
    data["media_nodes"] = [*data["media_nodes"], "sip:10.20.0.23:5080"]
    settings_path.write_text(json.dumps(data))
    assert run() == "dispatcher"
    data["rtpengine_nodes"] = ["10.20.0.12:22222"]
    settings_path.write_text(json.dumps(data))
    assert run() == "settings"  # read by the KEMI workers at start: Kamailio restarts
    assert secret.group(0) in cfg.read_text()
    assert oct(cfg.stat().st_mode & 0o777) == "0o640"


def test_kamailio_unit_runs_like_the_stack(inventory: Inventory) -> None:
    text = inventory.render("kamailio", "sipio.conf.j2", "sip1")
    argv = [
        a
        for line in text.splitlines()
        if line.startswith("ExecStart=/")
        for a in shlex.split(line[10:])
    ]
    assert argv[0] == "/usr/sbin/kamailio"
    assert {"-DD", "-E"} <= set(argv)  # foreground, log to stderr: as control/stack runs it
    assert argv[argv.index("-f") + 1] == inventory.hostvars["sip1"]["kamailio_cfg"]
    settings = Settings.model_validate(settings_of(inventory, "sip1"))
    assert argv[argv.index("-Y") + 1] == str(settings.run_dir)
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert f"SIPIO_SITE_PACKAGES=/opt/sipio/venv/lib/{python}/site-packages" in text
    assert "User=sipio" in text and "PYTHONHOME=/usr" in text


def test_rtpengine_listens_where_the_settings_point(inventory: Inventory) -> None:
    parser = configparser.ConfigParser()
    parser.read_string(inventory.render("rtpengine", "rtpengine.conf.j2", "sip1"))
    conf = parser["rtpengine"]
    settings = Settings.model_validate(settings_of(inventory, "app1"))
    assert conf["listen-ng"] == settings.rtpengine_nodes[0]
    assert conf["table"] == "0"  # kernel forwarding in production
    assert (int(conf["port-min"]), int(conf["port-max"])) == (
        settings.rtp_port_min,
        settings.rtp_port_max,
    )
    assert conf["interface"] == "198.51.100.10"
    userspace = Inventory(
        extra_vars={"sipio_deploy_secrets": VAULTED, "rtpengine_kernel_forwarding": False}
    )
    parser.read_string(userspace.render("rtpengine", "rtpengine.conf.j2", "sip1"))
    assert parser["rtpengine"]["table"] == "-1"


def test_redis_keeps_live_state(inventory: Inventory) -> None:
    lines = dict(
        line.split(" ", 1)
        for line in inventory.render("redis", "redis.conf.j2", "app1").splitlines()
        if line and not line.startswith("#")
    )
    settings = Settings.model_validate(settings_of(inventory, "app2"))
    assert settings.redis_host in lines["bind"].split()
    assert int(lines["port"]) == settings.redis_port
    assert lines["appendonly"] == "yes"
    assert lines["maxmemory-policy"] == "noeviction"  # counters are never evicted


def test_postgresql_admits_the_sipio_hosts_only(inventory: Inventory) -> None:
    text = inventory.render("postgresql", "pg_hba.conf.j2", "app1")
    rules = [line.split() for line in text.splitlines() if line.strip()]
    assert rules == [
        ["host", "sipio", "sipio", f"{address}/32", "scram-sha-256"]
        for address in ("10.20.0.10", "10.20.0.31", "10.20.0.32")
    ]
    conf = inventory.render("postgresql", "sipio.conf.j2", "app1")
    assert "listen_addresses = 'localhost,10.20.0.31'" in conf


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd's own check of every unit (unknown keys, bad values, a missing executable),
    with the venv pointed at this checkout's so ExecStart exists here."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian package systemd)"
    venv = str(Path(sys.executable).parent.parent)
    inventory = Inventory(extra_vars={"sipio_deploy_secrets": VAULTED, "sipio_venv": venv})
    paths = []
    for host in ("sip1", "app1"):
        for unit in host_units(inventory, host):
            path = tmp_path / f"{unit['name']}.service"
            path.write_text(inventory.render("sipio", "sipio.service.j2", host, unit=unit))
            paths.append(str(path))
    assert len(paths) == 4
    result = subprocess.run(
        [analyze, "verify", "--man=no", *paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_kamailio_drop_in_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Debian's kamailio.service with the drop-in appended: systemd merges repeated sections
    the way it merges a drop-in, so this is the unit systemd would run."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian package systemd)"
    base = Path("/lib/systemd/system/kamailio.service")
    assert base.exists(), "Debian package kamailio (make deps)"
    venv = str(Path(sys.executable).parent.parent)
    inventory = Inventory(extra_vars={"sipio_deploy_secrets": VAULTED, "sipio_venv": venv})
    unit = tmp_path / "kamailio.service"
    unit.write_text(base.read_text() + "\n" + inventory.render("kamailio", "sipio.conf.j2", "sip1"))
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
