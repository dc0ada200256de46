"""Secret references: ``kv:<area>:<id>:<name>`` (SPEC section 22).

A row keeps only the reference; the value lives in the secret store under a path derived from
it (``<area>/<id>/<name>``), so one reference names exactly one versioned secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from control.secrets.errors import SecretNotFound

_PART = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
# The text is never echoed: a value pasted where a reference belongs must not reach a log.
_NOT_A_REF = "not a secret reference (expected kv:<area>:<id>:<name>)"


@dataclass(frozen=True)
class SecretRef:
    area: str  # what kind of object owns it: trunk, vm, conf, qopt, ...
    owner: str  # the owning row's id
    name: str  # which of the owner's secrets: auth_password, pin, webhook_token

    def __post_init__(self) -> None:
        for part in (self.area, self.owner, self.name):
            if not _PART.match(part) or part in (".", ".."):
                raise ValueError(f"bad secret reference part {part!r}")

    def __str__(self) -> str:
        return f"kv:{self.area}:{self.owner}:{self.name}"

    @property
    def path(self) -> str:
        """Where a backend keeps it, below its own prefix."""
        return f"{self.area}/{self.owner}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        parts = text.split(":")
        if len(parts) != 4 or parts[0] != "kv":
            raise SecretNotFound(_NOT_A_REF)
        try:
            return cls(parts[1], parts[2], parts[3])
        except ValueError:
            raise SecretNotFound(_NOT_A_REF) from None


def secret_ref(area: str, owner: str, name: str) -> str:
    return str(SecretRef(area, owner, name))
