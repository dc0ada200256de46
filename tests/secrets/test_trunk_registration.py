"""Trunks with ``do_register`` register with their carrier from Kamailio: the REGISTER carries
this node's Contact and answers the carrier's challenge with the trunk's username and the
password from the secret store; a carrier that refuses it sees one answer, not a loop."""

from __future__ import annotations

import time

import redis

from control.core.routing.model import Trunk
from control.demo import sipp
from control.settings import Settings
from control.stack.ports import free_port
from kemi.trunk_registration import (
    ANSWER_SEC,
    MIN_EXPIRES,
    RETRY_SEC,
    Registration,
    due,
    outcome,
    registration,
)
from tests.harness.provision import Provisioner
from tests.secrets.leaks import haystacks, leaks
from tests.secrets.test_trunk_auth import CARRIER_IP, SCENARIOS, digest_params, requests

PASSWORDS = {"registering trunk": "Register-Trunk-Pw-8", "carrier's": "Register-Carrier-Pw-9"}


def registered_state(stack: Settings, trunk_id: str, timeout: float = 15) -> dict[str, str]:
    """The trunk's registration state once it has a final outcome."""
    live = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            state: dict[str, str] = live.hgetall(f"sipio:trunkreg:{trunk_id}")  # type: ignore[assignment]
            if state.get("state") in ("registered", "failed") or time.monotonic() > deadline:
                return state
            time.sleep(0.2)
    finally:
        live.close()


def test_a_registering_trunk_registers_with_its_credentials(stack: Settings) -> None:
    password = PASSWORDS["registering trunk"]
    port = free_port(CARRIER_IP)
    registrar = sipp.start(SCENARIOS / "carrier_registrar.xml", None, local_ip=CARRIER_IP,
                           local_port=port, timeout=20,
                           keys={"username": "regco-reg", "password": password})  # fmt: skip
    prov = Provisioner(stack)
    tenant = prov.tenant("Regco", "regco.example.com")
    trunk = tenant.make("sip_trunks", {
        "name": "registering", "proxy": f"{CARRIER_IP}:{port}", "direction": "both",
        "do_register": 1, "realm": "reg.carrier.example", "expire_sec": 600,
        "auth_username": "regco-reg", "auth_password": password})  # fmt: skip
    received = registrar.wait()
    assert received.ok, received.output  # SIPp checked the digest answer and accepted it

    first, second = requests(received.messages, "REGISTER")
    assert first[""].startswith("REGISTER sip:reg.carrier.example SIP/2.0")
    assert f"@{stack.sip_host}:{stack.sip_port}>" in first["contact"]
    assert first["expires"] == "600" and "<sip:regco-reg@reg.carrier.example>" in first["to"]
    assert "authorization" not in first
    creds = digest_params(second["authorization"])
    assert creds["username"] == "regco-reg" and creds["realm"] == "reg.carrier.example"

    state = registered_state(stack, trunk["id"])
    assert state["state"] == "registered" and state["code"] == "200", state
    assert state["node"] == f"{stack.sip_host}:{stack.sip_port}"


def test_a_registration_is_refreshed_at_half_its_expiry(stack: Settings) -> None:
    password = PASSWORDS["registering trunk"]
    port = free_port(CARRIER_IP)
    registrar = sipp.start(SCENARIOS / "carrier_registrar.xml", None, local_ip=CARRIER_IP,
                           local_port=port, timeout=40, calls=2,
                           keys={"username": "refreshco-reg", "password": password})  # fmt: skip
    tenant = Provisioner(stack).tenant("Refreshco", "refreshco.example.com")
    tenant.make("sip_trunks", {
        "name": "registering", "proxy": f"{CARRIER_IP}:{port}", "direction": "both",
        "do_register": 1, "realm": "reg.carrier.example", "expire_sec": MIN_EXPIRES,
        "auth_username": "refreshco-reg", "auth_password": password})  # fmt: skip
    started = time.monotonic()
    received = registrar.wait()
    assert received.ok, received.output  # two registrations, each challenged and accepted
    took = time.monotonic() - started
    sent = requests(received.messages, "REGISTER")
    seen = [(r["call-id"], r["cseq"], "authorization" in r) for r in sent]
    assert len(sent) == 4, seen  # no retransmission taken for a new request
    assert MIN_EXPIRES / 2 <= took < MIN_EXPIRES, took  # refreshed before it ran out
    # Each cycle is a new Call-ID whose answer to the challenge moves the CSeq on.
    (first, cseq1, _), (same, cseq2, auth), (second, _, _), (again, _, _) = seen
    assert first == same and second == again and first != second, seen
    assert int(cseq2.split()[0]) == int(cseq1.split()[0]) + 1 and auth, seen


