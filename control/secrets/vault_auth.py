"""Logging in to Vault/OpenBao and keeping the token alive.

Token auth reads the token from a file (re-read when it stops working, so a Vault Agent sink
or an operator can replace it) or from an environment variable. AppRole logs in with a role id
and a secret id read the same way. Renewal happens on use once half the token's TTL is gone;
a token that can no longer be renewed is replaced by logging in again (AppRole) or re-reading
its source (token).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from control.secrets.errors import SecretAccessDenied
from control.settings import VaultSettings


def _read(file: Path | None, env: str | None, what: str) -> str:
    if file is not None:
        try:
            value = file.read_text().strip()
        except OSError as exc:
            unreadable = f"cannot read the Vault {what} file {file}: {exc.strerror}"
            raise SecretAccessDenied(unreadable) from None
        if value:
            return value
    value = os.environ.get(env, "").strip() if env else ""
    if not value:
        where = f"file {file}" if file else f"environment variable {env}"
        raise SecretAccessDenied(f"no Vault {what}: set the {where}")
    return value


class TokenKeeper:
    """Holds a client's token and knows when to renew it (monotonic clock)."""

    def __init__(self, config: VaultSettings) -> None:
        self.config = config
        self.renew_at: float | None = None  # None: nothing to renew (root or periodic-less)

    def login(self, client: Any) -> None:
        c = self.config
        if c.auth == "approle":
            role_id = c.role_id or _read(c.role_id_file, None, "role_id")
            secret_id = _read(c.secret_id_file, c.secret_id_env, "secret_id")
            answer = client.auth.approle.login(
                role_id=role_id, secret_id=secret_id, mount_point=c.approle_mount, use_token=True
            )
            auth = answer["auth"]
            self._schedule(int(auth["lease_duration"]), bool(auth["renewable"]))
            return
        client.token = _read(c.token_file, c.token_env, "token")
        data = client.auth.token.lookup_self()["data"]
        self._schedule(int(data.get("ttl") or 0), bool(data.get("renewable")))

    def renew(self, client: Any) -> None:
        auth = client.auth.token.renew_self()["auth"]
        self._schedule(int(auth["lease_duration"]), bool(auth["renewable"]))

    def due(self) -> bool:
        return self.renew_at is not None and time.monotonic() >= self.renew_at

    def _schedule(self, ttl: int, renewable: bool) -> None:
        self.renew_at = time.monotonic() + ttl / 2 if renewable and ttl > 0 else None
