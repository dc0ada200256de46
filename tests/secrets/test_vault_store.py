"""The Vault/OpenBao backend against a real OpenBao dev server: KV v2 versions and
check-and-set, namespaces, AppRole with a read-only policy, token renewal."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from control.secrets import (
    CasMismatch,
    SecretAccessDenied,
    SecretNotFound,
    SecretStore,
    secret_ref,
)
from control.secrets.vault import VaultBackend
from tests.secrets.bao import BaoServer

REF = secret_ref("trunk", "tr_01vaulttest", "auth_password")


def store_for(bao: BaoServer, **settings: object) -> SecretStore:
    return SecretStore(VaultBackend(bao.settings(**settings)), cache_ttl=0)


def test_write_read_versions_and_check_and_set(bao: BaoServer) -> None:
    store = store_for(bao)
    assert store.put(REF, "first-Passw0rd", cas=0) == 1
    with pytest.raises(CasMismatch):
        store.put(REF, "again", cas=0)  # cas=0: only when absent
    assert store.put(REF, "second-Passw0rd", cas=1) == 2
    with pytest.raises(CasMismatch):
        store.put(REF, "stale", cas=1)
    assert store.put(REF, "third-Passw0rd") == 3  # no cas: unconditional
    assert store.resolve(REF) == "third-Passw0rd"
    assert store.read(REF, version=1).value == "first-Passw0rd"
    assert store.versions(REF) == [1, 2, 3]
    # The value sits where the reference says, as KV v2 data.
    raw = bao.root().secrets.kv.v2.read_secret_version(
        path="sipio/trunk/tr_01vaulttest/auth_password", mount_point="secret",
        raise_on_deleted_version=True,
    )  # fmt: skip
    assert raw["data"]["data"] == {"value": "third-Passw0rd"}
    store.delete(REF)
    with pytest.raises(SecretNotFound):
        store.resolve(REF)
    store.delete(REF)  # deleting what is gone is fine


def test_token_from_an_environment_variable_and_a_namespace(
    bao: BaoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bao.root().adapter.post("/v1/sys/namespaces/tenant-a", json={})
    ns = bao.root(namespace="tenant-a")
    ns.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    monkeypatch.setenv("SIPIO_TEST_BAO_TOKEN", bao.root_token)
    store = store_for(bao, token_file=None, token_env="SIPIO_TEST_BAO_TOKEN",
                      namespace="tenant-a", mount="kv", path_prefix="platform/sipio")  # fmt: skip
    ref = secret_ref("vm", "vm_01ns", "pin")
    store.put(ref, "482913")
    assert store.resolve(ref) == "482913"
    found = ns.secrets.kv.v2.read_secret_version(
        path="platform/sipio/vm/vm_01ns/pin", mount_point="kv", raise_on_deleted_version=True
    )
    assert found["data"]["data"]["value"] == "482913"
    assert "tenant-a" in store.describe


def test_missing_token_is_a_clear_error(bao: BaoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIPIO_VAULT_TOKEN", raising=False)
    store = store_for(bao, token_file=None)
    with pytest.raises(SecretAccessDenied, match="SIPIO_VAULT_TOKEN"):
        store.resolve(REF)


def _approle(bao: BaoServer, tmp_path: Path, *, token_ttl: str, token_max_ttl: str) -> Path:
    """A role whose tokens may only read sipio's secrets; returns its secret_id file."""
    root = bao.root()
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy(
        "sipio-read",
        'path "secret/data/sipio/*" { capabilities = ["read"] }\n'
        'path "secret/metadata/sipio/*" { capabilities = ["read"] }\n',
    )
    root.auth.approle.create_or_update_approle(
        "sipio-reader", token_policies=["sipio-read"], token_ttl=token_ttl,
        token_max_ttl=token_max_ttl,
    )  # fmt: skip
    secret_id = root.auth.approle.generate_secret_id("sipio-reader")["data"]["secret_id"]
    path = tmp_path / "secret-id"
    path.touch(mode=0o600)
    path.write_text(secret_id)
    return path


def _role_id(bao: BaoServer) -> str:
    return str(bao.root().auth.approle.read_role_id("sipio-reader")["data"]["role_id"])


def test_approle_with_a_read_only_policy_reads_but_cannot_write(
    bao: BaoServer, tmp_path: Path
) -> None:
    secret_id_file = _approle(bao, tmp_path, token_ttl="60s", token_max_ttl="120s")
    ref = secret_ref("vm", "vm_01approle", "pin")
    store_for(bao).put(ref, "739104")
    reader = store_for(bao, auth="approle", token_file=None, role_id=_role_id(bao),
                       secret_id_file=secret_id_file)  # fmt: skip
    assert reader.resolve(ref) == "739104"
    assert reader.versions(ref) == [1]
    with pytest.raises(SecretAccessDenied, match="permission denied"):
        reader.put(ref, "000000")
    with pytest.raises(SecretAccessDenied):
        reader.delete(ref)
    assert store_for(bao).resolve(ref) == "739104"


def test_approle_logs_in_again_when_its_token_cannot_be_renewed(
    bao: BaoServer, tmp_path: Path
) -> None:
    secret_id_file = _approle(bao, tmp_path, token_ttl="1s", token_max_ttl="2s")
    ref = secret_ref("conf", "conf_01relogin", "pin")
    store_for(bao).put(ref, "551177")
    backend = VaultBackend(bao.settings(auth="approle", token_file=None, role_id=_role_id(bao),
                                        secret_id_file=secret_id_file))  # fmt: skip
    reader = SecretStore(backend, cache_ttl=0)
    assert reader.resolve(ref) == "551177"
    first = backend._client.token
    deadline = time.monotonic() + 3.0  # past the max TTL of the first token
    while time.monotonic() < deadline:
        assert reader.resolve(ref) == "551177"
        time.sleep(0.4)
    assert backend._client.token != first


def test_a_renewable_token_is_renewed_before_it_expires(bao: BaoServer, tmp_path: Path) -> None:
    bao.root().sys.create_or_update_policy(
        "sipio-rw", 'path "secret/*" { capabilities = ["create","read","update","delete"] }'
    )
    token = bao.root().auth.token.create(policies=["sipio-rw"], ttl="2s", renewable=True,
                                         explicit_max_ttl="60s")["auth"]["client_token"]  # fmt: skip
    path = tmp_path / "token"
    path.touch(mode=0o600)
    path.write_text(token)
    store = store_for(bao, token_file=path)
    ref = secret_ref("qopt", "qopt_01renew", "webhook_token")
    store.put(ref, "renewed-token-value")
    started = time.monotonic()
    while time.monotonic() - started < 4.5:  # more than twice the token's TTL
        assert store.resolve(ref) == "renewed-token-value"
        time.sleep(0.5)
    # Still alive (the lookup of an expired token is refused) and renewed, not merely lucky.
    # The TTL is in whole seconds: a live token can read 0, so the renewal time is the proof.
    info = bao.root().auth.token.lookup(token)["data"]
    assert info["ttl"] >= 0 and info["last_renewal_time"] > info["creation_time"], info
