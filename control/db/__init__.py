"""Config database adapter (SQLAlchemy 2): SQLite embedded by default, PostgreSQL by URL."""

from control.db.engine import make_engine

__all__ = ["make_engine"]
