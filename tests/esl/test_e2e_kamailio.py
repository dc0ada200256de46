"""A flow call end to end through real Kamailio + rtpengine + Redis: a carrier's caller dials a
DID routed to a flow, Kamailio hands it to the media node (the SIP stand-in in ``fs_sip.py``
on the dispatcher set's address, driving the FreeSWITCH ESL peer), the controller runs the
IVR, and its ``dial`` bridges back through Kamailio to a registered SIPp phone."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from control.core.acd import QueueConfig
from control.db.engine import make_engine
from control.demo import sipp
from control.live.acd import AcdStore
from control.settings import Settings
from control.stack.ports import free_port
from esl.apps import MediaConfig
from esl.callbacks import CallbackDialer, CallbackPolicy
from esl.queues_source import SqlQueueSource
from tests.esl.fs_inbound import InboundFreeSwitch
from tests.esl.fs_sip import FsSip, SipOriginator
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


@pytest.fixture(autouse=True)
def kept_events(stack: Settings) -> Iterator[None]:
    """The stack's collector trims ``sipio:events`` once every consumer group has read it; a
    group of our own that reads nothing keeps this test's events until it is gone."""
    client = redis.Redis.from_url(stack.redis_url)
    group = f"e2e-{uuidlib.uuid4().hex[:8]}"
    client.xgroup_create("sipio:events", group, id="$", mkstream=True)
    try:
        yield
    finally:
        client.xgroup_destroy("sipio:events", group)
        client.close()


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


def caller_call(
    stack: Settings, dialled: str, scenario: str = "caller_until_bye.xml"
) -> sipp.SippResult:
    return sipp.run(
        SCENARIOS / scenario, proxy(stack), local_ip=CARRIER_IP, timeout=40,
        keys={"user": "4917012345", "domain": "carrier.example", "dialled": dialled},
    )  # fmt: skip


def press(*keys: str) -> Any:
    """The caller's keys, one menu after the other (what FreeSWITCH's DTMF detection got)."""
    return lambda invite: Caller(on={"play_and_get_digits": [Reaction(digits=k) for k in keys]})


def flow_call(
    stack: Settings, tenant: Tenant, flow: dict[str, Any], dialled: str,
    scenario: str = "caller_until_bye.xml",
) -> tuple[sipp.SippResult, FsSip]:  # fmt: skip
    """One carrier call into a flow run by an in-process controller, the media node on the
    dispatcher set's port; returns once the media node has finished the call."""

    async def main() -> tuple[sipp.SippResult, FsSip]:
        media = MediaConfig(proxy=proxy(stack))
        async with running(stack.redis_url, static(tenant.id, flow), media=media) as ctl:
            fs = await FsSip(FreeSwitchPeer(), [ctl.address], press("1")).start(media_port(stack))
            try:
                result = await asyncio.to_thread(caller_call, stack, dialled, scenario)
                await fs.wait_idle()
            finally:
                await fs.stop()
            return result, fs

    return asyncio.run(main())


def queue_call(
    stack: Settings, controllers: list[tuple[str, int]], did: str
) -> tuple[sipp.SippResult, FsSip]:
    """One carrier call to a queue's DID, the media node handing it to controller processes;
    returns once the media node has finished the call."""

    async def main() -> tuple[sipp.SippResult, FsSip]:
        fs = await FsSip(FreeSwitchPeer(), controllers).start(media_port(stack))
        try:
            result = await asyncio.to_thread(caller_call, stack, "+" + did)
            await fs.wait_idle(20)
        finally:
            await fs.stop()
        return result, fs

    return asyncio.run(main())


