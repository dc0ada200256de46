"""Redis stops in the middle of traffic and comes back empty: the per-account policy decides
meanwhile, calls already up are never touched, and the reconciler catches up afterwards. The
test runs its own redis-server; the session stack's is never stopped."""

from __future__ import annotations

import time

import pytest
import redis

from control.core.admission import AccountLimits, CallFacts, LimitBook
from control.live.admission import AdmissionStore
from control.live.reconcile import reconcile
from tests.harness.redis_server import OwnRedis

BOOK = LimitBook(
    accounts={"acc_open": AccountLimits(max_in=10), "acc_shut": AccountLimits(policy="closed")}
)


def call(call_id: str, account: str = "acc_open") -> CallFacts:
    return CallFacts(call_id, account, did_id="did_1", in_trunk_id="tr_1")


def test_policy_decides_during_an_outage_and_reconcile_catches_up(own_redis: OwnRedis) -> None:
    store = AdmissionStore.from_url(own_redis.url, backoff=0.3, node="n1")
    up = store.admit(call("up"), BOOK)
    assert up.admitted and not up.degraded

    own_redis.stop()
    started = time.monotonic()
    opened = store.admit(call("during"), BOOK)  # the account's default: fail-open
    assert time.monotonic() - started < 0.5
    assert opened.admitted and opened.degraded and opened.error
    assert opened.token == "acc_open=in,t:tr_1,d:did_1"
    shut = store.admit(call("refused", "acc_shut"), BOOK)  # fail-closed account
    assert not shut.admitted and shut.code == 503 and shut.retry_after == 5
    assert not store.admit(call("forced"), BOOK, policy="closed").admitted
    # A call that is up is never affected: its BYE is absorbed, not an error.
    assert store.release("up") is False
    assert store.refresh("up") is False

    own_redis.start()  # back, and empty: every script and counter is gone
    time.sleep(0.35)  # the backoff runs out
    after = store.admit(call("after"), BOOK)
    assert after.admitted and not after.degraded  # NOSCRIPT was answered by a reload
    assert store.live("acc_open").counters == {"in": 1, "d:did_1": 1, "t:tr_1": 1}

    # The reconciler, fed the live dialogs and their stored tokens, counts the calls again.
    live = {"up", "during", "after"}
    report = reconcile(store, live, adopt={"up": up.token, "during": opened.token}, grace=0)
    assert sorted(report.accounts["acc_open"].adopted) == ["during", "up"]
    assert store.live("acc_open").counters == {"in": 3, "d:did_1": 3, "t:tr_1": 3}
    for call_id in sorted(live):
        assert store.release(call_id)
    assert store.live("acc_open").counters == {}


def test_release_and_reads_raise_nothing_while_redis_is_down(own_redis: OwnRedis) -> None:
    store = AdmissionStore.from_url(own_redis.url, backoff=0.0)
    assert store.admit(call("x"), BOOK).admitted
    own_redis.stop()
    assert store.release("x") is False
    assert store.release("x", accounts=["acc_open"]) is False
    with pytest.raises(redis.ConnectionError):
        store.live("acc_open")  # operators see the outage (the API turns it into a 503)
