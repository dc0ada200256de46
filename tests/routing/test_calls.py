"""Registration and calls through real Kamailio + KEMI, with SIPp phones and trunks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from control.settings import Settings
from tests.harness.phones import Phone, first_request_line, header
from tests.harness.provision import Provisioner, Tenant


def proxy(stack: Settings) -> str:
    return f"{stack.sip_host}:{stack.sip_port}"


def settle(stack: Settings) -> None:
    """Let every Kamailio worker notice the new config version."""
    time.sleep(stack.config_check_sec * 2 + 0.2)


@pytest.fixture(scope="module")
def prov(stack: Settings) -> Provisioner:
    return Provisioner(stack)


@pytest.fixture(scope="module")
def acme(prov: Provisioner) -> Iterator[Tenant]:
    yield prov.tenant("Acme", "acme.example.com")


def phone(t: Tenant, device: dict[str, object], password: str) -> Phone:
    return Phone(str(device["auth_username"]), password, t.domain)


def test_registration_is_digest_authenticated(stack: Settings, acme: Tenant) -> None:
    user = acme.user_with_devices("3001")
    device = user["devices"][0]
    settle(stack)
    good = phone(acme, device, device["password"]).register(proxy(stack))
    assert good.ok, good.output
    assert "SIP/2.0 401" in good.messages and "SIP/2.0 200" in good.messages
    wrong = Phone(device["auth_username"], "not-the-password", acme.domain).register(proxy(stack))
    assert not wrong.ok
    assert "SIP/2.0 200" not in wrong.messages  # challenged again, never accepted


def test_call_forks_to_every_device_of_the_user(stack: Settings, acme: Tenant) -> None:
    callee = acme.user_with_devices("1001", devices=2, display_name="Alice")
    caller = acme.user_with_devices("1002", display_name="Bob")
    settle(stack)
    desk = phone(acme, callee["devices"][0], callee["devices"][0]["password"])
    soft = phone(acme, callee["devices"][1], callee["devices"][1]["password"])
    for p in (desk, soft):
        assert p.register(proxy(stack)).ok
    answering, ringing = desk.answer(), soft.ring()
    bob = phone(acme, caller["devices"][0], caller["devices"][0]["password"])
    result = bob.call(proxy(stack), "1001")
    answered, rang = answering.wait(), ringing.wait()
    assert result.ok, result.output
    assert answered.ok, answered.output
    assert rang.ok, rang.output  # got the INVITE, then the CANCEL when the desk answered
    assert first_request_line(rang.messages) is not None
    assert any(
        "Bob" in v and "<sip:1002@" in v for v in header(answered.messages, "P-Asserted-Identity")
    )


def registered(stack: Settings, t: Tenant, user: dict[str, object], index: int = 0) -> Phone:
    device = user["devices"][index]  # type: ignore[index]
    p = phone(t, device, device["password"])
    result = p.register(proxy(stack))
    assert result.ok, result.output
    return p


def caller_of(stack: Settings, t: Tenant, username: str) -> Phone:
    user = t.user_with_devices(username)
    settle(stack)
    return registered(stack, t, user)


def test_sequential_strategy_rings_in_ring_order(stack: Settings, acme: Tenant) -> None:
    callee = acme.user_with_devices(
        "1101", devices=2, ring_strategy="sequential", ring_timeout_sec=2
    )
    caller = caller_of(stack, acme, "1102")
    first, second = registered(stack, acme, callee, 0), registered(stack, acme, callee, 1)
    ringing, answering = first.ring(), second.answer()
    started = time.monotonic()
    result = caller.call(proxy(stack), "1101")
    rang, answered = ringing.wait(), answering.wait()
    assert result.ok, result.output
    assert rang.ok and answered.ok, rang.output + answered.output
    # ring_order 0 rang alone for its ring_timeout_sec before ring_order 1 got the call.
    assert time.monotonic() - started >= 2.0


def test_dnd_goes_to_fwd_busy(stack: Settings, acme: Tenant) -> None:
    target = acme.user_with_devices("1201")
    acme.user_with_devices("1202", dnd=1, fwd_busy_kind="user", fwd_busy_id=target["id"])
    caller = caller_of(stack, acme, "1203")
    answering = registered(stack, acme, target).answer()
    result = caller.call(proxy(stack), "1202")
    assert result.ok, result.output
    assert answering.wait().ok


def test_forward_always_skips_the_user(stack: Settings, acme: Tenant) -> None:
    target = acme.user_with_devices("1301")
    forwarded = acme.user_with_devices("1302", fwd_always_kind="user", fwd_always_id=target["id"])
    caller = caller_of(stack, acme, "1303")
    never = registered(stack, acme, forwarded).ring(timeout=6)
    answering = registered(stack, acme, target).answer()
    result = caller.call(proxy(stack), "1302")
    assert result.ok, result.output
    assert answering.wait().ok
    assert first_request_line(never.stop().messages) is None  # nothing rang


def test_no_answer_goes_to_fwd_noanswer(stack: Settings, acme: Tenant) -> None:
    target = acme.user_with_devices("1401")
    slow = acme.user_with_devices(
        "1402", ring_timeout_sec=2, fwd_noanswer_kind="user", fwd_noanswer_id=target["id"]
    )
    caller = caller_of(stack, acme, "1403")
    ringing = registered(stack, acme, slow).ring()
    answering = registered(stack, acme, target).answer()
    result = caller.call(proxy(stack), "1402")
    assert result.ok, result.output
    assert ringing.wait().ok and answering.wait().ok


def test_dnd_without_fallback_is_busy(stack: Settings, acme: Tenant) -> None:
    acme.user_with_devices("1501", dnd=1)
    caller = caller_of(stack, acme, "1502")
    result = caller.call(proxy(stack), "1501", scenario="uac_call_refused.xml")
    assert result.ok, result.output
    assert "SIP/2.0 486 Busy Here" in result.messages


def test_extension_to_ring_group_rings_members(stack: Settings, acme: Tenant) -> None:
    a = acme.user_with_devices("1601")
    b = acme.user_with_devices("1602")
    group = acme.make("ring_groups", {"name": "front desk", "strategy": "ring_all"})
    for member in (a, b):
        acme.make("ring_group_members", {"ring_group_id": group["id"], "user_id": member["id"]})
    acme.make("extensions", {"digits": "600", "dest_kind": "ring_group", "dest_id": group["id"]})
    caller = caller_of(stack, acme, "1603")
    answering, ringing = registered(stack, acme, a).answer(), registered(stack, acme, b).ring()
    result = caller.call(proxy(stack), "600")
    assert result.ok, result.output
    assert answering.wait().ok and ringing.wait().ok


def test_unknown_extension_is_404(stack: Settings, acme: Tenant) -> None:
    caller = caller_of(stack, acme, "1701")
    result = caller.call(proxy(stack), "999", scenario="uac_call_refused.xml")
    assert result.ok, result.output
    assert "SIP/2.0 404 Not Found" in result.messages


def test_disabled_device_cannot_register(stack: Settings, acme: Tenant, prov: Provisioner) -> None:
    user = acme.user_with_devices("1801")
    device = user["devices"][0]
    prov.patch("sip_devices", device["id"], {"status": "disabled"})
    settle(stack)
    result = phone(acme, device, device["password"]).register(proxy(stack))
    assert not result.ok
    assert "SIP/2.0 403 Forbidden" in result.messages


def test_sequential_ring_group_stops_at_its_overall_time(stack: Settings, acme: Tenant) -> None:
    a, b, exit_user = (acme.user_with_devices(u) for u in ("1901", "1902", "1903"))
    group = acme.make("ring_groups", {"name": "hunt", "strategy": "sequential",
                                      "ring_timeout_sec": 4, "exit_dest_kind": "user",
                                      "exit_dest_id": exit_user["id"]})  # fmt: skip
    for position, member in enumerate((a, b)):
        acme.make("ring_group_members", {"ring_group_id": group["id"], "user_id": member["id"],
                                         "position": position, "timeout_sec": 3})  # fmt: skip
    acme.make("extensions", {"digits": "690", "dest_kind": "ring_group", "dest_id": group["id"]})
    caller = caller_of(stack, acme, "1904")
    first, second = registered(stack, acme, a).ring(), registered(stack, acme, b).ring()
    answering = registered(stack, acme, exit_user).answer()
    started = time.monotonic()
    result = caller.call(proxy(stack), "690")
    assert result.ok, result.output
    assert first.wait().ok and second.wait().ok and answering.wait().ok
    # 3 s on the first member, then only the 1 s left of the group's 4 s on the second.
    assert 3.5 < time.monotonic() - started < 6.5


def test_registrations_are_published_for_presence(stack: Settings, acme: Tenant) -> None:
    import json

    import redis

    user = acme.user_with_devices("1951")
    settle(stack)
    client = redis.Redis.from_url(stack.redis_url)
    last = client.xrevrange("sipio:events", count=1)
    since = last[0][0] if last else "0-0"
    p = registered(stack, acme, user)
    unreg = p.register(proxy(stack), expires=0)
    assert unreg.ok, unreg.output
    events = [
        json.loads(fields[b"e"])
        for _, fields in client.xrange(
            "sipio:events", min=f"({since.decode() if isinstance(since, bytes) else since}"
        )
    ]
    mine = [e for e in events if e.get("device_id") == user["devices"][0]["id"]]
    assert [e["type"] for e in mine] == ["register", "unregister"]
    assert mine[0]["account_id"] == acme.id and mine[0]["user_id"] == user["id"]


def test_ring_all_members_with_a_delay_start_late(stack: Settings, acme: Tenant) -> None:
    early, late = acme.user_with_devices("1961"), acme.user_with_devices("1962")
    group = acme.make("ring_groups", {"name": "staggered", "strategy": "ring_all"})
    acme.make("ring_group_members", {"ring_group_id": group["id"], "user_id": early["id"]})
    acme.make("ring_group_members", {"ring_group_id": group["id"], "user_id": late["id"],
                                     "delay_sec": 2})  # fmt: skip
    acme.make("extensions", {"digits": "691", "dest_kind": "ring_group", "dest_id": group["id"]})
    caller = caller_of(stack, acme, "1963")
    ringing = registered(stack, acme, early).ring()
    answering = registered(stack, acme, late).answer()
    started = time.monotonic()
    result = caller.call(proxy(stack), "691")
    assert result.ok, result.output
    rang, answered = ringing.wait(), answering.wait()
    assert rang.ok and answered.ok, rang.output + answered.output
    # The late member only rang after its 2 s delay, while the early one already rang.
    assert time.monotonic() - started >= 2.0
    assert first_request_line(rang.messages) is not None


def test_a_delayed_leg_is_dropped_when_another_answers_first(stack: Settings, acme: Tenant) -> None:
    quick, slow = acme.user_with_devices("1971"), acme.user_with_devices("1972")
    group = acme.make("ring_groups", {"name": "staggered2", "strategy": "ring_all"})
    acme.make("ring_group_members", {"ring_group_id": group["id"], "user_id": quick["id"]})
    acme.make("ring_group_members", {"ring_group_id": group["id"], "user_id": slow["id"],
                                     "delay_sec": 4})  # fmt: skip
    acme.make("extensions", {"digits": "692", "dest_kind": "ring_group", "dest_id": group["id"]})
    caller = caller_of(stack, acme, "1973")
    answering = registered(stack, acme, quick).answer()
    never = registered(stack, acme, slow).ring(timeout=8)
    result = caller.call(proxy(stack), "692")
    assert result.ok, result.output
    assert answering.wait().ok
    time.sleep(4.5)  # past the delay: the held leg must not ring now
    assert first_request_line(never.stop().messages) is None


def call_events(stack: Settings, call_id: str) -> list[dict[str, object]]:
    import json

    import redis

    client = redis.Redis.from_url(stack.redis_url)
    events = [json.loads(f[b"e"]) for _, f in client.xrange("sipio:events")]
    return [e for e in events if e.get("call_id") == call_id]


def sipp_call_id(messages: str) -> str:
    return next(
        line.split(":", 1)[1].strip()
        for line in messages.splitlines()
        if line.startswith("Call-ID:")
    )


def test_dialog_events_close_every_call(stack: Settings, acme: Tenant) -> None:
    callee = acme.user_with_devices("1981")
    acme.user_with_devices("1982", dnd=1)
    caller = caller_of(stack, acme, "1983")
    answering = registered(stack, acme, callee).answer()
    answered = caller.call(proxy(stack), "1981")
    assert answered.ok and answering.wait().ok
    time.sleep(0.3)
    kinds = [e["type"] for e in call_events(stack, sipp_call_id(answered.messages))]
    assert kinds[-4:] == ["route", "cac", "call_answered", "call_ended"], kinds
    route = next(
        e for e in call_events(stack, sipp_call_id(answered.messages)) if e["type"] == "route"
    )
    assert (route["direction"], route["from"], route["to"]) == ("internal", "1983", "1981")
    ended = call_events(stack, sipp_call_id(answered.messages))[-1]
    assert ended["cause"] == "caller_bye" and ended["account_id"] == acme.id

    refused = caller.call(proxy(stack), "1982", scenario="uac_call_refused.xml")
    assert refused.ok
    time.sleep(0.3)
    kinds = [e["type"] for e in call_events(stack, sipp_call_id(refused.messages))]
    assert "route" in kinds and "call_answered" not in kinds


def test_suspended_account_cannot_register(stack: Settings, prov: Provisioner) -> None:
    tenant = prov.tenant("Suspended", "suspended.example.com")
    user = tenant.user_with_devices("4001")
    device = user["devices"][0]
    settle(stack)
    assert phone(tenant, device, device["password"]).register(proxy(stack)).ok
    prov.patch("accounts", tenant.id, {"status": "suspended"})
    settle(stack)
    result = phone(tenant, device, device["password"]).register(proxy(stack))
    assert not result.ok
    assert "SIP/2.0 403 Forbidden" in result.messages


def test_agent_reachability_follows_registration(
    stack: Settings, acme: Tenant, prov: Provisioner
) -> None:
    agent = acme.user_with_devices("1991", is_agent=1)

    def reachable() -> bool | None:
        status, body = prov.call("GET", f"/v1/agents?userId={agent['id']}")
        assert status == 200, body
        return body["items"][0]["reachable"] if body["items"] else None

    def wait_for(expected: bool) -> bool:
        deadline = time.monotonic() + 5
        while reachable() is not expected and time.monotonic() < deadline:
            time.sleep(0.2)
        return reachable() is expected

    settle(stack)
    assert reachable() is False
    p = registered(stack, acme, agent)
    assert wait_for(True)
    assert p.register(proxy(stack), expires=0).ok
    assert wait_for(False)
