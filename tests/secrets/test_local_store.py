"""The embedded default: an encrypted file store with a 0600 key file and key rotation."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from control.secrets import (
    CasMismatch,
    SecretNotFound,
    SecretRef,
    SecretStoreError,
    default_store,
    keyring,
    open_store,
    secret_ref,
)
from control.secrets import factory as secrets_factory
from control.secrets.local import KEEP_VERSIONS, LocalBackend
from control.settings import SETTINGS_ENV, Settings

PIN = secret_ref("vm", "vm_01local", "pin")
PASSWORD = secret_ref("trunk", "tr_01local", "auth_password")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_default_backend_is_the_local_store_in_the_state_dir(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    store = open_store(settings)
    assert isinstance(store.backend, LocalBackend)
    assert store.backend.directory == tmp_path / "secrets"
    store.put(PIN, "2468")
    assert mode(tmp_path / "secrets") == 0o700
    for name in ("kv.key", "kv.json", "kv.lock"):
        assert mode(tmp_path / "secrets" / name) == 0o600, name


def test_a_vault_token_is_refused_in_settings(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="never goes into settings"):
        Settings.model_validate({"state_dir": tmp_path,
                                 "secrets": {"backend": "vault", "vault": {"token": "s.x"}}})  # fmt: skip
    settings = Settings.model_validate(
        {"state_dir": tmp_path, "secrets": {"backend": "vault", "vault": {"auth": "approle",
         "role_id": "r", "secret_id_file": str(tmp_path / "sid")}}})  # fmt: skip
    assert Settings.load(settings.save()) == settings


def test_write_read_versions_check_and_set_delete(tmp_path: Path) -> None:
    store = open_store(Settings(state_dir=tmp_path))
    with pytest.raises(SecretNotFound):
        store.resolve(PIN)
    assert store.put(PIN, "1111", cas=0) == 1
    with pytest.raises(CasMismatch):
        store.put(PIN, "2222", cas=0)
    assert store.put(PIN, "2222", cas=1) == 2
    assert store.resolve(PIN) == "2222"
    assert store.read(PIN, version=1).value == "1111"
    for n in range(KEEP_VERSIONS + 2):
        store.put(PIN, f"{3000 + n}")
    versions = store.versions(PIN)
    assert len(versions) == KEEP_VERSIONS and versions[-1] == KEEP_VERSIONS + 4
    with pytest.raises(SecretNotFound):
        store.read(PIN, version=1)  # dropped, as KV v2 drops beyond max_versions
    store.delete(PIN)
    store.delete(PIN)
    with pytest.raises(SecretNotFound):
        store.versions(PIN)


def test_the_file_holds_no_plaintext_and_detects_tampering(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "s")
    store = open_store(Settings(state_dir=tmp_path, secrets={"local_dir": tmp_path / "s"}))
    store.put(PASSWORD, "Very-Plain-Passw0rd")
    store.put(PIN, "97531")
    raw = backend.data_path.read_text()
    assert "Very-Plain-Passw0rd" not in raw and "97531" not in raw
    document = json.loads(raw)
    # An entry copied under another reference does not decrypt there.
    document["entries"][PIN] = document["entries"][PASSWORD]
    backend.data_path.write_text(json.dumps(document))
    with pytest.raises(SecretStoreError, match="fails authentication"):
        backend.read(SecretRef.parse(PIN))
    # A flipped ciphertext byte neither.
    sealed = document["entries"][PASSWORD]["versions"]["1"]
    sealed["ct"] = ("A" if sealed["ct"][0] != "A" else "B") + sealed["ct"][1:]
    backend.data_path.write_text(json.dumps(document))
    with pytest.raises(SecretStoreError, match="fails authentication"):
        backend.read(SecretRef.parse(PASSWORD))


def test_key_rotation_re_encrypts_every_entry(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    values = {secret_ref("vm", f"vm_{i:02d}", "pin"): f"{1000 + i}" for i in range(20)}
    for ref, value in values.items():
        backend.write(SecretRef.parse(ref), value)
        backend.write(SecretRef.parse(ref), value + "9")  # two versions each
    before = json.loads(backend.data_path.read_text())["entries"]
    old_key = json.loads(backend.key_path.read_text())

    kid, count = backend.rotate_key()

    assert count == 40
    key = json.loads(backend.key_path.read_text())
    assert key["current"] == kid != old_key["current"]
    assert list(key["keys"]) == [kid]  # the old key is gone from the key file
    assert mode(backend.key_path) == 0o600
    after = json.loads(backend.data_path.read_text())["entries"]
    for ref, value in values.items():
        for number in ("1", "2"):
            assert after[ref]["versions"][number]["kid"] == kid
            assert after[ref]["versions"][number]["ct"] != before[ref]["versions"][number]["ct"]
        assert backend.read(SecretRef.parse(ref)).value == value + "9"
        assert backend.read(SecretRef.parse(ref), 1).value == value


def test_a_rotation_interrupted_after_its_first_step_leaves_everything_readable(
    tmp_path: Path,
) -> None:
    backend = LocalBackend(tmp_path)
    backend.write(SecretRef.parse(PIN), "1212")
    ring = keyring.load(backend.key_path)
    assert ring is not None
    keyring.save(backend.key_path, ring.with_new_key())  # step 1 done, then a crash
    assert backend.read(SecretRef.parse(PIN)).value == "1212"
    backend.write(SecretRef.parse(PASSWORD), "Written-Between-1")
    _, count = backend.rotate_key()  # running it again finishes the job
    assert count == 2
    assert backend.read(SecretRef.parse(PIN)).value == "1212"
    assert backend.read(SecretRef.parse(PASSWORD)).value == "Written-Between-1"


def test_rotation_from_the_command_line(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    settings.save()
    open_store(settings).put(PIN, "8642")
    done = subprocess.run([sys.executable, "-m", "control.secrets", "rotate-key",
                           "--state-dir", str(tmp_path)], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "re-encrypted 1 values" in done.stdout
    checked = subprocess.run([sys.executable, "-m", "control.secrets", "check",
                              "--state-dir", str(tmp_path)], capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0 and "local secret store" in checked.stdout
    assert open_store(settings).resolve(PIN) == "8642"


def test_a_readable_or_missing_key_file_is_refused(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.write(SecretRef.parse(PIN), "1357")
    os.chmod(backend.key_path, 0o644)
    with pytest.raises(SecretStoreError, match="chmod 600"):
        backend.read(SecretRef.parse(PIN))
    os.chmod(backend.key_path, 0o600)
    backend.key_path.unlink()
    with pytest.raises(SecretStoreError, match=r"key file .* is missing"):
        backend.write(SecretRef.parse(PIN), "2468")  # never a new key that cannot read the rest


def _writer(directory: str, worker: int) -> None:
    backend = LocalBackend(Path(directory))
    for i in range(15):
        backend.write(
            SecretRef.parse(secret_ref("conf", f"conf_{worker}_{i}", "pin")), f"{worker}{i:04d}"
        )


def test_processes_share_the_store_without_losing_writes(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(str(tmp_path), w)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    backend = LocalBackend(tmp_path)
    assert len(backend.refs()) == 60
    assert backend.read(SecretRef.parse(secret_ref("conf", "conf_3_14", "pin"))).value == "30014"


def test_default_store_follows_the_stack_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(state_dir=tmp_path)
    monkeypatch.setenv(SETTINGS_ENV, str(settings.save()))
    monkeypatch.setattr(secrets_factory, "_default", None)
    open_store(settings).put(PASSWORD, "From-The-Stack-1")
    assert default_store().resolve(PASSWORD) == "From-The-Stack-1"
    assert default_store() is default_store()
    assert default_store().matches(PASSWORD, "From-The-Stack-1")
    assert not default_store().matches(PASSWORD, "From-The-Stack-2")
