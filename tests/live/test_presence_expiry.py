"""A phone that stops refreshing its registration: Kamailio's usrloc timer finds it expired,
KEMI publishes an ``unregister`` with ``reason: expired``, and the stack's presence feed (in
the reconciler process) turns the agent unreachable. Real Kamailio, SIPp and Redis, on a stack
of the test's own whose registrar accepts 2 s registrations and checks every second."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from control.live.feed import STREAM, PresenceFeed
from control.live.presence import PresenceStore
from control.settings import Settings
from control.stack import supervisor
from tests.conftest import free_settings
from tests.harness.phones import Phone
from tests.harness.provision import Provisioner
from tests.harness.redis_server import OwnRedis
from tests.routing.test_calls import proxy, settle

SHORT = 2  # seconds of the registration that is never refreshed


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = free_settings(
        Path(tmp_path_factory.mktemp("expiry")),
        registration_min_expires=1,
        registration_check_sec=1,
    )
    supervisor.up(settings)
    try:
        yield settings
    finally:
        supervisor.down(settings.state_dir)


def phone_of(user: dict[str, object], domain: str) -> Phone:
    device = user["devices"][0]  # type: ignore[index]
    return Phone(device["auth_username"], device["password"], domain)


def reachable_until(
    store: PresenceStore, account: str, user: str, want: bool, within: float
) -> float:
    """Seconds until the agent's ``reachable`` is ``want`` (fails after ``within``)."""
    started = time.monotonic()
    while store.get(account, user).reachable != want:
        assert time.monotonic() - started < within, f"{user} still reachable={not want}"
        time.sleep(0.1)
    return time.monotonic() - started


def test_an_expired_registration_makes_the_agent_unreachable(short_lived: Settings) -> None:
    stack = short_lived
    tenant = Provisioner(stack).tenant("Expiry", "expiry.example.com")
    lapsing = tenant.user_with_devices("7001", is_agent=1)
    steady = tenant.user_with_devices("7002", is_agent=1)
    settle(stack)
    client = redis.Redis.from_url(stack.redis_url)
    presence = PresenceStore(client)

    assert phone_of(steady, tenant.domain).register(proxy(stack), expires=300).ok
    registered_at = time.monotonic()
    result = phone_of(lapsing, tenant.domain).register(proxy(stack), expires=SHORT)
    assert result.ok, result.output
    assert "expires=2" in result.messages.rsplit("SIP/2.0 200", 1)[1]  # granted as asked
    reachable_until(presence, tenant.id, lapsing["id"], True, within=5)
    reachable_until(presence, tenant.id, steady["id"], True, within=5)

    # Never refreshed: expiry (2 s) + usrloc timer (1 s) + the feed's read (1 s), with margin.
    reachable_until(presence, tenant.id, lapsing["id"], False, within=SHORT + 6)
    lapsed_after = time.monotonic() - registered_at
    # Not before the registration ran out: usrloc keeps expiry in whole seconds of its clock,
    # so a contact registered late in a second lapses up to 1 s early by ours.
    assert lapsed_after >= SHORT - 1.0
    assert presence.get(tenant.id, steady["id"]).reachable  # the other agent is untouched

    events = [json.loads(f[b"e"]) for _, f in client.xrange("sipio:events")]
    expired = [e for e in events if e["type"] == "unregister" and e.get("reason") == "expired"]
    device = lapsing["devices"][0]["id"]
    assert [(e["account_id"], e["user_id"], e["device_id"]) for e in expired] == [
        (tenant.id, lapsing["id"], device)
    ]
    register_call_id = result.messages.split("Call-ID:", 1)[1].split()[0]
    assert expired[0]["call_id"] == register_call_id  # the registration's, for correlation
    last = presence.log(tenant.id)[-1]
    assert (last["user_id"], last["event"], last["device_id"]) == (lapsing["id"], "expire", device)
    assert last["reachable"] is False
    print(f"unreachable {lapsed_after:.2f} s after a {SHORT} s registration")
    client.close()


def test_the_feed_follows_redis_restarting_empty(own_redis: OwnRedis) -> None:
    """Its consumer group vanishes with the data; the feed joins again and reads everything
    published since the restart, so reachability keeps following the phones."""
    client = redis.Redis.from_url(own_redis.url)
    feed = PresenceFeed(client)
    presence = PresenceStore(client)

    def publish(kind: str, **extra: str) -> None:
        event = {"type": kind, "account_id": "acc_r", "user_id": "us_r", "device_id": "dev_r"}
        client.xadd(STREAM, {"e": json.dumps(event | extra)})

    publish("register")
    assert feed.run_once(block_ms=100) == 1
    assert presence.get("acc_r", "us_r").reachable

    own_redis.stop()
    with pytest.raises(redis.ConnectionError):
        feed.run_once(block_ms=100)  # the reconciler's loop logs it and carries on
    own_redis.start()
    publish("register")  # Kamailio writes first: the stream exists, the group does not
    publish("unregister", reason="expired")
    assert feed.run_once(block_ms=100) == 2
    assert not presence.get("acc_r", "us_r").reachable
    assert [e["event"] for e in presence.log("acc_r")] == ["register", "expire"]
    client.close()
