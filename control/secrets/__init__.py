"""Secrets behind ``*_secret_ref`` columns: references in rows, values in a secret store.

Consumers call ``default_store().resolve(ref)`` (or ``.matches(ref, entered_pin)``); the API
writes through ``SecretStore.put``. See docs/secrets.md.
"""

from control.secrets.backend import Backend, Secret
from control.secrets.errors import (
    CasMismatch,
    SecretAccessDenied,
    SecretNotFound,
    SecretStoreError,
    SecretStoreUnavailable,
)
from control.secrets.factory import default_store, open_store
from control.secrets.redact import MASK, REDACTOR, RedactingFilter, Redactor, install_structlog
from control.secrets.refs import SecretRef, secret_ref
from control.secrets.store import SecretStore

__all__ = [
    "MASK",
    "REDACTOR",
    "Backend",
    "CasMismatch",
    "RedactingFilter",
    "Redactor",
    "Secret",
    "SecretAccessDenied",
    "SecretNotFound",
    "SecretRef",
    "SecretStore",
    "SecretStoreError",
    "SecretStoreUnavailable",
    "default_store",
    "install_structlog",
    "open_store",
    "secret_ref",
]