def flow_steps(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["node_id"], e["outcome"]) for e in events if e["type"] == "flow_step"]


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

    result, fs = flow_call(stack, umbrella, flow, "+4930600001")
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

    started = time.monotonic()
    result, fs = flow_call(stack, umbrella, flow, "+4930600002")
    elapsed = time.monotonic() - started
    rang = ringing.wait()
    assert result.ok, result.output + result.messages[-1500:]
    assert rang.ok, rang.output  # the phone got the INVITE, then the CANCEL
    (call,) = fs.finished
    (leg,) = call.bridges
    assert not leg.answered and leg.responses[-1] == 487 and leg.cancelling
    assert 2.0 <= elapsed < 10  # rung for the dial's 2 s, then the flow hung up
    time.sleep(0.5)
    a_leg = call_events(stack, sipp_call_id(result.messages))
    steps = [(e["node_id"], e["outcome"]) for e in a_leg if e["type"] == "flow_step"]
    assert steps == [("entry", "default"), ("menu", "digit:1"), ("sales", "no_answer"),
                     ("sorry", None)], steps  # fmt: skip
    assert wait_zero(umbrella.p, umbrella.id) == {k: 0 for k in counters(umbrella.p, umbrella.id)}


def test_a_busy_callee_is_busy_to_the_flow(stack: Settings, carrier: str, umbrella: Tenant) -> None:
    agent = umbrella.user_with_devices("6501", dnd=1)  # DND, no fallback: Kamailio says 486
    flow = flow_did(umbrella, "4930600003", dial_menu("x", agent["id"]))
    settle(stack)
    result, fs = flow_call(stack, umbrella, flow, "+4930600003")
    assert result.ok, result.output + str(fs.log)
    (call,) = fs.finished
    (leg,) = call.bridges
    assert leg.responses[-1] == 486 and not leg.answered
    assert ("out", "ACK " + leg.invite.uri + " SIP/2.0") in fs.log  # the 486 acknowledged
    time.sleep(0.3)
    steps = flow_steps(call_events(stack, sipp_call_id(result.messages)))
    assert steps == [("entry", "default"), ("menu", "digit:1"), ("sales", "busy"),
                     ("sorry", None)], steps  # fmt: skip
    assert wait_zero(umbrella.p, umbrella.id) == {k: 0 for k in counters(umbrella.p, umbrella.id)}


def test_the_callers_bye_during_the_bridge_hangs_up_the_callee(
    stack: Settings, carrier: str, umbrella: Tenant
) -> None:
    agent = umbrella.user_with_devices("6601")
    flow = flow_did(umbrella, "4930600004", dial_menu("x", agent["id"]))
    settle(stack)
    phone = registered(stack, umbrella, agent)
    answering = phone.answer(timeout=30)  # answers, then waits for the BYE
    result, fs = flow_call(stack, umbrella, flow, "+4930600004", "caller_hangs_up.xml")
    answered = answering.wait()
    assert result.ok, result.output + str(fs.log)
    assert answered.ok, answered.output + str(fs.log)  # it got its BYE
    (call,) = fs.finished
    assert call.record is not None and call.record.hung_up_by == "caller"
    assert call.dialog.ended_by == "remote"
    (leg,) = call.bridges
    assert leg.answered and leg.dialog.ended_by == "local"
    time.sleep(0.3)
    a_leg = call_events(stack, sipp_call_id(result.messages))
    # The caller's BYE passes Kamailio before the controller hears of it: the flow's last
    # step may come after call_ended.
    (ended,) = [e for e in a_leg if e["type"] == "call_ended"]
    assert ended["cause"] == "caller_bye"
    assert flow_steps(a_leg)[-1] == ("sales", "hangup"), flow_steps(a_leg)
    b_leg = call_events(stack, sipp_call_id(answered.messages))
    assert b_leg[-1]["type"] == "call_ended" and b_leg[-1]["cause"] == "caller_bye"
    assert wait_zero(umbrella.p, umbrella.id) == {k: 0 for k in counters(umbrella.p, umbrella.id)}


# --- queues: the ACD offering agents through Kamailio (sipio esl-controller processes) -----------


