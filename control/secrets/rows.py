"""Secrets follow the rows that reference them, through SQLAlchemy session events.

- A value is *staged* while a request validates the row: the ``*_secret_ref`` column gets a
  placeholder, because a new row has no id yet and its reference ``kv:<area>:<id>:<name>``
  needs one. At flush the value is written to the store and the placeholder replaced.
- References of deleted rows, and of rows the database deletes with them (``ON DELETE
  CASCADE`` foreign keys to the deleted row, e.g. an account's trunks), are deleted from the
  store after the commit: a rolled-back delete keeps its secrets.
- Values written for rows that are then rolled back are deleted again.

Store failures at flush propagate (the request fails, nothing is committed); failures while
cleaning up after a commit or rollback are logged with the reference only.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from control.secrets.errors import SecretStoreError
from control.secrets.refs import secret_ref
from control.secrets.store import SecretStore

PENDING = "pending:"
_STAGED, _CREATED, _DOOMED = "sipio.secrets.staged", "sipio.secrets.created", "sipio.secrets.doomed"
log = structlog.get_logger("sipio.secrets")


@dataclass(frozen=True)
class SecretColumn:
    model: type[Any]
    column: str  # the row's ``*_secret_ref``
    area: str
    field: str  # the write-only API field; also the reference's name

    def ref_for(self, row_id: str) -> str:
        return secret_ref(self.area, row_id, self.field)


class RowSecrets:
    def __init__(self, store: SecretStore, columns: list[SecretColumn]) -> None:
        self.store = store
        self.columns = {c.model: c for c in columns}

    def stage(self, session: Session, value: str) -> str:
        """The placeholder to put in the reference column until the flush writes ``value``."""
        self.store.redactor.add(value)
        marker = PENDING + secrets.token_hex(8)
        session.info.setdefault(_STAGED, {})[marker] = value
        return marker

    def doom(self, session: Session, ref: str) -> None:
        """Delete ``ref`` from the store once the transaction commits."""
        session.info.setdefault(_DOOMED, set()).add(ref)

    def created(self, session: Session, ref: str) -> None:
        """``ref`` was written for this transaction only: delete it if it rolls back."""
        session.info.setdefault(_CREATED, set()).add(ref)

    def install(self, sessions: sessionmaker[Session]) -> None:
        event.listen(sessions, "before_flush", self._before_flush)
        event.listen(sessions, "after_commit", self._after_commit)
        event.listen(sessions, "after_soft_rollback", self._after_rollback)

    def _before_flush(self, session: Session, _context: Any, _instances: Any) -> None:
        staged: dict[str, str] = session.info.get(_STAGED, {})
        for row in [*session.new, *session.dirty] if staged else []:
            spec = self.columns.get(type(row))
            marker = getattr(row, spec.column) if spec else None
            if spec is None or marker not in staged:
                continue
            ref = spec.ref_for(row.id)
            self.store.put(ref, staged.pop(marker))
            setattr(row, spec.column, ref)
            if row in session.new:
                self.created(session, ref)
        with session.no_autoflush:
            for row in session.deleted:
                for ref in self._refs_going_with(session, row):
                    self.doom(session, ref)

    def _refs_going_with(self, session: Session, row: Any) -> set[str]:
        found: set[str] = set()
        own = self.columns.get(type(row))
        if own is not None and getattr(row, own.column):
            found.add(getattr(row, own.column))
        table = inspect(type(row)).local_table
        key = inspect(row).identity
        for spec in self.columns.values():
            for fk in spec.model.__table__.foreign_keys:
                if fk.ondelete != "CASCADE" or fk.column.table is not table or key is None:
                    continue
                column = getattr(spec.model, spec.column)
                query = select(column).where(fk.parent == key[0], column.is_not(None))
                found.update(session.scalars(query))
        return {ref for ref in found if not ref.startswith(PENDING)}

    def _after_commit(self, session: Session) -> None:
        session.info.pop(_CREATED, None)
        for ref in session.info.pop(_DOOMED, set()):
            self._delete_quietly(ref, "its row was deleted")

    def _after_rollback(self, session: Session, _previous: Any) -> None:
        session.info.pop(_DOOMED, None)
        session.info.pop(_STAGED, None)
        for ref in session.info.pop(_CREATED, set()):
            self._delete_quietly(ref, "its row was rolled back")

    def _delete_quietly(self, ref: str, why: str) -> None:
        try:
            self.store.delete(ref)
        except SecretStoreError as exc:  # an orphan in the store: never a leak, worth a note
            log.warning("secret not deleted", ref=ref, why=why, error=str(exc))
