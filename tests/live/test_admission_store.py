"""Admission in the session stack's Redis: ceilings, windows, release, idempotency, TTL."""

from __future__ import annotations

import time

import redis
from redis.crc import key_slot

from control.core.admission import (
    AccountLimits,
    CallFacts,
    LimitBook,
    Rule,
)
from control.live.admission import AdmissionStore


def inbound(call_id: str, **kw: str) -> CallFacts:
    return CallFacts(call_id, "acc_a", in_trunk_id="tr_a", **kw)


def test_account_ceiling_rejects_with_503_and_release_gives_back(
    store: AdmissionStore, book: LimitBook, redis_client: redis.Redis, prefix: str
) -> None:
    decisions = [store.admit(inbound(f"c{i}"), book) for i in range(4)]
    assert [d.admitted for d in decisions] == [True, True, True, False]
    refused = decisions[3]
    assert refused.code == 503 and refused.retry_after == 10
    assert refused.rejected_by is not None and refused.rejected_by.label == "account max_in"
    assert refused.held == ()
    assert [c.count for c in refused.counts] == [3, 3]  # in, t:tr_a as they stood
    # A rejected call leaves no steering key behind; admitted ones have theirs.
    assert redis_client.get(store.keys.steering("c3")) is None
    assert redis_client.get(store.keys.steering("c0")) == b"acc_a"
    assert store.live("acc_a").counters == {"in": 3, "t:tr_a": 3}

    assert store.release("c0") is True
    assert store.release("c0") is False  # a second BYE takes nothing
    assert store.admit(inbound("c4"), book).admitted
    for call_id in ("c1", "c2", "c4"):
        assert store.release(call_id)
    assert store.live("acc_a") == store.live("acc_a").__class__("acc_a", {}, 0, {})
    assert list(redis_client.scan_iter(match=f"{prefix}:*")) == []


def test_busy_user_486_and_caller_over_its_own_limit_403(
    store: AdmissionStore, book: LimitBook
) -> None:
    assert store.admit(inbound("c1", callee_user_id="us_a1"), book).admitted
    busy = store.admit(inbound("c2", callee_user_id="us_a1"), book)
    assert (busy.admitted, busy.code) == (False, 486)
    assert busy.reply_headers() == ['Reason: SIP;cause=486;text="cac user max_simultaneous"']
    out = CallFacts("c3", "acc_a", caller_user_id="us_a1", out_trunk_id="tr_a")
    assert store.admit(out, book).code == 403
    # Nothing was taken by the rejected calls: the account still counts one call.
    assert store.live("acc_a").counters == {"in": 1, "t:tr_a": 1, "u:us_a1": 1}


def test_admission_is_idempotent_and_cumulative_per_call(
    store: AdmissionStore, book: LimitBook
) -> None:
    first = store.admit(inbound("c1", did_id="did_a1"), book)
    again = store.admit(inbound("c1", did_id="did_a1"), book)  # retransmitted INVITE
    assert first.admitted and again.admitted
    assert store.live("acc_a").counters == {"in": 1, "t:tr_a": 1, "d:did_a1": 1}
    # The failure route forwards the call to a user: only the user is added.
    more = store.admit(inbound("c1", did_id="did_a1", callee_user_id="us_a2"), book)
    assert more.held[0].fields == ("in", "t:tr_a", "d:did_a1", "u:us_a2")
    assert store.live("acc_a").counters == {"in": 1, "t:tr_a": 1, "d:did_a1": 1, "u:us_a2": 1}
    assert store.release("c1", accounts=more.token)  # the token saves the lookup
    assert store.live("acc_a").counters == {}


def test_sliding_window_rejects_the_sixth_call_in_the_period(
    store: AdmissionStore, redis_client: redis.Redis
) -> None:
    rules = (Rule("lim_5", "acc_r", "account", None, "in", 10, 5, True),)
    book = LimitBook(accounts={"acc_r": AccountLimits()}, rules={"acc_r": rules})
    calls = [store.admit(CallFacts(f"r{i}", "acc_r", in_trunk_id="tr_x"), book) for i in range(6)]
    assert [d.admitted for d in calls] == [True] * 5 + [False]
    sixth = calls[5]
    assert sixth.code == 503 and 1 <= (sixth.retry_after or 0) <= 10
    assert sixth.rejected_by is not None and sixth.rejected_by.rule == rules[0]
    # Ending calls does not refund a rate: the window counts admissions, not calls up.
    for d in calls[:5]:
        store.release(d.call_id)
    assert not store.admit(CallFacts("r6", "acc_r", in_trunk_id="tr_x"), book).admitted
    assert store.live("acc_r", {"lim_5": 10}).windows == {"w:lim_5:acc_r": 5}
    assert 0 < redis_client.pttl(store.keys.window("acc_r", "w:lim_5:acc_r")) <= 10_000


