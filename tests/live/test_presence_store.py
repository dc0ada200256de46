"""Agent presence in real Redis: atomic transitions and the per-account event log."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis.crc import key_slot

from control.core.presence import (
    Answer,
    Available,
    Hangup,
    Login,
    Membership,
    NotLoggedIn,
    Offer,
    Profile,
    Register,
    Seat,
    Unregister,
)
from control.live.presence import PresenceStore

PROFILE = Profile(memberships=(Membership("q_1", 1),))


@pytest.fixture
def presence(redis_client: redis.Redis, prefix: str) -> PresenceStore:
    return PresenceStore(redis_client, prefix=f"{prefix}:presence")


def test_transitions_are_stored_and_logged(presence: PresenceStore) -> None:
    assert presence.get("acc_1", "us_1").status == "offline"
    presence.apply("acc_1", "us_1", Register("dev_1"))
    presence.apply("acc_1", "us_1", Login(), PROFILE)
    step = presence.apply("acc_1", "us_1", Available((Seat("q_1", 0),)), PROFILE)
    assert step.changed and step.after.since == step.at > 0
    agent = presence.get("acc_1", "us_1")
    assert agent == step.after and agent.queues == (Seat("q_1", 1),)
    assert presence.agents("acc_1") == {"us_1": agent}
    # A repeated REGISTER changes nothing: nothing written, nothing logged.
    assert not presence.apply("acc_1", "us_1", Register("dev_1")).changed
    log = presence.log("acc_1")
    assert [(e["event"], e["bucket"]) for e in log] == [
        ("register", "offline"),
        ("login", "paused"),
        ("available", "ready"),
    ]
    assert log[0]["device_id"] == "dev_1" and log[0]["id"] < log[2]["id"]


def test_refused_event_changes_nothing(presence: PresenceStore) -> None:
    with pytest.raises(NotLoggedIn):
        presence.apply("acc_1", "us_2", Available())
    assert presence.agents("acc_1") == {} and presence.log("acc_1") == []


def test_expired_wrap_up_is_closed_and_logged_at_its_end(presence: PresenceStore) -> None:
    presence.apply("acc_1", "us_1", Register("dev_1"))
    presence.apply("acc_1", "us_1", Login(), PROFILE)
    presence.apply("acc_1", "us_1", Available((Seat("q_1", 1),)), PROFILE)
    presence.apply("acc_1", "us_1", Offer("c1", "q_1"))
    presence.apply("acc_1", "us_1", Answer("c1"))
    wrap = presence.apply("acc_1", "us_1", Hangup("c1", wrap_up_sec=0))
    assert wrap.after.state == "waiting"
    # Force a wrap-up that already ran out, then an unrelated event settles it first.
    presence.apply("acc_1", "us_1", Offer("c2", "q_1"))
    presence.apply("acc_1", "us_1", Answer("c2"))
    ended = presence.apply("acc_1", "us_1", Hangup("c2", wrap_up_sec=1))
    until = ended.after.wrap_until
    assert until is not None
    time.sleep(1.05)
    presence.apply("acc_1", "us_1", Register("dev_2"))
    events = [(e["event"], e["ts"]) for e in presence.log("acc_1")[-2:]]
    assert events[0] == ("wrap_done", until) and events[1][0] == "register"
    assert presence.get("acc_1", "us_1").state == "waiting"


def test_concurrent_events_for_one_agent_are_all_applied(presence: PresenceStore) -> None:
    def register(n: int) -> None:
        presence.apply("acc_1", "us_1", Register(f"dev_{n:02d}"))

    threads = [threading.Thread(target=register, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(presence.get("acc_1", "us_1").devices) == 20
    assert len(presence.log("acc_1")) == 20
    for n in range(20):
        presence.apply("acc_1", "us_1", Unregister(f"dev_{n:02d}"))
    assert not presence.get("acc_1", "us_1").reachable


def test_presence_shares_the_account_slot(presence: PresenceStore) -> None:
    slots = {
        key_slot(k.encode()) for k in (presence.agents_key("acc_9"), presence.log_key("acc_9"))
    }
    assert slots == {key_slot(b"acc_9")}
