"""SIP digest credentials (RFC 2617 / RFC 8760). Only these hashes are ever stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class DigestHashes:
    ha1: str  # MD5(username:realm:password)
    ha1b: str  # MD5(username@realm:realm:password), for UAs that send user@domain
    ha1_sha256: str  # SHA-256(username:realm:password), RFC 8760


def digest_hashes(username: str, realm: str, password: str) -> DigestHashes:
    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    return DigestHashes(
        ha1=md5(f"{username}:{realm}:{password}"),
        ha1b=md5(f"{username}@{realm}:{realm}:{password}"),
        ha1_sha256=hashlib.sha256(f"{username}:{realm}:{password}".encode()).hexdigest(),
    )


def new_password(length: int = 20) -> str:
    """A random SIP password: letters and digits only, which every phone's keypad UI accepts."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))