def test_short_window_reopens_and_soft_rules_admit_with_an_alert(store: AdmissionStore) -> None:
    rules = (
        Rule("lim_1s", "acc_s", "account", None, "out", 1, 2, True),
        Rule("lim_soft", "acc_s", "account", None, "out", 60, 1, False),
    )
    book = LimitBook(rules={"acc_s": rules})
    first = store.admit(CallFacts("s0", "acc_s", out_trunk_id="tr_x"), book)
    assert first.admitted and first.soft_exceeded == ()
    second = store.admit(CallFacts("s1", "acc_s", out_trunk_id="tr_x"), book)
    assert second.admitted and [d.rule for d in second.soft_exceeded] == [rules[1]]
    assert second.alerts() == [
        {
            "account_id": "acc_s",
            "rule_id": "lim_soft",
            "scope": "acc_s",
            "max_count": 1,
            "period_sec": 60,
            "count": 2,
        }
    ]
    assert not store.admit(CallFacts("s2", "acc_s", out_trunk_id="tr_x"), book).admitted
    time.sleep(1.05)
    assert store.admit(CallFacts("s3", "acc_s", out_trunk_id="tr_x"), book).admitted


def test_shared_carrier_trunk_counts_across_accounts_and_rolls_back(
    store: AdmissionStore, book: LimitBook
) -> None:
    calls = [CallFacts(f"p{i}", "acc_b", did_id="did_b1", in_trunk_id="tr_p") for i in range(5)]
    decisions = [store.admit(c, book) for c in calls]
    assert [d.admitted for d in decisions] == [True] * 4 + [False]
    assert decisions[4].rejected_by is not None
    assert decisions[4].rejected_by.label == "trunk max_channels"
    # The call's own slot took "in" before the trunk refused: given back, exactly.
    assert store.live("acc_b").counters == {"in": 4, "d:did_b1": 4}
    assert store.live("acc_b").calls == 4
    assert store.live("acc_p").counters == {"t:tr_p": 4}
    assert store.live("acc_p", {"lim_p": 60}).windows == {"w:lim_p:tr_p": 4}
    assert store.accounts_of("p0") == ["acc_b", "acc_p"]
    for d in decisions[:4]:
        assert store.release(d.call_id)  # by call-id only
    assert store.live("acc_b").counters == {} and store.live("acc_p").counters == {}


def test_keys_of_an_account_share_one_cluster_slot(store: AdmissionStore) -> None:
    keys = [*store.keys.account("acc_a"), store.keys.window("acc_a", "w:lim_1:us_1")]
    assert len({key_slot(k.encode()) for k in keys}) == 1
    assert key_slot(store.keys.steering("abc@host").encode()) == key_slot(b"abc@host")


def test_calls_past_their_deadline_give_back_and_refresh_keeps_them(
    redis_client: redis.Redis, prefix: str, book: LimitBook
) -> None:
    store = AdmissionStore(redis_client, prefix=f"{prefix}:cac", ttl=0.4)
    assert store.admit(inbound("kept"), book).admitted
    assert store.admit(inbound("lost"), book).admitted  # its BYE will never come
    for _ in range(3):
        time.sleep(0.2)
        assert store.refresh("kept")
    assert not store.refresh("nobody")
    decision = store.admit(inbound("next"), book)
    assert decision.admitted and decision.expired == 1
    assert store.live("acc_a").counters == {"in": 2, "t:tr_a": 2}
    assert store.release("kept") and not store.release("lost")


def test_noscript_fallback_after_a_script_flush(
    store: AdmissionStore, book: LimitBook, redis_client: redis.Redis
) -> None:
    redis_client.script_flush()
    assert store.admit(inbound("n1"), book).admitted
    redis_client.script_flush()
    assert store.admit_many([]) == []
    redis_client.script_flush()
    assert store.release("n1")


def test_pipelined_admissions_decide_each_call(store: AdmissionStore, book: LimitBook) -> None:
    from control.core.admission import plan

    plans = [plan(inbound(f"m{i}", callee_user_id="us_a2"), book) for i in range(4)]
    decisions = store.admit_many(plans)
    assert [d.admitted for d in decisions] == [True, True, False, False]
    assert [d.code for d in decisions[2:]] == [486, 486]
    assert store.live("acc_a").counters == {"in": 2, "t:tr_a": 2, "u:us_a2": 2}
