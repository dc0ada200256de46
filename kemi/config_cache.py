"""The routing snapshot of one Kamailio worker, reloaded when the config version moves.

The version is read at most once per ``config_check_sec`` (one tiny query), so a provisioning
change reaches the next call within about a second and steady-state calls run no SQL at all.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine

from control.core.routing.model import Snapshot
from control.db import make_engine
from control.db.snapshot import config_version, load


class ConfigCache:
    def __init__(self, db_url: str, check_every: float) -> None:
        self.db_url = db_url
        self.check_every = check_every
        self._engine: Engine | None = None  # created in the worker, after fork
        self._snapshot: Snapshot | None = None
        self._checked = 0.0
        self.reloads = 0

    def _db(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.db_url)
        return self._engine

    def get(self) -> Snapshot:
        now = time.monotonic()
        if self._snapshot is not None and now - self._checked < self.check_every:
            return self._snapshot
        self._checked = now
        try:
            if self._snapshot is not None:
                with self._db().connect() as connection:
                    if config_version(connection) == self._snapshot.version:
                        return self._snapshot
            self._snapshot = load(self._db())
            self.reloads += 1
        except Exception:
            if self._snapshot is None:
                raise
            # The config DB is unreachable: keep routing on the last good snapshot.
        return self._snapshot
