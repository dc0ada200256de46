"""Schema migrations on the embedded SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from control.db import make_engine
from control.db.engine import normalise_url, redacted
from control.db.migrate import MigrationError, current_revision, head_revision, upgrade
from tests.harness.postgres import PostgresServer


def config_version(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return str(
                connection.execute(
                    text("SELECT value FROM config_meta WHERE key = 'config_version'")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_sqlite_upgrade_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert current_revision(url) is None
    upgrade(url)
    upgrade(url)
    assert current_revision(url) == head_revision()
    assert config_version(url) == "1"


def test_postgres_upgrade(postgres: PostgresServer) -> None:
    url = postgres.create_database("migrations")
    upgrade(url)
    assert current_revision(url) == head_revision()
    assert config_version(url) == "1"


def test_operator_urls_use_psycopg3_and_never_show_passwords() -> None:
    assert normalise_url("postgresql://a:pw@h/db").startswith("postgresql+psycopg://")
    assert "pw" not in redacted("postgresql://a:pw@h/db")


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(MigrationError) as err:
        upgrade("postgresql://sipio:topsecret@127.0.0.1:1/sipio")
    assert "topsecret" not in str(err.value)
    assert "127.0.0.1" in str(err.value)
    assert "\n" not in str(err.value)


def test_models_match_the_migrations(tmp_path: Path) -> None:
    """The Alembic history and the SQLAlchemy models describe the same schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from control.db.models import Base

    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
