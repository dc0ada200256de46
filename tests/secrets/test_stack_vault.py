"""`sipio up` with OpenBao: the settings reach every component that resolves secrets (the API
writes the trunk password to OpenBao, Kamailio reads it when the carrier challenges), while the
token, given to `sipio up` in its environment only, is on no command line and in no file."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.demo import sipp
from control.settings import Settings
from control.stack import supervisor
from control.stack.ports import free_port
from tests.harness.provision import Provisioner
from tests.routing.test_calls import proxy, registered, settle
from tests.secrets.bao import BaoServer
from tests.secrets.leaks import haystacks, leaks
from tests.secrets.test_trunk_auth import CARRIER_IP, SCENARIOS

PASSWORD = "Vault-Held-Trunk-Pw-5"


def sipio_up(
    sipio_bin: str, state: Path, bao: BaoServer, token: str | None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIPIO_", "VAULT_"))}
    if token is not None:
        env["SIPIO_VAULT_TOKEN"] = token
    argv = [sipio_bin, "up", "--state-dir", str(state), "--free-ports",
            "--kamailio-children", "2", "--vault-url", bao.url, "--vault-mount", "secret"]  # fmt: skip
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def vault_stack(
    bao: BaoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, str]]:
    import sys

    sipio_bin = str(Path(sys.executable).parent / "sipio")
    state = tmp_path_factory.mktemp("vault-stack")
    # A token of its own (not the root one), handed over the way an operator would.
    token = bao.root().auth.token.create(policies=["root"], ttl="1h")["auth"]["client_token"]
    started = sipio_up(sipio_bin, state, bao, token)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        settings = Settings.load(state / "settings.json")
        settings = settings.model_copy(update={"config_check_sec": 0.2})
        yield settings, token
    finally:
        supervisor.down(state)


def test_the_token_is_on_no_command_line_and_in_no_file(
    vault_stack: tuple[Settings, str], bao: BaoServer
) -> None:
    stack, token = vault_stack
    settings_file = stack.state_dir / "settings.json"
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600
    saved = Settings.load(settings_file)
    assert saved.secrets.backend == "vault"
    assert saved.secrets.vault.url == bao.url and saved.secrets.vault.mount == "secret"

    command_lines = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True,
                                   text=True, check=True).stdout  # fmt: skip
    assert str(stack.state_dir) in command_lines  # the stack's own processes are listed
    assert token not in command_lines
    assert leaks({"vault token": token}, haystacks(stack)) == []


def test_components_resolve_through_vault(
    vault_stack: tuple[Settings, str], bao: BaoServer
) -> None:
    stack, token = vault_stack
    prov = Provisioner(stack)
    tenant = prov.tenant("Vaultco", "vaultco.example.com")
    port = free_port(CARRIER_IP)
    trunk = tenant.make("sip_trunks", {
        "name": "carrier", "proxy": f"{CARRIER_IP}:{port}", "direction": "outbound",
        "auth_username": "vaultco-trunk", "auth_password": PASSWORD})  # fmt: skip
    # The API wrote it to OpenBao, under the reference the row keeps.
    _, area, owner, name = trunk["auth_secret_ref"].split(":")
    stored = bao.root().secrets.kv.v2.read_secret_version(
        path=f"sipio/{area}/{owner}/{name}", mount_point="secret", raise_on_deleted_version=True
    )
    assert stored["data"]["data"]["value"] == PASSWORD

    user = tenant.user_with_devices("7001")
    settle(stack)
    carrier = sipp.start(SCENARIOS / "carrier_digest.xml", None, local_ip=CARRIER_IP,
                         local_port=port,
                         keys={"username": "vaultco-trunk", "password": PASSWORD})  # fmt: skip
    result = registered(stack, tenant, user).call(proxy(stack), "+15550107001")
    received = carrier.wait()
    assert result.ok, result.output
    assert received.ok, received.output  # Kamailio answered with the password from OpenBao

    places = haystacks(stack)
    assert leaks({"vault token": token, "trunk password": PASSWORD}, places) == []


def test_up_without_a_token_says_so_and_starts_nothing(
    bao: BaoServer, tmp_path: Path, sipio_bin: str
) -> None:
    refused = sipio_up(sipio_bin, tmp_path / "state", bao, token=None)
    assert refused.returncode == 1
    assert "secret store" in refused.stderr and "SIPIO_VAULT_TOKEN" in refused.stderr
    assert not (tmp_path / "state" / "stack.json").exists()
