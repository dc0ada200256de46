"""The ACD rules, pure: strategies, tiers, join-time exits, and the board's operations."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from control.core import presence as p
from control.core.acd import (
    Board,
    Caller,
    Candidate,
    NeedQueues,
    NotOffered,
    QueueConfig,
    QueueView,
    estimated_wait_sec,
    join_exit,
    pick,
    strategy_of,
)

NOW = 1_000_000


def cfg(strategy: str = "longest_idle", **kw: object) -> QueueConfig:
    return QueueConfig("q_1", "acc_1", strategy=strategy, **kw)  # type: ignore[arg-type]


# position, idle_since, calls_taken differ so each strategy has one right answer.
TIER = (
    Candidate("us_a", 1, position=3, idle_since=500, calls_taken=4),
    Candidate("us_b", 1, position=1, idle_since=300, calls_taken=9),
    Candidate("us_c", 1, position=2, idle_since=900, calls_taken=1),
)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("longest_idle", ("us_b",)),
        ("fewest_calls", ("us_c",)),
        ("top_down", ("us_b",)),
        ("sequential", ("us_b",)),
        ("ring_all", ("us_b", "us_c", "us_a")),
    ],
)
def test_strategies_pick_their_agent(strategy: str, expected: tuple[str, ...]) -> None:
    assert pick(cfg(strategy), TIER, rotation=0) == expected


def test_round_robin_walks_the_tier_in_position_order() -> None:
    picks = [pick(cfg("round_robin"), TIER, rotation=r)[0] for r in range(6)]
    assert picks == ["us_b", "us_c", "us_a", "us_b", "us_c", "us_a"]


def test_random_picks_every_agent_of_the_tier_only() -> None:
    rand = random.Random(7)
    low = Candidate("us_z", 2, 0, 0, 0)
    seen = {pick(cfg("random"), (*TIER, low), rotation=0, rand=rand)[0] for _ in range(200)}
    assert seen == {"us_a", "us_b", "us_c"}


def test_lower_tier_rings_first_whatever_the_strategy() -> None:
    second = Candidate("us_y", 2, position=0, idle_since=0, calls_taken=0)
    for strategy in ("longest_idle", "fewest_calls", "top_down", "round_robin", "random"):
        assert pick(cfg(strategy), (second, TIER[0]), rotation=0) == ("us_a",)
    assert pick(cfg("ring_all"), (second, *TIER), rotation=0) == ("us_b", "us_c", "us_a")
    assert pick(cfg("ring_all"), (second,), rotation=0) == ("us_y",)
    assert pick(cfg(), (), rotation=0) == ()


def test_unknown_strategy_is_refused() -> None:
    assert strategy_of("sequential") == "top_down"
    with pytest.raises(ValueError, match="unknown queue strategy"):
        pick(cfg("fastest"), TIER, rotation=0)
    with pytest.raises(ValueError, match="unknown queue strategy"):
        QueueConfig.from_row({"id": "q_1", "account_id": "acc_1", "strategy": "fastest"})


def test_config_from_a_row_keeps_defaults_for_nulls() -> None:
    row = {"id": "q_9", "account_id": "acc_2", "strategy": "ring_all", "max_queued": 25,
           "ewt_threshold_sec": None, "announce_position": 0, "name": "Sales"}  # fmt: skip
    q = QueueConfig.from_row(row)
    assert (q.id, q.account_id, q.strategy, q.max_queued) == ("q_9", "acc_2", "ring_all", 25)
    assert q.ewt_threshold_sec is None and q.announce_position is False
    assert q.agent_ring_timeout_sec == 20 and q.wrap_up_sec == 10


def test_estimated_wait_and_join_exits() -> None:
    assert estimated_wait_sec(3, 240, 2) == 360
    assert estimated_wait_sec(1, 240, 0) == 240  # no ready agent counts as one
    assert estimated_wait_sec(1, 100, 3) == 34  # rounded up
    full = cfg(max_queued=2)
    assert join_exit(full, 1, 0) is None and join_exit(full, 2, 5) == "queue_full"
    ewt = cfg(ewt_threshold_sec=180, ewt_aht_sec=240)
    assert join_exit(ewt, 0, 2) is None  # 1 x 240 / 2 = 120
    assert join_exit(ewt, 1, 2) == "ewt"  # 2 x 240 / 2 = 240 > 180
    assert join_exit(ewt, 1, 3) is None  # 2 x 240 / 3 = 160
    assert join_exit(cfg(ewt_threshold_sec=240, ewt_aht_sec=240), 1, 2) is None
    assert join_exit(cfg(ewt_threshold_sec=239, ewt_aht_sec=240), 1, 2) == "ewt"
    assert join_exit(cfg(ewt_threshold_sec=180), 50, 0) is None  # no AHT, no estimate


# -- the board --------------------------------------------------------------------------------
def ready(uid: str, *seats: tuple[str, int], since: int = 0) -> p.Agent:
    queues = tuple(p.Seat(q, level) for q, level in seats) or (p.Seat("q_1", 1),)
    return p.Agent(uid, "available", "waiting", ("dev",), queues, since=since)


def board(*agents: p.Agent, callers: tuple[Caller, ...] = (), **queues: QueueView) -> Board:
    views = queues or {
        "q_1": QueueView(len(callers), tuple((c.call_id, c.enqueued) for c in callers))
    }
    return Board(
        "acc_1", NOW, {a.user_id: a for a in agents}, {c.call_id: c for c in callers}, dict(views)
    )


def waiting_caller(call_id: str, at: int = NOW - 5000, queue: str = "q_1") -> Caller:
    return Caller(call_id, queue, at, at + 600_000, max_no_answer=3)


def test_join_offer_answer_finish_drive_presence_and_events() -> None:
    b = board(ready("us_1", since=10), ready("us_2", since=5))
    q = cfg(wrap_up_sec=10)
    joined = b.join(q, "c1", None)
    assert (joined.exit, joined.position, joined.ready, joined.rejoined) == (None, 1, 2, False)
    offer = b.offer(q, "c1")
    assert offer is not None and offer.user_ids == ("us_2",)  # idle longest
    assert offer.lease_until == NOW + 20_000
    assert b.agents["us_2"].state == "offering" and b.agents["us_2"].call_id == "c1"
    assert b.offer(q, "c1") == offer  # repeated: the same ring, nothing new
    assert b.answered(q, "c1", "us_2") is True
    assert b.answered(q, "c1", "us_2") is False  # a takeover repeats it
    assert b.agents["us_2"].state == "in_call" and b.stats["us_2:calls"] == 1
    assert b.finished(q, "c1", "us_2") is True and b.finished(q, "c1", "us_2") is False
    assert b.agents["us_2"].state == "wrap_up" and b.stats["us_2:idle_since"] == NOW + 10_000
    assert [e["type"] for e in b.events] == ["queue_join", "queue_offer", "queue_answer"]
    assert b.events[2]["agent_id"] == "us_2" and b.events[2]["queue_id"] == "q_1"
    assert [e["event"] for e in b.log] == ["offer", "answer", "hangup"]
    assert "c1" in b.callers_removed and b.dequeued == [("q_1", "c1")]


def test_only_the_head_caller_is_offered() -> None:
    first, second = waiting_caller("c1", NOW - 9000), waiting_caller("c2", NOW - 1000)
    b = board(ready("us_1"), ready("us_2"), callers=(first, second))
    assert b.offer(cfg(), "c2") is None
    assert b.offer(cfg(), "c1") is not None
    second_offer = b.offer(cfg(), "c2")  # c1 rings someone now: c2 heads the waiting
    assert second_offer is not None and second_offer.user_ids == ("us_2",)
    assert b.offer(cfg(), "c2") == second_offer and b.ready("q_1") == 0


def test_an_agent_is_never_offered_two_calls() -> None:
    b = board(ready("us_1"), callers=(waiting_caller("c1", NOW - 9000), waiting_caller("c2")))
    assert b.offer(cfg("ring_all"), "c1") is not None
    assert b.offer(cfg("ring_all"), "c2") is None
    with pytest.raises(p.InvalidTransition):
        b._drive("us_1", p.Offer("c2", "q_1"))


def test_ring_all_answer_releases_the_others_without_a_miss() -> None:
    b = board(
        ready("us_1"), ready("us_2"), ready("us_3", ("q_1", 2)), callers=(waiting_caller("c1"),)
    )
    offer = b.offer(cfg("ring_all"), "c1")
    assert offer is not None and offer.user_ids == ("us_1", "us_2")  # the best tier only
    b.answered(cfg("ring_all"), "c1", "us_1")
    assert b.agents["us_2"].state == "waiting" and b.agents["us_2"].misses == 0
    with pytest.raises(NotOffered):
        b.answered(cfg("ring_all"), "c1", "us_2")


def test_misses_auto_pause_and_the_caller_keeps_its_place() -> None:
    q = cfg(max_no_answer=2)
    b = board(ready("us_1"), callers=(waiting_caller("c1"),))
    for n in (1, 2):
        assert b.offer(q, "c1") is not None
        assert b.missed(q, "c1") == ("us_1",)
        assert b.agents["us_1"].misses == n
    assert b.agents["us_1"].status == "on_break" and b.agents["us_1"].pause_reason == "no_answer"
    assert b.offer(q, "c1") is None and "c1" in b.callers and not b.callers["c1"].offering
    assert b.missed(q, "c1") == ()


def test_tier_order_across_an_agents_queues() -> None:
    sales = waiting_caller("c_sales", queue="q_2")
    # us_1 sits in q_2 at level 1 and in q_1 at level 2: the q_2 caller comes first.
    agent = ready("us_1", ("q_2", 1), ("q_1", 2))
    b = board(agent, callers=(waiting_caller("c1"), sales),
              q_1=QueueView(1, (("c1", NOW - 5000),)), q_2=QueueView(1, (("c_sales", NOW - 5000),)))  # fmt: skip
    assert b.offer(cfg(), "c1") is None
    offer = b.offer(replace(cfg(), id="q_2"), "c_sales")
    assert offer is not None and offer.user_ids == ("us_1",)
    without_q2 = board(agent, callers=(waiting_caller("c1"),))
    with pytest.raises(NeedQueues) as need:
        without_q2.offer(cfg(), "c1")
    assert need.value.queue_ids == {"q_2"}


def test_sweep_expired_lease_and_abandoned_caller() -> None:
    ringing = replace(waiting_caller("c1"), offering=("us_1",), lease_until=NOW - 3000)
    stale = waiting_caller("c2", NOW - 700_000)
    agent = replace(ready("us_1"), state="offering", call_id="c1")
    b = board(agent, callers=(ringing, stale))
    assert b.sweep() == 2
    assert b.agents["us_1"].state == "waiting" and b.agents["us_1"].misses == 1
    assert not b.callers["c1"].offering and "c2" in b.callers_removed
    assert [(e["type"], e["call_id"]) for e in b.events] == [
        ("queue_miss", "c1"), ("queue_timeout", "c2")]  # fmt: skip
    assert b.sweep() == 0


def test_leave_is_idempotent_and_names_its_event() -> None:
    b = board(
        ready("us_1"), callers=(waiting_caller("c1"), waiting_caller("c2"), waiting_caller("c3"))
    )
    assert b.offer(cfg(), "c1") is not None
    assert b.leave(cfg(), "c1", "abandon") is True and b.leave(cfg(), "c1", "abandon") is False
    assert b.agents["us_1"].state == "waiting" and b.agents["us_1"].misses == 0
    b.leave(cfg(), "c2", "timeout")
    b.leave(cfg(), "c3", "route")
    assert [e["type"] for e in b.events] == [
        "queue_offer",
        "queue_abandon",
        "queue_timeout",
        "queue_leave",
    ]
    with pytest.raises(ValueError, match="unknown reason"):
        b.leave(cfg(), "c9", "bored")


def test_join_exits_and_rejoin() -> None:
    b = board(callers=(waiting_caller("c1"),))
    full = b.join(cfg(max_queued=1), "c2", None)
    assert full.exit == "queue_full" and "c2" not in b.callers
    assert b.events[-1]["type"] == "queue_leave" and b.events[-1]["reason"] == "queue_full"
    slow = b.join(cfg(ewt_threshold_sec=100, ewt_aht_sec=60), "c2", None)
    assert (slow.exit, slow.position, slow.ewt_sec, slow.ready) == ("ewt", 2, 120, 0)
    again = b.join(cfg(), "c1", None)
    assert again.rejoined and again.position == 1 and b.callers["c1"].enqueued == NOW - 5000
    assert [e["type"] for e in b.events] == ["queue_leave", "queue_leave"]


def test_a_callback_keeps_its_place_and_outlives_max_wait() -> None:
    first, second = waiting_caller("c1", NOW - 9000), waiting_caller("c2", NOW - 1000)
    ringing = replace(first, offering=("us_1",), lease_until=NOW + 5000)
    agent = replace(ready("us_1"), state="offering", call_id="c1")
    b = board(agent, callers=(ringing, second))
    waiting = b.callback(cfg(), "c1", "number:+4930123456", 3_600_000)
    assert waiting is not None and waiting.position == 1 and waiting.waited_ms == 9000
    marked = b.callers["c1"]
    assert (marked.enqueued, marked.callback, marked.offering) == (
        NOW - 9000,
        "number:+4930123456",
        (),
    )
    assert marked.deadline == NOW + 3_600_000
    assert b.agents["us_1"].state == "waiting" and b.agents["us_1"].misses == 0  # released
    assert b.events[-1]["type"] == "queue_callback" and "number" not in str(b.events[-1])
    assert Caller.from_json("c1", marked.to_json()) == marked
    assert "cb" not in second.to_json()  # a live caller's record is unchanged
    offer = b.offer(cfg(), "c1")  # served in its turn, ahead of c2
    assert offer is not None and b.offer(cfg(), "c2") is None
    assert b.callback(cfg(), "c9", "number:+1", 1) is None  # not waiting: nothing to keep


def test_a_callback_answer_is_marked_and_a_retry_waits_at_the_back() -> None:
    cb = replace(waiting_caller("c1", NOW - 9000), callback="extension:1001", attempts=0)
    b = board(ready("us_1"), callers=(cb, waiting_caller("c2", NOW - 1000)))
    assert b.offer(cfg(), "c1") is not None and b.answered(cfg(), "c1", "us_1") is True
    answer = b.events[-1]
    assert (answer["type"], answer["callback"], answer["attempt"]) == ("queue_answer", True, 1)
    assert b.requeue_callback(cfg(), "c1", "extension:1001", 1, 600_000) is True
    again = b.callers["c1"]
    assert (again.enqueued, again.attempts, again.deadline) == (NOW, 1, NOW + 600_000)
    assert b.queues["q_1"].head[-1] == ("c1", NOW) and b.ranks["c1"] == 2
    assert b.requeue_callback(cfg(), "c1", "extension:1001", 1, 600_000) is False
    assert b.events[-1]["type"] == "queue_callback_retry" and b.events[-1]["attempt"] == 2


def test_an_expired_callback_times_out_with_its_reason() -> None:
    cb = replace(waiting_caller("c1", NOW - 9000), deadline=NOW - 1, callback="number:+1")
    b = board(callers=(cb,))
    assert b.sweep() == 1
    assert (b.events[-1]["type"], b.events[-1]["reason"]) == ("queue_timeout", "callback_expired")


def test_answer_time_prompts_lengthen_the_offer_lease() -> None:
    plain = cfg(agent_ring_timeout_sec=15)
    confirming = QueueConfig.from_row({"id": "q_1", "account_id": "acc_1",
                                       "agent_ring_timeout_sec": 15, "agent_confirm": 1})  # fmt: skip
    assert (plain.lease_sec, confirming.lease_sec, confirming.agent_confirm) == (15, 25, True)
    b = board(ready("us_1"), callers=(waiting_caller("c1"),))
    offer = b.offer(confirming, "c1")
    assert offer is not None and offer.lease_until == NOW + 25_000
