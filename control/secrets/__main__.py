"""Operator commands for the secret store: ``python -m control.secrets check|rotate-key``.

``check`` tells whether the configured store answers (exit 1 and the reason when not);
``rotate-key`` re-encrypts the local store under a new key.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from control import logs
from control.secrets.errors import SecretStoreError
from control.secrets.factory import open_store
from control.secrets.local import LocalBackend
from control.settings import SETTINGS_FILE, Settings


def _settings(state_dir: Path) -> Settings:
    path = state_dir / SETTINGS_FILE
    return Settings.load(path) if path.exists() else Settings(state_dir=state_dir)


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("./.sipio"),
    show_default=True,
    envvar="SIPIO_STATE_DIR",
    help="The stack's state directory (its settings.json says which store).",
)


@click.group()
def main() -> None:
    """Secret store maintenance."""
    logs.configure(json_lines=False)


@main.command()
@state_dir_option
def check(state_dir: Path) -> None:
    """Ask the configured store whether it is usable."""
    store = open_store(_settings(state_dir))
    try:
        store.ping()
    except SecretStoreError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"ok: {store.describe}")


@main.command("rotate-key")
@state_dir_option
def rotate_key(state_dir: Path) -> None:
    """New key for the local store; every kept version is re-encrypted under it."""
    store = open_store(_settings(state_dir))
    if not isinstance(store.backend, LocalBackend):
        click.echo("error: rotate-key is for the local store; Vault manages its own keys", err=True)
        sys.exit(1)
    try:
        kid, count = store.backend.rotate_key()
    except SecretStoreError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"re-encrypted {count} values under key {kid}")


if __name__ == "__main__":
    main()
