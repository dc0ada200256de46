"""The embedded default backend: an encrypted file in the state directory.

``kv.json`` holds, per reference, its kept versions, each sealed by ``keyring`` (AES-256-GCM);
``kv.key`` holds the key. Processes share the files (gunicorn workers, Kamailio workers) under
an ``flock`` on ``kv.lock``: shared for reads, exclusive for writes and key rotation. Every
write replaces the file atomically, so a crash never leaves a half-written store.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from control.secrets import keyring
from control.secrets.backend import Secret
from control.secrets.errors import CasMismatch, SecretNotFound, SecretStoreError
from control.secrets.files import private_dir, write_private
from control.secrets.refs import SecretRef

KEEP_VERSIONS = 10  # as Vault's KV v2 default: older versions are dropped on write
Entries = dict[str, dict[str, Any]]


class LocalBackend:
    kind = "local"

    def __init__(self, directory: Path, key_file: Path | None = None) -> None:
        self.directory = directory
        self.data_path = directory / "kv.json"
        self.key_path = key_file or directory / "kv.key"
        self.lock_path = directory / "kv.lock"

    @property
    def describe(self) -> str:
        return f"local secret store {self.directory}"

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        try:
            private_dir(self.directory)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SecretStoreError(f"{self.describe}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _entries(self) -> Entries:
        try:
            raw = self.data_path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            entries: Entries = json.loads(raw)["entries"]
        except (ValueError, KeyError, TypeError):
            raise SecretStoreError(f"{self.describe}: {self.data_path.name} is corrupt") from None
        return entries

    def _save(self, entries: Entries) -> None:
        write_private(self.data_path, json.dumps({"format": 1, "entries": entries}).encode())

    def _ring(self, entries: Entries, *, create: bool) -> keyring.Keyring:
        ring = keyring.load(self.key_path)
        if ring is not None:
            return ring
        if entries or not create:
            raise SecretStoreError(
                f"{self.describe}: key file {self.key_path} is missing; restore it from backup"
            )
        ring = keyring.Keyring.fresh()
        keyring.save(self.key_path, ring)
        return ring

    def read(self, ref: SecretRef, version: int | None = None) -> Secret:
        with self._locked(exclusive=False):
            entries = self._entries()
            entry = entries.get(str(ref))
            number = version or (entry["current"] if entry else 0)
            sealed = entry["versions"].get(str(number)) if entry else None
            if sealed is None:
                raise SecretNotFound(f"{ref} (version {version or 'current'}) not in the store")
            value = self._ring(entries, create=False).open(sealed, keyring.aad(str(ref), number))
            return Secret(value, number)

    def write(self, ref: SecretRef, value: str, cas: int | None = None) -> int:
        with self._locked(exclusive=True):
            entries = self._entries()
            ring = self._ring(entries, create=True)
            entry = entries.setdefault(str(ref), {"current": 0, "versions": {}})
            if cas is not None and cas != entry["current"]:
                raise CasMismatch(f"{ref}: expected version {cas}, current is {entry['current']}")
            number = int(entry["current"]) + 1
            entry["versions"][str(number)] = ring.seal(value, keyring.aad(str(ref), number))
            entry["current"] = number
            for old in sorted(map(int, entry["versions"]))[:-KEEP_VERSIONS]:
                del entry["versions"][str(old)]
            self._save(entries)
            return number

    def versions(self, ref: SecretRef) -> list[int]:
        with self._locked(exclusive=False):
            entry = self._entries().get(str(ref))
        if entry is None:
            raise SecretNotFound(f"{ref} not in the store")
        return sorted(map(int, entry["versions"]))

    def delete(self, ref: SecretRef) -> None:
        with self._locked(exclusive=True):
            entries = self._entries()
            if entries.pop(str(ref), None) is not None:
                self._save(entries)

    def ping(self) -> None:
        with self._locked(exclusive=False):
            entries = self._entries()
            if entries:
                self._ring(entries, create=False)

    def refs(self) -> list[str]:
        with self._locked(exclusive=False):
            return sorted(self._entries())

    def rotate_key(self) -> tuple[str, int]:
        """Re-encrypt every kept version under a new key; returns (key id, values re-sealed).

        Three atomic steps, each leaving a readable store: add the new key as current, re-seal
        every entry, drop the old keys.
        """
        with self._locked(exclusive=True):
            entries = self._entries()
            ring = self._ring(entries, create=True).with_new_key()
            keyring.save(self.key_path, ring)
            count = 0
            for ref, entry in entries.items():
                for number, sealed in entry["versions"].items():
                    associated = keyring.aad(ref, int(number))
                    entry["versions"][number] = ring.seal(ring.open(sealed, associated), associated)
                    count += 1
            self._save(entries)
            ring = ring.only_current()
            keyring.save(self.key_path, ring)
            return ring.current, count
