"""Calls that cross the platform edge: carriers delivering DIDs, devices calling the PSTN,
media-engine targets, and tenant isolation on the call path."""

from __future__ import annotations

import time

import pytest

from control.demo import sipp
from control.settings import Settings
from control.stack.ports import free_port
from tests.harness.phones import Phone, first_request_line, header, trunk_call
from tests.harness.provision import Provisioner, Tenant
from tests.routing.test_calls import proxy, registered, settle

CARRIER_IP = "127.0.0.2"  # the carrier's signalling address (IP-authenticated trunk)
PBX_IP = "127.0.0.3"  # where an outbound trunk's SIP server listens


@pytest.fixture(scope="module")
def prov(stack: Settings) -> Provisioner:
    return Provisioner(stack)


@pytest.fixture(scope="module")
def carrier(prov: Provisioner) -> str:
    """The platform's carrier trunk: inbound from CARRIER_IP for every DID."""
    platform = prov.call("GET", "/v1/whoami")[1]["accountId"]
    prov.make("sip_trunks", {"name": "carrier", "inbound_ips": [f"{CARRIER_IP}/32"],
                             "direction": "inbound", "account_id": platform})  # fmt: skip
    return platform


@pytest.fixture(scope="module")
def globex(prov: Provisioner) -> Tenant:
    return prov.tenant("Globex", "globex.example.com", default_cid_number="4930900000")


@pytest.fixture(scope="module")
def initech(prov: Provisioner) -> Tenant:
    return prov.tenant("Initech", "initech.example.com")


def test_did_to_user_from_the_carrier(stack: Settings, carrier: str, globex: Tenant) -> None:
    user = globex.user_with_devices("2001")
    globex.make("dids", {"e164": "4930111001", "dest_kind": "user", "dest_id": user["id"]})
    settle(stack)
    answering = registered(stack, globex, user).answer()
    result = trunk_call(proxy(stack), CARRIER_IP, "4917012345", "+4930111001", "carrier.example")
    answered = answering.wait()
    assert result.ok, result.output
    assert answered.ok, answered.output
    assert "sip:4917012345@" in first_request_line(answered.messages) or any(
        "4917012345" in v for v in header(answered.messages, "From")
    )


def test_did_to_ring_group(stack: Settings, carrier: str, globex: Tenant) -> None:
    a, b = globex.user_with_devices("2101"), globex.user_with_devices("2102")
    group = globex.make("ring_groups", {"name": "sales", "strategy": "ring_all"})
    for member in (a, b):
        globex.make("ring_group_members", {"ring_group_id": group["id"], "user_id": member["id"]})
    globex.make("dids", {"e164": "4930111002", "dest_kind": "ring_group", "dest_id": group["id"]})
    settle(stack)
    ringing, answering = registered(stack, globex, a).ring(), registered(stack, globex, b).answer()
    result = trunk_call(proxy(stack), CARRIER_IP, "4917012345", "4930111002", "carrier.example")
    assert result.ok, result.output
    assert answering.wait().ok and ringing.wait().ok


def test_closed_did_lands_on_its_closed_target(
    stack: Settings, carrier: str, globex: Tenant
) -> None:
    day_user, night_user = globex.user_with_devices("2201"), globex.user_with_devices("2202")
    never_open = globex.make(
        "time_schedules",
        {
            "name": "always closed",
            "rules": [
                {
                    "kind": "date_range",
                    "start_date": "2000-01-01",
                    "end_date": "2999-12-31",
                    "is_closed": 1,
                }
            ],
        },
    )
    globex.make("dids", {
        "e164": "4930111003", "dest_kind": "user", "dest_id": day_user["id"],
        "schedule_id": never_open["id"], "closed_dest_kind": "user", "closed_dest_id": night_user["id"],
    })  # fmt: skip
    settle(stack)
    never = registered(stack, globex, day_user).ring(timeout=8)
    answering = registered(stack, globex, night_user).answer()
    result = trunk_call(proxy(stack), CARRIER_IP, "4917012345", "4930111003", "carrier.example")
    assert result.ok, result.output
    assert answering.wait().ok
    assert first_request_line(never.stop().messages) is None


