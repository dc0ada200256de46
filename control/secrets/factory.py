"""Opening the configured store: one per process, built from the settings."""

from __future__ import annotations

from control.secrets.backend import Backend
from control.secrets.store import SecretStore
from control.settings import Settings

_default: SecretStore | None = None


def open_store(settings: Settings) -> SecretStore:
    config = settings.secrets
    backend: Backend
    if config.backend == "vault":
        from control.secrets.vault import VaultBackend  # hvac only where Vault is used

        backend = VaultBackend(config.vault)
    else:
        from control.secrets.local import LocalBackend

        backend = LocalBackend(settings.secrets_dir, config.key_file)
    return SecretStore(backend, cache_ttl=config.cache_ttl_sec)


def default_store() -> SecretStore:
    """The running stack's store (settings from ``SIPIO_SETTINGS``), opened on first use:
    what Kamailio and ESL workers call."""
    global _default
    if _default is None:
        _default = open_store(Settings.from_env())
    return _default
