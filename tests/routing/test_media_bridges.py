"""The media engine's bridges (X-Sipio-Dial) through real Kamailio + rtpengine, with SIPp
playing the media node on the dispatcher set's address and port."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from control.demo import sipp
from control.settings import Settings
from control.stack.ports import free_port
from tests.harness.phones import first_request_line, header
from tests.harness.provision import Provisioner, Tenant
from tests.routing.test_admission_calls import counters
from tests.routing.test_calls import call_events, proxy, registered, settle, sipp_call_id

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
TRUNK_IP = "127.0.0.9"  # an IP-authenticated trunk of its own


def media_node(stack: Settings) -> tuple[str, int]:
    host, port = stack.media_nodes[0].removeprefix("sip:").rsplit(":", 1)
    return host, int(port)


def bridge(
    stack: Settings, account: str, dial: str, *, port: int | None = None, ip: str | None = None,
    scenario: str = "bridge_call.xml", caller: str = "4917012345", domain: str = "",
) -> sipp.SippResult:  # fmt: skip
    """An INVITE with the platform context, from the media node unless told otherwise."""
    host, node_port = media_node(stack)
    return sipp.run(
        SCENARIOS / scenario, proxy(stack), local_ip=ip or host,
        local_port=node_port if port is None else port, timeout=20,
        keys={"user": caller, "dialled": dial.partition(":")[2], "account": account,
              "dial": dial, "domain": domain or host},
    )  # fmt: skip


def final_code(messages: str) -> int | None:
    codes = [int(line.split()[1]) for line in messages.splitlines()
             if line.startswith("SIP/2.0 ") and not line.startswith("SIP/2.0 1")]  # fmt: skip
    return codes[-1] if codes else None


@pytest.fixture(scope="module")
def prov(stack: Settings) -> Provisioner:
    return Provisioner(stack)


@pytest.fixture(scope="module")
def hooli(prov: Provisioner) -> Tenant:
    return prov.tenant("Hooli", "hooli.example.com")


@pytest.fixture(scope="module")
def piedpiper(prov: Provisioner) -> Tenant:
    return prov.tenant("PiedPiper", "piedpiper.example.com")


def test_a_media_node_bridge_rings_the_users_phone(stack: Settings, hooli: Tenant) -> None:
    user = hooli.user_with_devices("7001", display_name="Agent Seven")
    settle(stack)
    answering = registered(stack, hooli, user).answer()
    result = bridge(stack, hooli.id, f"user:{user['id']}")
    answered = answering.wait()
    assert result.ok, result.output
    assert answered.ok, answered.output
    # The platform context never reaches the callee; the media is anchored on rtpengine.
    assert not [ln for ln in answered.messages.splitlines() if ln.lower().startswith("x-sipio")]
    assert first_request_line(answered.messages, "INVITE") is not None
    invite = answered.messages[answered.messages.index("INVITE ") :]
    port = int(invite.split("m=audio ", 1)[1].split()[0])
    assert stack.rtp_port_min <= port <= stack.rtp_port_max
    assert any("4917012345" in v for v in header(answered.messages, "P-Asserted-Identity"))

    time.sleep(0.3)
    events = call_events(stack, sipp_call_id(result.messages))
    kinds = [e["type"] for e in events]
    assert kinds == ["route", "cac", "call_answered", "call_ended"], kinds
    route = events[0]
    assert route["account_id"] == hooli.id and route["direction"] == "internal"
    assert route["media_node"] == stack.media_nodes[0].removeprefix("sip:")
    assert route["dial"] == f"user:{user['id']}"
    assert route["decision"]["kind"] == "ring"
    assert route["decision"]["target"]["id"] == user["id"]
    assert not any(e["type"] == "auth" for e in events)  # no digest asked of the media node
    assert events[-1]["cause"] == "caller_bye"
    deadline = time.monotonic() + 3
    while (live := counters(hooli.p, hooli.id)) and any(live.values()):
        assert time.monotonic() < deadline, live  # admitted, then released at the BYE
        time.sleep(0.1)


def test_the_same_headers_from_anyone_else_are_challenged(stack: Settings, hooli: Tenant) -> None:
    user = hooli.user_with_devices("7101")
    settle(stack)
    never = registered(stack, hooli, user).ring(timeout=8)
    # Another port of the media node's host (a phone on the same box), and the From in the
    # tenant's domain: the device path asks for a digest, the header buys nothing.
    forged = bridge(stack, hooli.id, f"user:{user['id']}", port=free_port(),
                    scenario="bridge_refused.xml", caller="7101", domain=hooli.domain)  # fmt: skip
    assert forged.ok, forged.output
    assert final_code(forged.messages) == 407
    time.sleep(0.5)
    assert first_request_line(never.stop().messages) is None
    events = call_events(stack, sipp_call_id(forged.messages))
    assert not any(e["type"] == "route" for e in events), events


def test_forged_dial_from_a_trunk_takes_the_trunk_path(
    stack: Settings, prov: Provisioner, hooli: Tenant
) -> None:
    platform = prov.call("GET", "/v1/whoami")[1]["accountId"]
    prov.make("sip_trunks", {"name": "bridge-forger", "inbound_ips": [f"{TRUNK_IP}/32"],
                             "direction": "inbound", "account_id": platform})  # fmt: skip
    user = hooli.user_with_devices("7201")
    settle(stack)
    never = registered(stack, hooli, user).ring(timeout=8)
    forged = bridge(stack, hooli.id, f"user:{user['id']}", ip=TRUNK_IP, port=free_port(TRUNK_IP),
                    scenario="bridge_refused.xml")  # fmt: skip
    assert forged.ok, forged.output
    assert final_code(forged.messages) == 404  # "user:<id>" is no DID
    time.sleep(0.5)
    assert first_request_line(never.stop().messages) is None
    route = next(e for e in call_events(stack, sipp_call_id(forged.messages))
                 if e["type"] == "route")  # fmt: skip
    assert route["direction"] == "inbound" and "media_node" not in route


def test_a_bridge_never_reaches_another_accounts_user(
    stack: Settings, hooli: Tenant, piedpiper: Tenant
) -> None:
    victim = piedpiper.user_with_devices("7301")
    settle(stack)
    never = registered(stack, piedpiper, victim).ring(timeout=8)
    for dial in (f"user:{victim['id']}", "user:7301", "extension:7301"):
        refused = bridge(stack, hooli.id, dial, scenario="bridge_refused.xml")
        assert refused.ok, refused.output
        assert final_code(refused.messages) == 404, (dial, refused.messages[-600:])
        route = next(e for e in call_events(stack, sipp_call_id(refused.messages))
                     if e["type"] == "route")  # fmt: skip
        assert route["decision"]["kind"] == "reject" and route["account_id"] == hooli.id
    time.sleep(0.5)
    assert first_request_line(never.stop().messages) is None


def test_an_authenticated_devices_forged_dial_is_ignored(
    stack: Settings, hooli: Tenant, piedpiper: Tenant
) -> None:
    """Valid credentials and forged context: the call goes where the R-URI says, inside the
    device's own account, and the headers never reach the callee."""
    dialled = hooli.user_with_devices("7401")
    caller = hooli.user_with_devices("7402")
    victim = piedpiper.user_with_devices("7403")
    settle(stack)
    answering = registered(stack, hooli, dialled).answer()
    never = registered(stack, piedpiper, victim).ring(timeout=10)
    device = caller["devices"][0]
    result = sipp.run(
        SCENARIOS / "uac_call_auth_forged.xml", proxy(stack), timeout=20,
        keys={"user": device["auth_username"], "domain": hooli.domain, "dialled": "7401",
              "account": piedpiper.id, "dial": f"user:{victim['id']}"},
        auth=(device["auth_username"], device["password"]),
    )  # fmt: skip
    answered = answering.wait()
    assert result.ok, result.output
    assert answered.ok, answered.output
    assert not [ln for ln in answered.messages.splitlines() if ln.lower().startswith("x-sipio")]
    time.sleep(0.5)
    assert first_request_line(never.stop().messages) is None
    route = next(e for e in call_events(stack, sipp_call_id(result.messages))
                 if e["type"] == "route")  # fmt: skip
    assert route["device_id"] == device["id"] and route["account_id"] == hooli.id
    assert "media_node" not in route and route["decision"]["target"]["id"] == dialled["id"]