@dataclass
class Controllers:
    """``sipio esl-controller`` processes on the dialplan's ``socket`` list (failover order)."""

    stack: Settings
    media_root: Path
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    def start(self, node: str) -> subprocess.Popen[str]:
        port = free_port(udp=False)
        sipio = Path(sys.executable).parent / "sipio"
        process = subprocess.Popen(
            [str(sipio), "esl-controller", "--state-dir", str(self.stack.state_dir),
             "--port", str(port), "--node-id", node, "--proxy", proxy(self.stack),
             "--media-root", str(self.media_root)],
            stdout=subprocess.PIPE, stderr=(self.media_root.parent / f"{node}.log").open("w"),
            text=True,
        )  # fmt: skip
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening"), line
        self.processes.append(process)
        self.ports.append(port)
        return process

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.ports]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)


@pytest.fixture
def controllers(stack: Settings, tmp_path: Path) -> Iterator[Controllers]:
    running_ = Controllers(stack, tmp_path / "media")
    try:
        yield running_
    finally:
        running_.stop()


def agent_view(prov: Provisioner, user_id: str) -> dict[str, Any]:
    status, body = prov.call("GET", f"/v1/agents?userId={user_id}")
    assert status == 200 and body["items"], body
    return dict(body["items"][0])


def agent_control(prov: Provisioner, user_id: str, event: str, **more: Any) -> dict[str, Any]:
    status, body = prov.call("POST", "/v1/agents/state",
                             {"userId": user_id, "event": event, **more})  # fmt: skip
    assert status == 200, body
    return dict(body)


