"""The reconciler against real Redis: lost BYEs, drifted counters, nodes, adoption, grace."""

from __future__ import annotations

import time

import redis

from control.core.admission import CallFacts, LimitBook
from control.live.admission import AdmissionStore
from control.live.reconcile import known_accounts, reconcile


def admit(store: AdmissionStore, book: LimitBook, call_id: str, account: str = "acc_a") -> None:
    facts = CallFacts(
        call_id,
        account,
        callee_user_id="us_r" if account == "acc_a" else None,
        in_trunk_id="tr_a" if account == "acc_a" else None,
    )
    assert store.admit(facts, book).admitted


def test_calls_no_longer_live_are_released_and_counters_rebuilt(
    store: AdmissionStore, book: LimitBook, redis_client: redis.Redis
) -> None:
    for call_id in ("up1", "up2", "gone1"):
        admit(store, book, call_id)
    admit(store, book, "gone2", account="acc_b")
    n = store.keys.account("acc_a")[0]
    redis_client.hset(n, "in", 7)  # drift: a counter no record explains
    redis_client.hset(n, "u:us_ghost", 2)
    assert known_accounts(store) == {"acc_a", "acc_b"}

    report = reconcile(store, live={"up1", "up2"}, grace=0)

    repair = report.accounts["acc_a"]
    assert repair.released == ["gone1"]
    assert repair.refreshed == 2
    # The lost call gave back first (7 -> 6); what no record explains is then drift.
    assert sorted(repair.drift) == [("in", 6, 2), ("u:us_ghost", 2, 0)]
    assert report.accounts["acc_b"].released == ["gone2"]
    assert store.live("acc_a").counters == {"in": 2, "t:tr_a": 2, "u:us_r": 2}
    assert store.live("acc_b").counters == {} and store.live("acc_b").calls == 0
    assert redis_client.get(store.keys.steering("gone1")) is None
    assert store.release("up1") and store.release("up2")
    # Nothing left to repair: a second pass reports no account.
    assert reconcile(store, live=set(), grace=0).accounts == {}


def test_grace_spares_calls_admitted_after_the_dialog_list(
    store: AdmissionStore, book: LimitBook
) -> None:
    admit(store, book, "fresh")
    report = reconcile(store, live=set(), grace=30)
    assert "acc_a" not in report.accounts
    assert store.live("acc_a").calls == 1


def test_each_node_reconciles_only_its_own_calls(
    redis_client: redis.Redis, prefix: str, book: LimitBook
) -> None:
    node1 = AdmissionStore(redis_client, prefix=f"{prefix}:cac", node="n1")
    node2 = AdmissionStore(redis_client, prefix=f"{prefix}:cac", node="n2")
    admit(node1, book, "on1")
    admit(node2, book, "on2")
    report = reconcile(node1, live=set(), node="n1", grace=0)
    assert report.accounts["acc_a"].released == ["on1"]
    assert node2.live("acc_a").calls == 1  # node 2's call is not node 1's to judge


def test_live_call_unknown_to_redis_is_adopted_from_its_token(
    store: AdmissionStore, book: LimitBook
) -> None:
    admit(store, book, "known")
    token = store.admit(CallFacts("known", "acc_a", in_trunk_id="tr_a"), book).token
    store.clear("acc_a")  # Redis lost the account's state (flush, restart without AOF)
    report = reconcile(store, live={"known"}, adopt={"known": token, "ended": token}, grace=0)
    assert report.accounts["acc_a"].adopted == ["known"]  # "ended" is not live: not adopted
    assert store.live("acc_a").counters == {"in": 1, "t:tr_a": 1, "u:us_r": 1}
    assert store.accounts_of("known") == ["acc_a"]
    assert store.release("known")
    assert store.live("acc_a").counters == {}


def test_a_call_that_ends_while_being_adopted_is_not_counted_again(
    store: AdmissionStore, book: LimitBook
) -> None:
    """``live`` was read while the call was up; it ended (and released) before the adoption:
    the second read finds it gone and its counters are given back at once."""
    token = store.admit(CallFacts("brief", "acc_a", in_trunk_id="tr_a"), book).token
    admit(store, book, "stays")
    stays = store.admit(CallFacts("stays", "acc_a", in_trunk_id="tr_a"), book).token
    assert store.release("brief")  # the BYE, between dlg.list and the adoption
    store.clear("acc_a")  # and Redis forgot "stays" too: both look adoptable
    report = reconcile(store, live={"brief", "stays"}, adopt={"brief": token, "stays": stays},
                       grace=0, still_live=lambda: {"stays"})  # fmt: skip
    repair = report.accounts["acc_a"]
    assert (repair.adopted, repair.released) == (["stays"], ["brief"])
    assert store.live("acc_a").counters == {"in": 1, "t:tr_a": 1, "u:us_r": 1}


def test_reconcile_keeps_long_calls_alive_past_their_ttl(
    redis_client: redis.Redis, prefix: str, book: LimitBook
) -> None:
    store = AdmissionStore(redis_client, prefix=f"{prefix}:cac", ttl=0.5)
    admit(store, book, "long")
    for _ in range(4):
        time.sleep(0.25)
        reconcile(store, live={"long"}, grace=0)
    assert store.live("acc_a").calls == 1
    assert store.accounts_of("long") == ["acc_a"]  # its steering key lives on too
    time.sleep(0.6)
    report = reconcile(store, live=set(), grace=30)  # not listed, but within grace: TTL decides
    assert report.accounts["acc_a"].expired == 1
    assert store.live("acc_a").counters == {}
