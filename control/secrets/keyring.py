"""The local store's keys and its authenticated encryption (AES-256-GCM).

The key file (JSON, mode 0600) holds the current key and, only while a rotation runs, the
previous one: every sealed value names the key id that sealed it, so a rotation interrupted at
any point leaves every entry readable. The associated data binds a ciphertext to its reference
and version: an entry copied under another reference, or an old version replayed as the
current one, fails authentication instead of decrypting to the wrong secret.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from control.secrets.errors import SecretStoreError
from control.secrets.files import write_private

FORMAT = "sipio-kv-key/1"
NONCE_BYTES = 12  # 96-bit random nonces: far below GCM's collision bound at our write rates


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def aad(ref: str, version: int) -> bytes:
    return f"sipio-kv|{ref}|{version}".encode()


@dataclass
class Keyring:
    current: str
    keys: dict[str, bytes]

    @classmethod
    def fresh(cls) -> Keyring:
        kid = secrets.token_hex(4)
        return cls(kid, {kid: AESGCM.generate_key(bit_length=256)})

    def with_new_key(self) -> Keyring:
        """Phase one of a rotation: a new current key, the old ones still held."""
        new = Keyring.fresh()
        return Keyring(new.current, self.keys | new.keys)

    def only_current(self) -> Keyring:
        return Keyring(self.current, {self.current: self.keys[self.current]})

    def seal(self, value: str, associated: bytes) -> dict[str, str]:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, value.encode(), associated)
        return {"kid": self.current, "nonce": _b64(nonce), "ct": _b64(sealed)}

    def open(self, sealed: dict[str, str], associated: bytes) -> str:
        key = self.keys.get(sealed.get("kid", ""))
        if key is None:
            raise SecretStoreError(
                f"local secret store: an entry is sealed with key {sealed.get('kid')!r}, "
                "which the key file does not hold (was the key file replaced?)"
            )
        try:
            plain = AESGCM(key).decrypt(
                base64.b64decode(sealed["nonce"]), base64.b64decode(sealed["ct"]), associated
            )
        except (InvalidTag, KeyError, ValueError):
            raise SecretStoreError(
                "local secret store: an entry fails authentication (tampered with or moved)"
            ) from None
        return plain.decode()


def load(path: Path) -> Keyring | None:
    """The key file, or None when it does not exist; refused when others may read it."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise SecretStoreError(
            f"local secret store: key file {path} has mode {mode:04o}; run chmod 600 on it"
        )
    try:
        data = json.loads(path.read_bytes())
        if data.get("format") != FORMAT:
            raise ValueError(data.get("format"))
        keys = {kid: base64.b64decode(key) for kid, key in data["keys"].items()}
        return Keyring(str(data["current"]), keys)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SecretStoreError(f"local secret store: key file {path} is not readable") from None


def save(path: Path, ring: Keyring) -> None:
    document = {
        "format": FORMAT,
        "current": ring.current,
        "keys": {kid: _b64(key) for kid, key in ring.keys.items()},
    }
    write_private(path, json.dumps(document).encode())
