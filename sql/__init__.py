"""Config database schema: Alembic migrations (``sql/migrations``), applied by ``sipio up``
and ``sipio db upgrade``."""
