"""Bring a config database to the newest schema with Alembic (scripts live in ``sql/``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

import sql
from control.db.engine import make_engine, redacted

MIGRATIONS = Path(sql.__file__).parent / "migrations"


class MigrationError(Exception):
    pass


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(db_url: str, revision: str = "head") -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        reason = str(orig) if orig is not None else str(exc)
        first_line = reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
        raise MigrationError(f"cannot migrate {redacted(db_url)}: {first_line}") from None
    finally:
        engine.dispose()


def current_revision(db_url: str) -> str | None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()
