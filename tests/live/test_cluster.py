"""The same code on a Redis Cluster node, which refuses any script or multi-key command whose
keys span slots: admission, release by call-id, reconcile, reset and presence all pass."""

from __future__ import annotations

from redis.cluster import RedisCluster

from control.core.admission import CallFacts, LimitBook, plan
from control.core.presence import Login, Register
from control.live.admission import AdmissionStore
from control.live.presence import PresenceStore
from control.live.reconcile import reconcile


def test_admission_and_presence_run_on_a_cluster(cluster: RedisCluster, book: LimitBook) -> None:
    store = AdmissionStore(cluster, node="n1")
    carrier = CallFacts("k1", "acc_b", did_id="did_b1", in_trunk_id="tr_p")  # two slots
    first = store.admit(carrier, book)
    assert first.admitted and [h.account_id for h in first.held] == ["acc_b", "acc_p"]
    decisions = store.admit_many(
        [
            plan(CallFacts(f"k{i}", "acc_a", callee_user_id="us_a1", in_trunk_id="tr_a"), book)
            for i in (2, 3)
        ]
    )
    assert [d.code for d in decisions] == [None, 486]
    assert store.live("acc_p", {"lim_p": 60}).windows == {"w:lim_p:tr_p": 1}
    report = reconcile(store, live={"k2"}, grace=0)
    assert report.accounts["acc_b"].released == ["k1"]
    assert report.accounts["acc_p"].released == ["k1"]
    assert store.release("k2")
    assert store.live("acc_a").counters == {} and store.live("acc_p").counters == {}
    assert store.clear("acc_p") == 0

    presence = PresenceStore(cluster)
    presence.apply("acc_a", "us_a1", Register("dev_1"))
    assert presence.apply("acc_a", "us_a1", Login()).after.status == "on_break"
    assert [e["event"] for e in presence.log("acc_a")] == ["register", "login"]
