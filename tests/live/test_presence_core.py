"""The agent state machine (pure): explicit Ready, queues, calls, buckets."""

from __future__ import annotations

import pytest

from control.core.presence import (
    BUCKETS,
    NO_ANSWER,
    NOT_READY,
    Agent,
    Answer,
    Available,
    Event,
    Expire,
    ExtCallEnd,
    ExtCallStart,
    Hangup,
    InvalidTransition,
    Login,
    Logout,
    Membership,
    NoAnswer,
    NotLoggedIn,
    Offer,
    Pause,
    Profile,
    Register,
    Seat,
    UnknownQueue,
    WrapDone,
    apply,
    bucket,
    control_event,
    dispatchable,
    settle,
)

PLAIN = Profile(memberships=(Membership("q_a", 1), Membership("q_b", 2, "optional")))
MANDATORY = Profile(
    auto_queue_login=True,
    memberships=(
        Membership("q_s", 1, "static"),
        Membership("q_m", 2, "mandatory"),
        Membership("q_o", 3, "optional"),
    ),
)


def run(agent: Agent, profile: Profile, *events: Event, now: int = 1000) -> Agent:
    for event in events:
        agent = apply(agent, event, profile, now).after
    return agent


def ready_agent() -> Agent:
    return run(Agent("us_1"), PLAIN, Register("dev_1"), Login(), Available((Seat("q_a", 0),)))


def test_login_lands_not_ready_and_explicit_available_with_queues_makes_ready() -> None:
    agent = run(Agent("us_1"), PLAIN, Register("dev_1"), Login())
    assert (agent.status, agent.pause_reason, bucket(agent, 1000)) == (
        "on_break",
        NOT_READY,
        "paused",
    )
    agent = run(agent, PLAIN, Available())
    assert bucket(agent, 1000) == "idle"  # available, but in no queue: offered nothing
    assert not dispatchable(agent, 1000)
    agent = run(agent, PLAIN, Available((Seat("q_a", 0), Seat("q_b", 5))))
    assert agent.queues == (Seat("q_a", 1), Seat("q_b", 5))  # level 0 = the tier_level
    assert bucket(agent, 1000) == "ready" and dispatchable(agent, 1000, "q_b")
    assert not dispatchable(agent, 1000, "q_other")


def test_auto_ready_and_auto_queue_login() -> None:
    profile = Profile(
        auto_ready_on_login=True, auto_queue_login=True, memberships=MANDATORY.memberships
    )
    agent = run(Agent("us_1"), profile, Register("dev_1"), Login())
    assert agent.status == "available" and agent.pause_reason is None
    assert [s.queue_id for s in agent.queues] == ["q_s", "q_m"]  # static + mandatory, not optional
    assert bucket(agent, 0) == "ready"


def test_mandatory_queues_stay_when_the_agent_picks_others() -> None:
    agent = run(Agent("us_1"), MANDATORY, Login(), Available((Seat("q_o", 0),)))
    assert [s.queue_id for s in agent.queues] == ["q_m", "q_o"]
    with pytest.raises(UnknownQueue) as caught:
        run(agent, MANDATORY, Available((Seat("q_nope", 1),)))
    assert caught.value.queue_id == "q_nope"


def test_control_events_need_a_login_and_logout_clears_queues() -> None:
    with pytest.raises(NotLoggedIn):
        run(Agent("us_1"), PLAIN, Available())
    with pytest.raises(NotLoggedIn):
        run(Agent("us_1"), PLAIN, Pause("lunch"))
    agent = run(ready_agent(), PLAIN, Pause("lunch"))
    assert (agent.status, agent.pause_reason, bucket(agent, 0)) == ("on_break", "lunch", "paused")
    agent = run(agent, PLAIN, Logout())
    assert (agent.status, agent.queues, bucket(agent, 0)) == ("offline", (), "offline")
    assert agent.reachable  # the phone is still registered
    relogin = apply(agent, Login(), PLAIN, 2000)
    assert relogin.changed and relogin.after.since == 2000


