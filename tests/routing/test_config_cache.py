"""The per-worker routing snapshot: no SQL per call, reloads when the version moves."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import event

from control.api.bootstrap import bootstrap
from control.db.migrate import upgrade
from kemi.config_cache import ConfigCache


def counting(cache: ConfigCache) -> list[str]:
    statements: list[str] = []
    event.listen(cache._db(), "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: statements.append(statement))  # fmt: skip
    return statements


def test_steady_state_calls_run_no_sql_and_changes_arrive_within_the_period(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    cache = ConfigCache(url, check_every=0.3)
    statements = counting(cache)
    first = cache.get()
    loaded = len(statements)
    assert loaded > 5  # one pass over the config tables
    for _ in range(1000):
        assert cache.get() is first
    assert len(statements) == loaded  # a thousand lookups, not one query

    time.sleep(0.35)
    assert cache.get() is first  # version unchanged: one tiny query, same snapshot
    assert len(statements) == loaded + 1
    assert "config_meta" in statements[-1]

    bootstrap(url)  # a provisioning write bumps the version
    time.sleep(0.35)
    second = cache.get()
    assert second is not first
    assert second.version > first.version
    assert cache.reloads == 2


def test_database_outage_keeps_the_last_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    upgrade(f"sqlite:///{db}")
    cache = ConfigCache(f"sqlite:///{db}", check_every=0.01)
    first = cache.get()
    cache.db_url = "postgresql://nobody@127.0.0.1:1/none"
    cache._engine = None
    time.sleep(0.02)
    assert cache.get() is first