def test_refused_credentials_are_not_sent_again_and_again(stack: Settings) -> None:
    port = free_port(CARRIER_IP)
    registrar = sipp.start(SCENARIOS / "carrier_registrar.xml", None, local_ip=CARRIER_IP,
                           local_port=port, timeout=20,
                           keys={"username": "refusedco-reg",
                                 "password": PASSWORDS["carrier's"]})  # fmt: skip
    prov = Provisioner(stack)
    tenant = prov.tenant("Refusedco", "refusedco.example.com")
    trunk = tenant.make("sip_trunks", {
        "name": "registering", "proxy": f"{CARRIER_IP}:{port}", "direction": "both",
        "do_register": 1, "realm": "reg.carrier.example",
        "auth_username": "refusedco-reg", "auth_password": PASSWORDS["registering trunk"]})  # fmt: skip
    received = registrar.wait()
    assert received.ok, received.output
    state = registered_state(stack, trunk["id"])
    assert state["state"] == "failed" and state["code"] == "401", state
    # Two REGISTERs in all (one answer to the challenge); the next try waits RETRY_SEC.
    time.sleep(6)  # more than one registration timer tick
    assert len(requests(received.messages, "REGISTER")) == 2
    assert registered_state(stack, trunk["id"])["state"] == "failed"

    places = haystacks(stack) | {"registrar's messages": received.messages.encode()}
    assert leaks(PASSWORDS, places) == []


# -- decisions, without Kamailio -----------------------------------------------------------------
TRUNK = Trunk("tr_9", "acc_1", "carrier", "sip.carrier.example:5080", transport="tcp",
              auth_username="u9", auth_secret_ref="kv:trunk:tr_9:auth_password",
              do_register=True, expire_sec=300)  # fmt: skip


def test_what_a_registering_trunk_sends() -> None:
    reg = registration(TRUNK, "10.0.0.5:5060")
    assert reg == Registration(
        trunk_id="tr_9", ruri="sip:sip.carrier.example", aor="sip:u9@sip.carrier.example",
        proxy="sip:sip.carrier.example:5080;transport=tcp", contact="sip:u9@10.0.0.5:5060",
        expires=300, username="u9", secret_ref="kv:trunk:tr_9:auth_password",
        call_id="trunkreg-tr_9-10.0.0.5-5060",
    )  # fmt: skip
    assert registration(Trunk("tr_1", "acc_1", "c", "h", do_register=False), "n") is None
    assert registration(Trunk("tr_1", "acc_1", "c", "h", do_register=True), "n") is None


def test_when_to_register_again() -> None:
    assert due({}, 1000.0, 300)
    assert not due({"state": "registered", "at": "1000"}, 1149.0, 300)
    assert due({"state": "registered", "at": "1000"}, 1150.0, 300)
    assert not due({"state": "sent", "at": "1000"}, 1000 + ANSWER_SEC - 1, 300)
    assert not due({"state": "failed", "at": "1000"}, 1000 + RETRY_SEC - 1, 300)
    assert due({"state": "failed", "at": "1000"}, 1000 + RETRY_SEC, 300)
    assert outcome({"state": "sent"}, 401) == "challenged"
    assert outcome({"state": "challenged"}, 407) == "failed"
    assert outcome({"state": "challenged"}, 200) == "registered"
    assert outcome({"state": "sent"}, 503) == "failed"
