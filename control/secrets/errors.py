"""What can go wrong with a secret, as exceptions the API turns into problem documents.

Messages name the store and the reference, never a value: they reach operators' logs and API
callers unchanged.
"""

from __future__ import annotations


class SecretStoreError(Exception):
    """The secret store failed in a way the caller cannot fix (corrupt file, bad config)."""


class SecretStoreUnavailable(SecretStoreError):
    """The store did not answer in time (Vault down, network cut): retry later."""


class SecretAccessDenied(SecretStoreError):
    """The store answered but refused: the credential or its policy does not allow this."""


class SecretNotFound(SecretStoreError):
    """No such reference (or no such version of it)."""


class CasMismatch(SecretStoreError):
    """A check-and-set write whose expected version is not the current one."""