def test_outbound_call_reaches_the_trunk_with_the_right_caller_id(
    stack: Settings, globex: Tenant
) -> None:
    port = free_port()
    globex.make("sip_trunks", {"name": "byoc", "proxy": f"{PBX_IP}:{port}", "direction": "outbound",
                               "cid_number": "4930555000"})  # fmt: skip
    user = globex.user_with_devices(
        "2301", out_cid_number="4930123456", out_cid_name="Globex Sales"
    )
    settle(stack)
    trunk = sipp.start(sipp.scenario("uas_answer.xml"), None, local_ip=PBX_IP, local_port=port)
    caller = registered(stack, globex, user)
    result = caller.call(proxy(stack), "+15550109999")
    received = trunk.wait()
    assert result.ok, result.output
    assert received.ok, received.output
    assert first_request_line(received.messages).startswith("INVITE sip:15550109999@")
    assert any("sip:4930123456@" in v for v in header(received.messages, "P-Asserted-Identity"))
    assert any("4930123456" in v for v in header(received.messages, "From"))
    # Media is anchored on rtpengine for trunk calls too.
    from tests.routing.test_media_anchor import media_lines

    _, port = media_lines(received.messages, "INVITE ")
    assert stack.rtp_port_min <= port <= stack.rtp_port_max
    # The caller's own dialog keeps its From (uac restores it on the way back).
    assert all("4930123456" not in v for v in header(result.messages, "From"))


def test_media_targets_go_to_a_media_node_with_context(
    stack: Settings, carrier: str, globex: Tenant
) -> None:
    flow = globex.make("call_flows", {"name": "ivr", "document": {
        "id": "x", "name": "ivr", "version": 1, "start": "e",
        "nodes": [{"id": "e", "type": "entry", "position": {"x": 0, "y": 0}, "data": {"kind": "entry"}}],
        "edges": []}})  # fmt: skip
    globex.make("dids", {"e164": "4930111004", "dest_kind": "flow", "dest_id": flow["id"],
                         "dest_xform": {"lang": "de-DE"}})  # fmt: skip
    settle(stack)
    node = stack.media_nodes[0].removeprefix("sip:")
    host, port = node.rsplit(":", 1)
    freeswitch = sipp.start(
        sipp.scenario("uas_answer.xml"), None, local_ip=host, local_port=int(port)
    )
    # A forged context header from outside must not survive.
    result = trunk_call(proxy(stack), CARRIER_IP, "4917012345", "4930111004", "carrier.example")
    received = freeswitch.wait()
    assert result.ok, result.output
    assert received.ok, received.output
    assert header(received.messages, "X-Sipio-Account") == [globex.id]
    assert header(received.messages, "X-Sipio-Target") == [f"flow:{flow['id']}"]
    assert '"lang":"de-DE"' in header(received.messages, "X-Sipio-Vars")[0]
    assert not [line for line in result.messages.splitlines() if line.lower().startswith("x-sipio")]


def test_a_tenant_never_reaches_another_tenants_users_or_extensions(
    stack: Settings, globex: Tenant, initech: Tenant
) -> None:
    secret = initech.user_with_devices("2401")
    group = initech.make("ring_groups", {"name": "ops"})
    initech.make("ring_group_members", {"ring_group_id": group["id"], "user_id": secret["id"]})
    initech.make("extensions", {"digits": "777", "dest_kind": "ring_group", "dest_id": group["id"]})
    intruder = globex.user_with_devices("2402")
    settle(stack)
    victim = registered(stack, initech, secret).ring(timeout=10)
    caller = registered(stack, globex, intruder)
    for dialled in ("2401", "777", "2401@initech.example.com"):
        result = caller.call(proxy(stack), dialled.split("@")[0], scenario="uac_call_refused.xml")
        assert result.ok, result.output
        assert "SIP/2.0 404 Not Found" in result.messages
    # Spoofing the other tenant's domain does not help: the realm is Initech's, the
    # credentials are Globex's, so the digest fails and the call is never routed.
    spoof = Phone(caller.user, caller.password, initech.domain, port=caller.port)
    refused = spoof.call(proxy(stack), "2401")
    assert not refused.ok
    time.sleep(0.5)
    assert first_request_line(victim.stop().messages) is None