def wait_for(check: Any, within: float = 8.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@dataclass
class QueueSetup:
    queue: dict[str, Any]
    agents: list[dict[str, Any]]
    phones: list[Any]
    did: str


def queue_with_agents(
    stack: Settings, tenant: Tenant, did: str, names: tuple[str, ...], **queue: Any
) -> QueueSetup:
    """A sequential queue (agents in the order given), each agent's phone registered and the
    agent logged in and available through the presence API."""
    row = tenant.make("queues", {"name": f"q{did[-4:]}", "strategy": "sequential",
                                 "agent_ring_timeout_sec": 3, "max_wait_sec": 30,
                                 "wrap_up_sec": 2, "announce_position": 0, **queue})  # fmt: skip
    agents = [tenant.user_with_devices(name, is_agent=1) for name in names]
    for position, agent in enumerate(agents):
        tenant.make("agent_queue_assignments", {"queue_id": row["id"], "user_id": agent["id"],
                                                "position": position})  # fmt: skip
    tenant.make("dids", {"e164": did, "dest_kind": "queue", "dest_id": row["id"]})
    settle(stack)
    phones = [registered(stack, tenant, agent) for agent in agents]
    for agent in agents:
        assert wait_for(lambda a=agent: agent_view(tenant.p, a["id"])["reachable"]), agent
        agent_control(tenant.p, agent["id"], "login", queues=[{"queueId": row["id"], "level": 1}])
        agent_control(tenant.p, agent["id"], "available")
        view = agent_view(tenant.p, agent["id"])
        assert (view["status"], view["state"]) == ("available", "waiting"), view
        assert [s["queueId"] for s in view["queues"]] == [row["id"]], view
    return QueueSetup(row, agents, phones, did)


def test_queue_offers_by_strategy_and_counts_a_missed_offer(
    stack: Settings, carrier: str, umbrella: Tenant, controllers: Controllers
) -> None:
    q = queue_with_agents(stack, umbrella, "4930600010", ("6201", "6202"), max_no_answer=1)
    first, second = q.agents
    ringing = q.phones[0].ring(timeout=30)  # agent 1 lets it ring
    answering = sipp.start(SCENARIOS / "uas_answer_hangup.xml", None, local_port=q.phones[1].port,
                           timeout=30)  # fmt: skip
    controllers.start("ctl-1")

    result, fs = queue_call(stack, controllers.addresses, q.did)
    rang, answered = ringing.wait(), answering.wait()
    time.sleep(0.5)
    events = call_events(stack, fs.finished[0].dialog.call_id) if fs.finished else []
    seen = f"media node saw {fs.log}, ran {[c.record.apps for c in fs.finished if c.record]}, " \
        f"trace {[(e['type'], e.get('data')) for e in events]}"  # fmt: skip
    assert result.ok, result.output + seen
    assert rang.ok, rang.output + seen  # INVITE, then CANCEL at the agent ring timeout
    assert answered.ok, answered.output + seen
    (call,) = fs.finished
    assert [leg.user for leg in call.bridges] == [first["id"], second["id"]]
    assert call.bridges[0].responses[-1] == 487 and call.bridges[1].answered
    assert call.record is not None and call.record.bridged == [second["id"]]

    # The caller's trace: the ACD's decisions and the runner's steps, in order.
    queue_events = [e for e in events if e["type"].startswith("queue_")]
    assert [(e["type"], (e.get("data") or {}).get("detail")) for e in queue_events] == [
        ("queue_join", None), ("queue_step", "joined"),
        ("queue_offer", None), ("queue_step", "ring"),
        ("queue_miss", None), ("queue_step", "no_answer"),
        ("queue_offer", None), ("queue_step", "ring"),
        ("queue_answer", None), ("queue_step", "answered"), ("queue_step", "finished"),
    ], queue_events  # fmt: skip
    offers = [e["agent_ids"] for e in queue_events if e["type"] == "queue_offer"]
    assert offers == [[first["id"]], [second["id"]]]  # sequential: position order
    assert events[-1]["type"] == "call_ended"
    # Agent 1's miss is counted (max_no_answer 1: on break, "no_answer"); agent 2 wraps up,
    # then is ready again.
    missed = agent_view(umbrella.p, first["id"])
    assert (missed["status"], missed["pauseReason"]) == ("on_break", "no_answer"), missed
    took = agent_view(umbrella.p, second["id"])
    assert took["state"] == "wrap_up" and took["wrapUntil"], took
    assert wait_for(lambda: agent_view(umbrella.p, second["id"])["state"] == "waiting", 6)
    assert wait_zero(umbrella.p, umbrella.id) == {k: 0 for k in counters(umbrella.p, umbrella.id)}


def test_nobody_answers_and_the_queue_overflows_to_voicemail(
    stack: Settings, carrier: str, umbrella: Tenant, controllers: Controllers
) -> None:
    box = umbrella.make("voicemail_boxes", {"name": "overflow"})
    q = queue_with_agents(stack, umbrella, "4930600011", ("6301",), max_wait_sec=5,
                          timeout_dest_kind="voicemail", timeout_dest_id=box["id"])  # fmt: skip
    ringing = q.phones[0].ring(timeout=30)
    controllers.start("ctl-1")

    result, fs = queue_call(stack, controllers.addresses, q.did)
    rang = ringing.stop()
    time.sleep(0.5)
    events = call_events(stack, fs.finished[0].dialog.call_id) if fs.finished else []
    apps = [c.record.apps for c in fs.finished if c.record]
    seen = (
        f"media node saw {fs.log}, ran {apps}, trace {[(e['type'], e.get('data')) for e in events]}"
    )
    assert result.ok, result.output + seen
    assert first_request_line(rang.messages) is not None, seen  # the agent was offered it
    kinds = [(e["type"], (e.get("data") or {}).get("detail")) for e in events]
    timeout_at = kinds.index(("queue_timeout", None))
    assert kinds[timeout_at + 1] == ("queue_step", "exit") and events[timeout_at + 1]["data"][
        "exit"] == "timeout", kinds  # fmt: skip
    assert kinds.count(("queue_miss", None)) >= 1 and ("queue_answer", None) not in kinds
    # The queue's own timeout target: the voicemail box, run by the same controller.
    flows = [e["data"]["flow_id"] for e in events[timeout_at:] if e["type"] == "flow_step"]
    assert f"target_voicemail_{box['id']}" in flows, flows
    (ran,) = apps
    after = [app for app, _ in ran[len(ran) - ran[::-1].index(next(a for a in ran[::-1]
             if a[0] == "bridge")):]]  # fmt: skip
    assert "record" in after, ran
    record = dict(ran)["record"]
    assert record.startswith(str(controllers.media_root / umbrella.id / "vm") + "/"), record
    assert events[-1]["type"] == "call_ended"
    view = agent_view(umbrella.p, q.agents[0]["id"])
    assert (view["status"], view["state"]) == ("available", "waiting"), view  # not left ringing
    assert wait_zero(umbrella.p, umbrella.id) == {k: 0 for k in counters(umbrella.p, umbrella.id)}


def test_a_controller_killed_mid_call_is_taken_over_with_state_kept(
    stack: Settings, carrier: str, umbrella: Tenant, controllers: Controllers
) -> None:
    """SIGKILL while the caller talks to the agent: the bridge goes on (FreeSWITCH finishes the
    running application), the dialplan's next ``socket`` reaches the second controller, which
    finds the session in Redis, sees the bridge went to the agent and ends the call; the
    agent wraps up and the admission counters fall back to zero."""
    q = queue_with_agents(stack, umbrella, "4930600012", ("6401",), wrap_up_sec=1)
    (agent,) = q.agents
    answering = sipp.start(SCENARIOS / "uas_answer_hangup.xml", None, local_port=q.phones[0].port,
                           timeout=30)  # fmt: skip
    first = controllers.start("ctl-1")
    controllers.start("ctl-2")

    async def main() -> tuple[sipp.SippResult, FsSip, dict[str, Any]]:
        fs = await FsSip(FreeSwitchPeer(), controllers.addresses).start(media_port(stack))
        try:
            calling = asyncio.ensure_future(asyncio.to_thread(caller_call, stack, "+" + q.did))
            async with asyncio.timeout(15):  # the agent took the call (the ACD says so)
                while (await asyncio.to_thread(agent_view, umbrella.p, agent["id"]))[
                        "state"] != "in_call":  # fmt: skip
                    await asyncio.sleep(0.05)
            first.kill()  # mid-bridge, no goodbye
            during = await asyncio.to_thread(agent_view, umbrella.p, agent["id"])
            talking = [leg.answered for c in fs.calls.values() for leg in c.bridges]
            result = await calling
            await fs.wait_idle(20)
        finally:
            await fs.stop()
        assert talking == [True], talking  # the kill came while the bridge was up
        return result, fs, during

    result, fs, during = asyncio.run(main())
    answered = answering.wait()
    time.sleep(0.5)
    events = call_events(stack, fs.finished[0].dialog.call_id) if fs.finished else []
    seen = f"media node saw {fs.log}, trace {[(e['type'], e.get('data')) for e in events]}"
    assert result.ok, result.output + seen
    assert answered.ok, answered.output + seen
    (call,) = fs.finished
    assert call.record is not None and call.record.connections == 2, call.record
    assert call.record.hung_up_by == "controller" and call.record.bridged == [agent["id"]]
    assert during["state"] == "in_call", during
    owners = {(e.get("data") or {}).get("controller") for e in events} - {None}
    assert owners == {"ctl-1", "ctl-2"}, owners
    details = [(e.get("data") or {}).get("detail") for e in events if e["type"] == "queue_step"]
    assert details[-1] == "taken_over_after_bridge", details
    assert [e["type"] for e in events].count("queue_answer") == 1  # answered once, not twice
    assert events[-1]["type"] == "call_ended"
    assert wait_for(lambda: agent_view(umbrella.p, agent["id"])["state"] == "waiting", 6), (
        agent_view(umbrella.p, agent["id"]))  # fmt: skip
    assert wait_zero(umbrella.p, umbrella.id) == {k: 0 for k in counters(umbrella.p, umbrella.id)}


# --- queue callbacks: the dialer's legs through Kamailio ------------------------------------------
PSTN_IP = "127.0.0.11"  # the umbrella's outbound carrier (callbacks to public numbers)


def test_a_queue_callback_rings_the_agent_then_the_caller_through_kamailio(
    stack: Settings, umbrella: Tenant
) -> None:
    """A caller who asked for a callback heads the queue; the dialer (in-process, on an
    inbound event socket whose ``originate`` sends real SIP from the media node) rings the
    agent's registered SIPp phone through Kamailio (``X-Sipio-Dial: user:``), then the
    caller's number out through the account's trunk (``number:``); the agent hangs up, the
    caller gets a BYE, the agent wraps up and every admission counter is back to 0."""
    q = queue_with_agents(stack, umbrella, "4930600030", ("6311",))
    (agent,) = q.agents
    port = free_port()
    umbrella.make("sip_trunks", {"name": "pstn-callbacks", "proxy": f"{PSTN_IP}:{port}",
                                 "direction": "outbound"})  # fmt: skip
    settle(stack)
    engine = make_engine(stack.db_url)
    source = SqlQueueSource(engine)
    setup = asyncio.run(source.queue(umbrella.id, q.queue["id"]))
    assert setup is not None
    cfg = QueueConfig.from_row(setup.row)
    acd = AcdStore.from_url(stack.redis_url)
    call_id = f"cb-{uuidlib.uuid4().hex[:8]}@e2e"
    assert acd.join(cfg, call_id).exit is None
    assert acd.callback(cfg, call_id, "number:+4930555777", 600) is not None
    answering = sipp.start(SCENARIOS / "uas_answer_hangup.xml", None, local_port=q.phones[0].port,
                           timeout=30)  # fmt: skip
    pstn = sipp.start(sipp.scenario("uas_answer.xml"), None, local_ip=PSTN_IP, local_port=port,
                      timeout=30)  # fmt: skip

    sip = FsSip(FreeSwitchPeer(), [])
    originator = SipOriginator(sip)
    policy = CallbackPolicy(poll_sec=0.1, claim_sec=5, check_sec=1)

    async def main() -> None:
        dialer = CallbackDialer.connect(
            acd, source, fs.host, fs.port, "ClueCon", MediaConfig(proxy=proxy(stack)),
            node_id="ctl-cb", policy=policy,
        )  # fmt: skip
        await dialer.start()
        try:
            deadline = time.monotonic() + 25
            while time.monotonic() < deadline and not (
                any(e["type"] == "queue_callback_result" for e in call_events(stack, call_id))
                and not dialer.driving
            ):
                await asyncio.sleep(0.2)
        finally:
            await dialer.stop()

    with InboundFreeSwitch(originator=originator).running() as fs:
        fs.run(sip.start(media_port(stack)))
        try:
            asyncio.run(main())
        finally:
            fs.run(sip.stop())
    engine.dispose()
    rang, called = answering.wait(), pstn.wait()
    seen = f"media node saw {sip.log}; originates {originator.originates}"
    assert rang.ok, rang.output + seen
    assert called.ok, called.output + seen
    # the agent saw the caller's number; the carrier got the caller's number dialled
    assert "+4930555777" in header(rang.messages, "From")[0], rang.messages
    assert "4930555777" in first_request_line(called.messages), called.messages
    events = call_events(stack, call_id)
    kinds_ = [e["type"] for e in events if e["type"].startswith("queue_")]
    assert kinds_ == ["queue_join", "queue_callback", "queue_offer", "queue_answer",
                      "queue_callback_connected", "queue_callback_result"], events  # fmt: skip
    assert events[-1]["outcome"] == "connected" and events[-1]["agent_id"] == agent["id"]
    # both legs went through Kamailio's routing, inside the account
    legs = list(sip.legs.values())
    assert [leg.responses[-1] for leg in legs] == [200, 200], seen
    for leg in legs:
        routed = [e for e in call_events(stack, leg.dialog.call_id) if e["type"] == "route"]
        assert routed and routed[0].get("account_id") == umbrella.id, routed
    view = agent_view(umbrella.p, agent["id"])
    assert view["state"] in ("wrap_up", "waiting") and view["status"] == "available", view
    assert wait_for(lambda: agent_view(umbrella.p, agent["id"])["state"] == "waiting", 6)
    assert wait_zero(umbrella.p, umbrella.id) == {k: 0 for k in counters(umbrella.p, umbrella.id)}
