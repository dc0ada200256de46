"""A flow call end to end through real Kamailio + rtpengine + Redis: a carrier's caller dials a
DID routed to a flow, Kamailio hands it to the media node (the SIP stand-in in ``fs_sip.py``
on the dispatcher set's address, driving the FreeSWITCH ESL peer), the controller runs the
IVR, and its ``dial`` bridges back through Kamailio to a registered SIPp phone."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from control.demo import sipp
from control.settings import Settings
from esl.apps import MediaConfig
from tests.esl.fs_sip import FsSip
from tests.esl.harness import running, static
from tests.esl.peer import Caller, FreeSwitchPeer, Reaction
from tests.harness.phones import first_request_line, header
from tests.harness.provision import Provisioner, Tenant
from tests.routing.test_admission_calls import counters
from tests.routing.test_calls import call_events, proxy, registered, settle, sipp_call_id

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
CARRIER_IP = "127.0.0.10"


def node(node_id: str, kind: str, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": kind, "position": {"x": 0, "y": 0},
            "data": {"kind": kind, **data}}  # fmt: skip


def edge(source: str, target: str, handle: str | None = None) -> dict[str, Any]:
    out = {"id": f"e-{source}-{handle or 'default'}-{target}", "source": source, "target": target}
    if handle:
        out["sourceHandle"] = handle
    return out


def dial_menu(flow_id: str, user_id: str, timeout_sec: int = 15) -> dict[str, Any]:
    """entry → menu ("press 1") → 1: dial the user → answered / not: hang up."""
    return {
        "id": flow_id, "name": "press one for sales", "version": 1, "start": "entry",
        "nodes": [
            node("entry", "entry", trigger="inbound"),
            node("menu", "menu", promptAudioId="media_press_one", maxDigits=1, timeoutSec=5),
            node("sales", "dial", targetKind="user", target=user_id, timeoutSec=timeout_sec),
            node("bye", "hangup", cause="normal_clearing"),
            node("sorry", "hangup", cause="normal_clearing"),
        ],
        "edges": [
            edge("entry", "menu"), edge("menu", "sales", "digit:1"),
            edge("sales", "bye", "answered"), edge("sales", "sorry", "no_answer"),
            edge("sales", "sorry", "busy"), edge("sales", "sorry", "failed"),
        ],
    }  # fmt: skip


@pytest.fixture(scope="module")
def prov(stack: Settings) -> Provisioner:
    return Provisioner(stack)


@pytest.fixture(scope="module")
def carrier(prov: Provisioner) -> str:
    platform = prov.call("GET", "/v1/whoami")[1]["accountId"]
    prov.make("sip_trunks", {"name": "e2e-carrier", "inbound_ips": [f"{CARRIER_IP}/32"],
                             "direction": "inbound", "account_id": platform})  # fmt: skip
    return platform


@pytest.fixture(scope="module")
def umbrella(prov: Provisioner) -> Tenant:
    return prov.tenant("Umbrella", "umbrella.example.com")


def flow_did(tenant: Tenant, e164: str, document: dict[str, Any]) -> dict[str, Any]:
    flow = tenant.make("call_flows", {"name": document["name"], "document": document})
    tenant.make("dids", {"e164": e164, "dest_kind": "flow", "dest_id": flow["id"]})
    return {**document, "id": flow["id"]}


def media_port(stack: Settings) -> int:
    return int(stack.media_nodes[0].rsplit(":", 1)[1])


def caller_call(stack: Settings, dialled: str) -> sipp.SippResult:
    return sipp.run(
        SCENARIOS / "caller_until_bye.xml", proxy(stack), local_ip=CARRIER_IP, timeout=40,
        keys={"user": "4917012345", "domain": "carrier.example", "dialled": dialled},
    )  # fmt: skip


def wait_zero(prov: Provisioner, account_id: str, within: float = 5.0) -> dict[str, int]:
    deadline = time.monotonic() + within
    while True:
        live = counters(prov, account_id)
        if not any(live.values()) or time.monotonic() > deadline:
            return live
        time.sleep(0.1)


def test_ivr_digit_dials_a_user_through_kamailio(
    stack: Settings, carrier: str, umbrella: Tenant
) -> None:
    agent = umbrella.user_with_devices("6001", display_name="Sales Desk")
    flow = flow_did(umbrella, "4930600001", dial_menu("x", agent["id"]))
    settle(stack)
    phone = registered(stack, umbrella, agent)
    answering = sipp.start(SCENARIOS / "uas_answer_hangup.xml", None, local_port=phone.port,
                           timeout=30)  # fmt: skip

    def script(invite: Any) -> Caller:
        return Caller(on={"play_and_get_digits": [Reaction(digits="1")]})

    async def main() -> tuple[sipp.SippResult, FsSip]:
        media = MediaConfig(proxy=proxy(stack))
        async with running(stack.redis_url, static(umbrella.id, flow), media=media) as ctl:
            fs = await FsSip(FreeSwitchPeer(), [ctl.address], script).start(media_port(stack))
            try:
                result = await asyncio.to_thread(caller_call, stack, "+4930600001")
                await fs.wait_idle()
            finally:
                await fs.stop()
            return result, fs

    result, fs = asyncio.run(main())
    answered = answering.wait()
    seen = f"media node saw {fs.log}, ran {[c.record for c in fs.finished]}"
    assert result.ok, result.output + result.messages[-1500:] + seen
    assert answered.ok, answered.output + answered.messages[-1500:] + seen

    # The media node got the call with its context and ran the IVR, then bridged.
    (call,) = fs.finished
    assert call.record is not None
    apps = [app for app, _ in call.record.apps]
    assert apps == ["answer", "play_and_get_digits", "bridge"], apps
    bridge_arg = dict(call.record.apps)["bridge"]
    assert f"sip_h_X-Sipio-Dial=user:{agent['id']}" in bridge_arg
    assert call.record.hung_up_by == "controller"
    (leg,) = call.bridges
    assert leg.answered and leg.responses[-1] == 200 and 180 in leg.responses

    # The phone was rung by Kamailio (not by the media node), with the media anchored.
    invite = first_request_line(answered.messages)
    assert invite is not None and invite.startswith("INVITE sip:6001@")
    assert not [ln for ln in answered.messages.splitlines() if ln.lower().startswith("x-sipio")]
    assert any("4917012345" in v for v in header(answered.messages, "P-Asserted-Identity"))

    # The caller's trace: Kamailio's route to the media node, admission, the flow's steps,
    # and the end of the call, in order, under the caller's Call-ID.
    time.sleep(0.5)
    a_leg = call_events(stack, sipp_call_id(result.messages))
    kinds = [e["type"] for e in a_leg]
    # Kamailio's events and the controller's are written concurrently (the IVR runs in
    # milliseconds here): each source in its order, and the causal order between them.
    proxy_kinds = [k for k in kinds if k != "flow_step"]
    assert proxy_kinds == ["route", "cac", "call_answered", "call_ended"], kinds
    assert kinds.index("flow_step") > kinds.index("cac") and kinds[-1] == "call_ended", kinds
    assert a_leg[-1]["cause"] == "callee_bye"  # the media node hung up on the caller
    assert a_leg[0]["decision"]["kind"] == "media"
    assert a_leg[0]["decision"]["target"]["id"] == flow["id"]
    steps = [(e["node_id"], e["outcome"], e["data"]["step"]) for e in a_leg
             if e["type"] == "flow_step"]  # fmt: skip
    assert kinds.index("call_answered") < len(kinds) - 1 - kinds[::-1].index("flow_step")
    assert steps == [
        ("entry", "default", "node"),
        ("menu", "digit:1", "node"),
        ("sales", "answered", "node"),
        ("bye", None, "end"),
    ], steps
    # The bridge leg: routed from the media node inside the account, answered, ended by
    # the phone.
    b_leg = call_events(stack, sipp_call_id(answered.messages))
    assert [e["type"] for e in b_leg] == ["route", "cac", "call_answered", "call_ended"], b_leg
    assert b_leg[0]["media_node"] == f"127.0.0.1:{media_port(stack)}"
    assert b_leg[0]["account_id"] == umbrella.id and b_leg[0]["decision"]["kind"] == "ring"
    assert b_leg[-1]["cause"] == "callee_bye"
    assert wait_zero(umbrella.p, umbrella.id) == {k: 0 for k in counters(umbrella.p, umbrella.id)}
    assert not any(wait_zero(umbrella.p, carrier).values())


def test_an_unanswered_bridge_is_cancelled_at_its_call_timeout(
    stack: Settings, carrier: str, umbrella: Tenant
) -> None:
    agent = umbrella.user_with_devices("6101")
    flow = flow_did(umbrella, "4930600002", dial_menu("x", agent["id"], timeout_sec=2))
    settle(stack)
    phone = registered(stack, umbrella, agent)
    ringing = phone.ring(timeout=20)

    async def main() -> tuple[sipp.SippResult, FsSip]:
        media = MediaConfig(proxy=proxy(stack))
        script = lambda invite: Caller(on={"play_and_get_digits": [Reaction(digits="1")]})  # noqa: E731
        async with running(stack.redis_url, static(umbrella.id, flow), media=media) as ctl:
            fs = await FsSip(FreeSwitchPeer(), [ctl.address], script).start(media_port(stack))
            try:
                started = time.monotonic()
                result = await asyncio.to_thread(caller_call, stack, "+4930600002")
                fs.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
                await fs.wait_idle()
            finally:
                await fs.stop()
            return result, fs

    result, fs = asyncio.run(main())
    rang = ringing.wait()
    assert result.ok, result.output + result.messages[-1500:]
    assert rang.ok, rang.output  # the phone got the INVITE, then the CANCEL
    (call,) = fs.finished
    (leg,) = call.bridges
    assert not leg.answered and leg.responses[-1] == 487 and leg.cancelling
    time.sleep(0.5)
    a_leg = call_events(stack, sipp_call_id(result.messages))
    steps = [(e["node_id"], e["outcome"]) for e in a_leg if e["type"] == "flow_step"]
    assert steps == [("entry", "default"), ("menu", "digit:1"), ("sales", "no_answer"),
                     ("sorry", None)], steps  # fmt: skip
    assert wait_zero(umbrella.p, umbrella.id) == {k: 0 for k in counters(umbrella.p, umbrella.id)}