def test_reachability_follows_every_device() -> None:
    agent = run(ready_agent(), PLAIN, Register("dev_2"))
    assert agent.devices == ("dev_1", "dev_2")
    agent = run(agent, PLAIN, Expire("dev_1"))
    assert agent.reachable and bucket(agent, 0) == "ready"
    agent = run(agent, PLAIN, Expire("dev_2"))
    assert bucket(agent, 0) == "unreachable" and not dispatchable(agent, 0)
    again = apply(run(agent, PLAIN, Register("dev_2")), Register("dev_2"), PLAIN, 5)
    assert not again.changed  # a re-REGISTER is no transition


def test_offer_answer_hangup_wrap_up() -> None:
    agent = run(ready_agent(), PLAIN, Offer("call1", "q_a"))
    assert (agent.state, bucket(agent, 0)) == ("offering", "ring")
    with pytest.raises(InvalidTransition):
        run(agent, PLAIN, Offer("call2"))  # one caller, one agent
    with pytest.raises(InvalidTransition):
        run(agent, PLAIN, Answer("other"))
    agent = run(agent, PLAIN, Answer("call1"))
    assert bucket(agent, 0) == "incall"
    agent = apply(agent, Hangup("call1", wrap_up_sec=10), PLAIN, 1000).after
    assert (agent.state, agent.wrap_until, bucket(agent, 5000)) == ("wrap_up", 11_000, "wrapup")
    assert not dispatchable(agent, 10_999) and dispatchable(agent, 11_000)
    assert bucket(agent, 11_000) == "ready"
    ended = settle(agent, 12_000)
    assert ended is not None and ended.at == 11_000 and ended.after.state == "waiting"
    assert settle(ended.after, 13_000) is None
    assert run(agent, PLAIN, WrapDone()).state == "waiting"


def test_missed_offers_pause_the_agent_at_max_no_answer() -> None:
    agent = ready_agent()
    for n in range(1, 3):
        agent = run(agent, PLAIN, Offer(f"c{n}"), NoAnswer(f"c{n}", max_no_answer=3))
        assert agent.misses == n and agent.status == "available"
    agent = run(agent, PLAIN, Offer("c3"), NoAnswer("c3", max_no_answer=3))
    assert (agent.status, agent.pause_reason, bucket(agent, 0)) == ("on_break", NO_ANSWER, "paused")
    agent = run(agent, PLAIN, Available())
    assert agent.misses == 0 and bucket(agent, 0) == "ready"


def test_caller_leaving_while_it_rings_is_no_miss() -> None:
    agent = run(ready_agent(), PLAIN, Offer("c1"), Hangup("c1", wrap_up_sec=30))
    assert (agent.state, agent.misses, bucket(agent, 0)) == ("waiting", 0, "ready")


def test_bucket_priority_follows_the_spec_order() -> None:
    assert BUCKETS == (
        "extcall",
        "incall",
        "offline",
        "unreachable",
        "ring",
        "paused",
        "wrapup",
        "ready",
        "idle",
    )
    agent = run(ready_agent(), PLAIN, Offer("c1"), Answer("c1"), ExtCallStart("own"))
    assert bucket(agent, 0) == "extcall"  # above incall
    agent = run(agent, PLAIN, ExtCallEnd("own"), Logout())
    assert bucket(agent, 0) == "incall"  # logged out mid-call: the call still shows
    unreachable_offline = Agent("us_2")
    assert bucket(unreachable_offline, 0) == "offline"  # offline above unreachable
    ringing_paused = Agent("us_3", status="on_break", state="offering", devices=("d",))
    assert bucket(ringing_paused, 0) == "ring"  # ring above paused


def test_control_event_names() -> None:
    assert control_event("login", [("q_a", 2)]) == Login((Seat("q_a", 2),))
    assert control_event("break", reason="lunch") == Pause("lunch")
    assert control_event("pause") == Pause(None)
    assert control_event("available") == Available(None)
    with pytest.raises(ValueError):
        control_event("dance")


def test_log_entry_records_both_buckets() -> None:
    transition = apply(ready_agent(), Pause("coffee"), PLAIN, 7000)
    entry = transition.log_entry()
    assert entry["bucket"] == "paused" and entry["prev_bucket"] == "ready"
    assert entry["ts"] == 7000 and entry["event"] == "pause" and entry["reason"] == "coffee"
    assert Agent.from_json(transition.after.to_json()) == transition.after
