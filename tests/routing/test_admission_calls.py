"""Admission control on the call path: real Kamailio, Redis and SIPp (SPEC 15)."""

from __future__ import annotations

import time

import pytest

from control.demo import sipp
from control.settings import Settings
from control.stack.ports import free_port
from tests.harness.phones import Phone
from tests.harness.provision import Provisioner, Tenant
from tests.routing.test_calls import proxy, settle

TRUNK_IP = "127.0.0.4"


@pytest.fixture(scope="module")
def prov(stack: Settings) -> Provisioner:
    return Provisioner(stack)


def tenant_with_trunk(prov: Provisioner, name: str, **account: object) -> tuple[Tenant, int]:
    tenant = prov.tenant(name, f"{name.lower()}.example.com", **account)
    port = free_port()
    tenant.make(
        "sip_trunks", {"name": "pstn", "proxy": f"{TRUNK_IP}:{port}", "direction": "outbound"}
    )
    return tenant, port


def caller(tenant: Tenant, username: str) -> Phone:
    device = tenant.user_with_devices(username)["devices"][0]
    return Phone(device["auth_username"], device["password"], tenant.domain)


def settled_out(prov: Provisioner, account_id: str, expected: int, within: float = 3.0) -> int:
    """The account's outbound counter once it reaches ``expected`` (or the last value seen):
    dialog ends are processed by Kamailio a moment after the phones see their 200s."""
    deadline = time.monotonic() + within
    while True:
        value = counters(prov, account_id)["account:out"]
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def counters(prov: Provisioner, account_id: str) -> dict[str, int]:
    status, body = prov.call("GET", f"/v1/cac?account_id={account_id}")
    assert status == 200, body
    return {f"{c['kind']}:{c.get('direction', c.get('id'))}": c["count"] for c in body["counters"]}


def test_max_out_rejects_the_third_simultaneous_call(stack: Settings, prov: Provisioner) -> None:
    tenant, port = tenant_with_trunk(prov, "Capped", max_out=2)
    phone = caller(tenant, "5101")
    settle(stack)
    carrier = sipp.start(sipp.scenario("uas_answer.xml"), None, local_ip=TRUNK_IP, local_port=port,
                         calls=3, timeout=30)  # fmt: skip
    talking = [
        sipp.start(
            sipp.scenario("uac_call_auth_rtp.xml"),
            proxy(stack),
            timeout=20,
            keys={"user": phone.user, "domain": tenant.domain, "dialled": "+4930555000"},
            auth=(phone.user, phone.password),
            extra=["-mp", str(free_port())],
        )
        for _ in range(2)
    ]
    assert settled_out(prov, tenant.id, 2) == 2  # both calls are up and holding their pause
    third = phone.call(proxy(stack), "+4930555001", scenario="uac_call_refused.xml")
    assert third.ok, third.output
    assert "SIP/2.0 503" in third.messages
    assert "Retry-After:" in third.messages
    assert all(t.wait().ok for t in talking)
    assert settled_out(prov, tenant.id, 0) == 0  # released by the dialog end
    fourth = sipp.start(sipp.scenario("uas_answer.xml"), None, local_ip=TRUNK_IP, local_port=port)
    carrier.stop()
    again = phone.call(proxy(stack), "+4930555002")
    assert again.ok, again.output  # a slot was free again
    fourth.wait()
    assert settled_out(prov, tenant.id, 0) == 0


def test_sliding_window_refuses_the_sixth_call(stack: Settings, prov: Provisioner) -> None:
    tenant, port = tenant_with_trunk(prov, "Windowed")
    tenant.make("call_limits", {"scope_kind": "account", "direction": "out", "period_sec": 10,
                                "max_count": 5, "hard": 1})  # fmt: skip
    phone = caller(tenant, "5201")
    settle(stack)
    carrier = sipp.start(sipp.scenario("uas_answer.xml"), None, local_ip=TRUNK_IP, local_port=port,
                         calls=5, timeout=30)  # fmt: skip
    for i in range(5):
        result = phone.call(proxy(stack), f"+493055510{i}")
        assert result.ok, result.output
    sixth = phone.call(proxy(stack), "+4930555109", scenario="uac_call_refused.xml")
    assert sixth.ok, sixth.output
    assert "SIP/2.0 503" in sixth.messages
    from tests.routing.test_calls import call_events, sipp_call_id

    closing = [
        e for e in call_events(stack, sipp_call_id(sixth.messages)) if e["type"] == "call_failed"
    ]
    assert closing and closing[0]["reason"] == "rejected_by_cac"  # the CDR is closed too
    assert carrier.wait().ok
    assert settled_out(prov, tenant.id, 0) == 0
