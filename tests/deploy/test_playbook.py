"""ansible-core itself on the playbooks: syntax of site.yml, and the freeswitch role's
templating run for real against this machine (render.yml, local connection, a temp dir)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.inventory import ANSIBLE_DIR, VAULTED, Inventory
from tests.deploy.test_freeswitch_config import MEDIA_NODES, rendered_by_ansible_equals_plain_render
from tests.deploy.test_platform_config import host_units

PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def ansible(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert PLAYBOOK.exists(), "ansible-core is a dev dependency (pyproject.toml)"
    env = {
        "PATH": f"{PLAYBOOK.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
    }
    return subprocess.run(
        [str(PLAYBOOK), *args],
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def secrets_file(tmp_path: Path, secrets: dict[str, str]) -> str:
    """Extra vars in a 0600 file, as an operator passes vaulted values (never on argv)."""
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"sipio_deploy_secrets": secrets}))
    path.chmod(0o600)
    return f"@{path}"


def test_site_and_render_playbooks_pass_the_syntax_check(tmp_path: Path) -> None:
    result = ansible(tmp_path, "--syntax-check", "site.yml", "render.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "playbook: site.yml" in result.stdout


def test_ansible_renders_the_files_the_tests_check(tmp_path: Path) -> None:
    out = tmp_path / "render"
    result = ansible(
        tmp_path, "render.yml", "-e", f"render_dir={out}", "-e", secrets_file(tmp_path, VAULTED)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert VAULTED["freeswitch_esl_password"] not in result.stdout  # no_log on the secret files
    rendered_by_ansible_equals_plain_render(out, Inventory())
    for host in MEDIA_NODES:
        conf = out / host / "freeswitch"
        assert stat.S_IMODE((conf / "fs_cli.conf").stat().st_mode) == 0o600
        socket_conf = conf / "autoload_configs" / "event_socket.conf.xml"
        assert stat.S_IMODE(socket_conf.stat().st_mode) == 0o640
    plain = Inventory()
    for host in ("sip1", "app1", "app2"):
        root = out / host / "sipio"
        settings = root / "var/lib/sipio/settings.json"
        assert json.loads(settings.read_text()) == json.loads(
            plain.render("sipio", "settings.json.j2", host)
        )  # and Ansible's validate step loaded it with control/settings.py
        assert stat.S_IMODE(settings.stat().st_mode) == 0o600
        units = {p.name: p.read_text() for p in (root / "etc/systemd/system").iterdir()}
        expected = {u["name"] + ".service": u for u in host_units(plain, host)}
        assert units.keys() == expected.keys()
        for name, text in units.items():
            want = plain.render("sipio", "sipio.service.j2", host, unit=expected[name])
            assert text.splitlines()[1:] == want.splitlines()[1:], name  # past the header
        secret_id = root / "etc/sipio/bao-secret-id"
        assert secret_id.read_text() == VAULTED["sipio_approle_secret_id"] + "\n"
        assert stat.S_IMODE(secret_id.stat().st_mode) == 0o440
    assert VAULTED["postgres_password"] not in result.stdout
    assert VAULTED["sipio_approle_secret_id"] not in result.stdout
    # A second run changes nothing.
    again = ansible(
        tmp_path, "render.yml", "-e", f"render_dir={out}", "-e", secrets_file(tmp_path, VAULTED)
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("changed=0") == 5, again.stdout


@pytest.mark.parametrize("password", ["cluecon", "has space in it 123456"])
def test_a_weak_or_malformed_event_socket_password_stops_the_play(
    tmp_path: Path, password: str
) -> None:
    out = tmp_path / "render"
    secrets = {**VAULTED, "freeswitch_esl_password": password}
    result = ansible(
        tmp_path,
        "render.yml",
        "--limit",
        "media1",
        "-e",
        f"render_dir={out}",
        "-e",
        secrets_file(tmp_path, secrets),
    )
    assert result.returncode != 0
    assert "freeswitch_esl_password must be set from Vault/OpenBao" in result.stdout
    assert password not in result.stdout + result.stderr
    assert not (out / "media1" / "freeswitch" / "autoload_configs").exists()
