"""Rate tables for the collector, read from the config DB and cached for a short TTL.

The collector prices calls at their end (``control.core.rating``). Lookups happen per batch,
not per event: the account tree and the rates of the accounts a batch needs are read in at most
two queries, then served from memory for ``ttl`` seconds. When the config DB cannot be read,
the tables last read stay in use; a call whose table was never read stays unrated (None).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from control.core.rating import Rate, RateTable, table_of
from control.core.tenancy import ancestors

if TYPE_CHECKING:
    from sqlalchemy import Engine

# SQLAlchemy and the models are imported on first use: the collector's start-up (and so its
# recovery after a crash) does not wait for them.

log = structlog.get_logger("collector.rates")

RATES_TTL_SEC = 30.0


class RateBook:
    def __init__(self, db_url: str, ttl: float = RATES_TTL_SEC) -> None:
        self.db_url = db_url
        self.ttl = ttl
        self.queries = 0  # config DB round trips, for tests and health
        self._engine: Engine | None = None
        self._parents: dict[str, str | None] = {}
        self._parents_at = float("-inf")
        self._tables: dict[str, RateTable] = {}
        self._tables_at: dict[str, float] = {}

    def tables(self, accounts: Iterable[str]) -> dict[str, RateTable | None]:
        """Each account's effective table (its own or its nearest ancestor's)."""
        wanted = set(accounts)
        if not wanted:
            return {}
        now = time.monotonic()
        try:
            self._refresh(wanted, now)
        except Exception as exc:  # pricing never stalls ingestion: keep what was read last
            log.warning("rates unavailable; retrying next batch", error=type(exc).__name__)
        return {a: table_of(a, self._parents, self._tables) for a in wanted}

    def _refresh(self, wanted: set[str], now: float) -> None:
        from sqlalchemy import select

        from control.db import models as m

        engine = self._connectable()
        if engine is None:
            return
        if now - self._parents_at >= self.ttl or not wanted <= self._parents.keys():
            with engine.connect() as c:
                rows = c.execute(select(m.Account.id, m.Account.parent_id))
                self._parents = {row.id: row.parent_id for row in rows}
            self.queries += 1
            self._parents_at = now
        chains = {a for account in wanted for a in ancestors(account, self._parents)}
        stale = {a for a in chains if now - self._tables_at.get(a, float("-inf")) >= self.ttl}
        if not stale:
            return
        found: dict[str, list[Rate]] = {a: [] for a in stale}
        with engine.connect() as c:
            rows = c.execute(select(m.Rate).where(m.Rate.account_id.in_(sorted(stale))))
            for row in rows:
                found[row.account_id].append(
                    Rate(row.direction, row.prefix, row.per_minute_micros, row.connect_micros,
                         row.min_sec, row.increment_sec)
                )  # fmt: skip
        self.queries += 1
        for account, rates in found.items():
            self._tables[account] = RateTable(rates)
            self._tables_at[account] = now

    def _connectable(self) -> Engine | None:
        """None for an embedded SQLite DB that does not exist (yet): no rates, and no empty
        file created in its place."""
        from sqlalchemy.engine import make_url

        from control.db import make_engine

        if self._engine is None:
            url = make_url(self.db_url)
            embedded = url.drivername.startswith("sqlite") and url.database
            if embedded and not Path(str(url.database)).exists():
                return None
            self._engine = make_engine(self.db_url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
