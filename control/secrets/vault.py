"""Vault / OpenBao KV v2 backend (hvac).

A reference ``kv:<area>:<id>:<name>`` lives at ``<mount>/data/<path_prefix>/<area>/<id>/<name>``
as ``{"value": ...}``, so versions and check-and-set are KV v2's own. Requests time out after
``timeout_sec`` and are never retried here: a call path gets an answer or a clear error fast.
The hvac client is created per process (Kamailio and gunicorn fork their workers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import hvac
import hvac.exceptions as hv
import requests

from control.secrets.backend import Secret
from control.secrets.errors import (
    CasMismatch,
    SecretAccessDenied,
    SecretNotFound,
    SecretStoreError,
    SecretStoreUnavailable,
)
from control.secrets.refs import SecretRef
from control.secrets.vault_auth import TokenKeeper
from control.settings import VaultSettings

_DOWN = (
    requests.ConnectionError,
    requests.Timeout,
    hv.VaultDown,
    hv.InternalServerError,
    hv.BadGateway,
    hv.RateLimitExceeded,
)


class VaultBackend:
    kind = "vault"

    def __init__(self, config: VaultSettings) -> None:
        self.config = config
        self.keeper = TokenKeeper(config)
        self._client: Any = None
        self._pid = 0

    @property
    def describe(self) -> str:
        c = self.config
        where = f" namespace {c.namespace}" if c.namespace else ""
        return f"secret store OpenBao/Vault {c.url} (mount {c.mount}{where})"

    @contextmanager
    def _mapped(self, action: str) -> Iterator[None]:
        try:
            yield
        except _DOWN as exc:
            raise SecretStoreUnavailable(
                f"{self.describe} unavailable while {action}: {type(exc).__name__}"
            ) from None
        except (hv.Forbidden, hv.Unauthorized):
            refused = f"{self.describe} refused {action}: permission denied"
            raise SecretAccessDenied(refused) from None
        except hv.InvalidPath:
            raise SecretNotFound(f"{self.describe}: nothing at {action}") from None
        except hv.InvalidRequest as exc:
            if "check-and-set" in str(exc):
                raise CasMismatch(f"{action}: check-and-set version is not current") from None
            raise SecretStoreError(f"{self.describe} rejected {action}: {exc}") from None
        except hv.VaultError as exc:
            failed = f"{self.describe} failed {action}: {type(exc).__name__}"
            raise SecretStoreError(failed) from None

    def _hvac(self) -> Any:
        """The process's client, logged in and with a token renewed when due."""
        if self._client is None or self._pid != os.getpid():
            c = self.config
            client = hvac.Client(
                url=c.url,
                namespace=c.namespace,
                timeout=c.timeout_sec,
                verify=str(c.ca_cert) if c.ca_cert else True,
            )
            with self._mapped("logging in"):
                self.keeper.login(client)
            self._client, self._pid = client, os.getpid()
        elif self.keeper.due():
            with self._mapped("renewing its token"):  # unreachable: still due next time
                try:
                    self.keeper.renew(self._client)
                except (hv.Forbidden, hv.InvalidRequest, hv.InternalServerError):
                    self.keeper.login(self._client)  # past its max TTL or revoked: log in
        return self._client

    def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one KV request; on a refused token log in once more and retry (an expired
        AppRole token, a token file replaced by an agent), then let the refusal stand."""
        client = self._hvac()
        try:
            with self._mapped(action):
                return fn(client, *args, **kwargs)
        except SecretAccessDenied:
            with self._mapped("logging in again"):
                self.keeper.login(client)
            with self._mapped(action):
                return fn(client, *args, **kwargs)

    def _path(self, ref: SecretRef) -> str:
        return f"{self.config.path_prefix.strip('/')}/{ref.path}"

    def read(self, ref: SecretRef, version: int | None = None) -> Secret:
        answer = self._call(
            f"reading {ref}",
            lambda cl: cl.secrets.kv.v2.read_secret_version(
                path=self._path(ref), version=version, mount_point=self.config.mount,
                raise_on_deleted_version=True,
            ),
        )  # fmt: skip
        data = answer["data"]
        return Secret(str(data["data"]["value"]), int(data["metadata"]["version"]))

    def write(self, ref: SecretRef, value: str, cas: int | None = None) -> int:
        answer = self._call(
            f"writing {ref}",
            lambda cl: cl.secrets.kv.v2.create_or_update_secret(
                path=self._path(ref), secret={"value": value}, cas=cas,
                mount_point=self.config.mount,
            ),
        )  # fmt: skip
        return int(answer["data"]["version"])

    def versions(self, ref: SecretRef) -> list[int]:
        answer = self._call(
            f"listing versions of {ref}",
            lambda cl: cl.secrets.kv.v2.read_secret_metadata(
                path=self._path(ref), mount_point=self.config.mount
            ),
        )
        kept = answer["data"]["versions"].items()
        return sorted(int(n) for n, v in kept if not v["destroyed"] and not v["deletion_time"])

    def delete(self, ref: SecretRef) -> None:
        self._call(
            f"deleting {ref}",
            lambda cl: cl.secrets.kv.v2.delete_metadata_and_all_versions(
                path=self._path(ref), mount_point=self.config.mount
            ),
        )

    def ping(self) -> None:
        self._call("checking its token", lambda cl: cl.auth.token.lookup_self())
