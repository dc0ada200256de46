"""The contract every secret backend fulfils (local encrypted file, Vault/OpenBao KV v2).

Semantics follow KV v2 so that both backends behave alike: every write makes a new version,
``cas=0`` writes only when the secret does not exist yet, ``cas=n`` only when ``n`` is the
current version, and ``delete`` removes every version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from control.secrets.refs import SecretRef


@dataclass(frozen=True)
class Secret:
    value: str
    version: int

    def __repr__(self) -> str:  # a Secret printed in a traceback shows no value
        return f"Secret(version={self.version}, value=***)"


class Backend(Protocol):
    kind: str  # "local" or "vault": what API errors may tell a tenant

    @property
    def describe(self) -> str:
        """Which store this is, for error messages: ``vault http://… mount secret``."""
        ...

    def read(self, ref: SecretRef, version: int | None = None) -> Secret:
        """The current (or the given) version; SecretNotFound when absent."""
        ...

    def write(self, ref: SecretRef, value: str, cas: int | None = None) -> int:
        """Store a new version and return its number; CasMismatch when ``cas`` is stale."""
        ...

    def versions(self, ref: SecretRef) -> list[int]:
        """Version numbers still kept, oldest first; SecretNotFound when absent."""
        ...

    def delete(self, ref: SecretRef) -> None:
        """Remove every version; deleting what is absent is not an error."""
        ...

    def ping(self) -> None:
        """Raise SecretStoreUnavailable (or another SecretStoreError) unless usable."""
        ...
