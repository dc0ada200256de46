"""The collector prices calls at their end from the config DB's rate tables (real SQLite config
DB with the migrations applied, real Redis, real lake)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import text
from sqlalchemy.orm import Session

from control.cdr.rates import RateBook
from control.db import make_engine
from control.db import models as m
from control.db.migrate import upgrade
from control.settings import Settings
from tests.cdr.conftest import Running, wait_drained
from tests.cdr.test_collector import cdrs, emit

T0 = 1_790_000_000_000


def config_db(path: Path) -> str:
    """Reseller ``acc_resel`` with a table, its customer ``acc_cust`` without one, customer
    ``acc_own`` with its own, and ``acc_bare`` under a parent without rates."""
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s:
        s.add_all([
            m.Account(id="acc_resel", name="Reseller", is_reseller=1),
            m.Account(id="acc_plain", name="Plain"),
        ])  # fmt: skip
        s.flush()
        s.add_all([
            m.Account(id="acc_cust", name="Customer", parent_id="acc_resel"),
            m.Account(id="acc_own", name="Own", parent_id="acc_resel"),
            m.Account(id="acc_bare", name="Bare", parent_id="acc_plain"),
        ])  # fmt: skip
        s.flush()
        s.add_all([
            m.Rate(id="rate_1", account_id="acc_resel", direction="outbound", prefix="49",
                   per_minute_micros=20_000),
            m.Rate(id="rate_2", account_id="acc_resel", direction="outbound", prefix="4930",
                   per_minute_micros=12_000, connect_micros=1_000, min_sec=30, increment_sec=6),
            m.Rate(id="rate_3", account_id="acc_own", direction="outbound", prefix="",
                   per_minute_micros=600_000, increment_sec=60),
        ])  # fmt: skip
        s.commit()
    engine.dispose()
    return url


def outbound(call_id: str, account: str, number: str, t: int, talk_ms: int | None,
             **end: Any) -> list[dict[str, Any]]:  # fmt: skip
    decision = {"kind": "outbound", "account_id": account, "number": number}
    base = {"call_id": call_id, "account_id": account}
    route = {"call_id": call_id, "type": "route", "ts": t, "decision": decision,
             "device_id": "dev_1", "from": "1001", "to": number}  # fmt: skip
    if talk_ms is None:
        return [route, {**base, "type": "call_failed", "ts": t + 3_000, "code": 486,
                        "reason": "Busy Here"}]  # fmt: skip
    return [
        route,
        {**base, "type": "call_answered", "ts": t + 2_000},
        {**base, "type": "call_ended", "ts": t + 2_000 + talk_ms, "cause": "caller_bye",
         "code": 200, **end},
    ]  # fmt: skip


def test_a_completed_call_gets_its_cost(
    lake_settings: Settings, r: redis.Redis, tmp_path: Path
) -> None:
    settings = lake_settings.model_copy(update={"db_url": config_db(tmp_path / "config.db")})
    calls = [
        # reseller's table, longest prefix 4930: 31 s -> 36 s billed; 1000 + 12000*36/60
        outbound("berlin", "acc_cust", "+4930123456", T0, 30_100),
        outbound("munich", "acc_cust", "+4989123456", T0 + 10, 60_000),  # prefix 49: 20000
        outbound("own", "acc_own", "+4930123456", T0 + 20, 61_000),  # own table, 60 s steps
        outbound("busy", "acc_cust", "+4930123456", T0 + 30, None),  # unanswered: 0
        outbound("bare", "acc_bare", "+4930123456", T0 + 40, 10_000),  # no table: unrated
        outbound("usa", "acc_cust", "+14155550100", T0 + 50, 10_000),  # no line: unrated
        outbound("given", "acc_cust", "+4930123456", T0 + 60, 10_000, cost_micros=4242),
    ]
    # the start rows land in one batch, the ends in a later one: priced at the call's end
    emit(r, settings, *[events[0] for events in calls])
    with Running(settings) as collector:
        wait_drained(r, settings)
        time.sleep(0.5)
        emit(r, settings, *[e for events in calls for e in events[1:]])
        wait_drained(r, settings)
        queries = collector.rates.queries
        unrated = collector.stats["unrated"]
    rows = cdrs(collector.lake)
    assert rows["berlin"]["billsec"] == 31
    cost = {call: row["cost_micros"] for call, row in rows.items()}
    assert cost == {
        "berlin": 1_000 + 12_000 * 36 // 60,
        "munich": 20_000,
        "own": 600_000 * 2,
        "busy": 0,
        "bare": None,
        "usa": None,
        "given": 4242,  # an emitter's own figure is kept
    }
    assert unrated == 2
    assert queries == 2  # the account tree and the rates, once for the whole batch


def test_rates_are_cached_for_the_ttl_and_survive_a_db_outage(tmp_path: Path) -> None:
    path = tmp_path / "config.db"
    book = RateBook(config_db(path), ttl=3600)
    first = book.tables(["acc_cust", "acc_own"])
    again = book.tables(["acc_cust"])
    assert book.queries == 2  # served from memory within the TTL
    assert first["acc_cust"] is again["acc_cust"]
    assert first["acc_cust"] is not None and len(first["acc_cust"]) == 2
    book.ttl = 0  # every call refreshes now, and the rates cannot be read any more
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as c:
        c.execute(text("ALTER TABLE rates RENAME TO rates_elsewhere"))
    engine.dispose()
    kept = book.tables(["acc_cust"])
    assert book.queries == 3  # tried (the account tree), failed on the rates
    assert kept["acc_cust"] is first["acc_cust"]  # the tables last read stay in use
    missing = tmp_path / "none.db"
    assert RateBook(f"sqlite:///{missing}").tables(["acc_cust"]) == {"acc_cust": None}
    assert not missing.exists()  # no empty DB created in its place
