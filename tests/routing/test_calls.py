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
    assert any("Bob" in v and "<sip:1002@" in v for v in header(answered.messages, "P-Asserted-Identity"))
