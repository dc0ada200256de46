"""Alembic environment: runs on the connection handed over by control.db.migrate."""

from alembic import context

from control.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `sipio db upgrade` (control.db.migrate)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs batch ALTER TABLE
)
with context.begin_transaction():
    context.run_migrations()
