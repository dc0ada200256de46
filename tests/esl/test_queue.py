"""Queued callers end to end: the FreeSWITCH peer places calls, the controller runs the
queue (esl/queue.py) against the real ACD store in the session stack's Redis, agents are
driven through real presence, and their phones' answers are scripted on the peer's bridge.
Queue timers are scaled down to a second or two."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import insert

from control.core.presence import Membership
from control.db import make_engine
from control.db import models as m
from control.db.migrate import upgrade
from control.live.acd import AcdStore
from control.secrets import SecretStore
from control.secrets.local import LocalBackend
from control.stack.ports import free_port
from esl.queue import leg_uuid
from esl.queues_source import QueueOption, SqlQueueSource
from esl.session_store import STREAM
from tests.esl.harness import new_account, static
from tests.esl.peer import (
    Caller,
    CallRecord,
    Channel,
    FreeSwitchPeer,
    Reaction,
    bridge_event,
    bridge_legs,
    sipio_headers,
)
from tests.esl.queues import (
    MOH,
    Ctl,
    agent,
    controller,
    first,
    make_available,
    phones,
    queue_row,
    seat,
    setup,
)
from tests.esl.test_takeover import _controller


class Watch:
    """Every ``sipio:events`` entry from now on, read as it is written: the stack's CDR
    collector trims entries it has consumed, so reading the stream afterwards can miss some."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5.0)
        self.seen: list[dict[str, Any]] = []
        self.last = "$"
        self.stop = threading.Event()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.started.wait(5)

    def _read(self) -> None:
        info = self.client.xinfo_stream(STREAM) if self.client.exists(STREAM) else None
        self.last = info["last-generated-id"].decode() if info else "0-0"
        self.started.set()
        while not self.stop.is_set():
            for _, entries in self.client.xread({STREAM: self.last}, block=100) or []:
                for entry_id, fields in entries:
                    self.last = entry_id.decode()
                    self.seen.append(json.loads(fields[b"e"]))

    def __call__(self, call_id: str) -> list[dict[str, Any]]:
        time.sleep(0.3)  # the last entries
        return [e for e in self.seen if e.get("call_id") == call_id]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.client.close()


@pytest.fixture
def trace(redis_url: str) -> Iterator[Watch]:
    watch = Watch(redis_url)
    yield watch
    watch.close()


def apps_of(call: CallRecord) -> list[str]:
    return [app for app, _ in call.apps]


def bridges(call: CallRecord) -> list[list[str]]:
    return [[leg.user for leg in bridge_legs(arg)] for app, arg in call.apps if app == "bridge"]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["type"] for e in events if e["type"].startswith("queue_") and e["type"] != "queue_step"
    ]


def details(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["detail"] for e in events if e["type"] == "queue_step"]


def test_instant_connect_bridges_a_ready_agent_without_hold(redis_url: str, trace: Watch) -> None:
    account = new_account()
    queues = setup(account, ("u_1",), wrap_up_sec=1)

    async def main() -> tuple[CallRecord, Ctl]:
        async with controller(redis_url, queues, static(account)) as ctl:
            seat(ctl.acd, account, "u_1")
            call = await FreeSwitchPeer().call(
                [ctl.address], sipio_headers(account, "queue:q_1"), phones(first)
            )
            return call, ctl

    call, ctl = asyncio.run(main())
    assert apps_of(call) == ["answer", "multiset", "bridge"]  # no hold music at all
    hold_vars = dict(call.apps)["multiset"].split(" ")
    assert "bypass_media_after_bridge=true" in hold_vars
    assert f"transfer_ringback={MOH}" in hold_vars
    dial = dict(call.apps)["bridge"]
    assert dial.startswith("{call_timeout=2,")
    assert f"[sip_h_X-Sipio-Account={account},sip_h_X-Sipio-Dial=user:u_1," in dial
    assert f"origination_uuid={leg_uuid(call.uuid, 'u_1')}" in dial
    assert dial.endswith("]sofia/internal/u_1@127.0.0.1:5060")
    assert call.bridged == ["u_1"] and call.hung_up_by == "controller"
    events = trace(call.call_id)
    assert kinds(events) == ["queue_join", "queue_offer", "queue_answer"]
    assert details(events) == ["joined", "ring", "answered", "finished"]
    flow_end = [e for e in events if e["type"] == "flow_step"][-1]  # a transfer: no edges
    assert (flow_end["node_id"], flow_end["data"]["detail"]) == ("queue", "transfer")
    assert agent(ctl.acd, account, "u_1")[:2] == ("available", "wrap_up")
    time.sleep(1.1)  # wrap_up_sec = 1
    assert ctl.acd.presence.get(account, "u_1").call_id is None
    assert ctl.acd.live(account, "q_1")["readyAgents"] == 1


@pytest.mark.parametrize(
    ("whisper", "confirm"), [(1, 0), (0, 1), (1, 1)], ids=["whisper", "confirm", "both"]
)
def test_agent_answer_time_whisper_and_confirmation(
    redis_url: str, whisper: int, confirm: int
) -> None:
    """SPEC 7.2 / 14: the agent's leg carries the answer-time prompts (``whisper-queue``,
    ``confirm-accept`` + key 1) for FreeSWITCH to play before bridging; the offer's lease
    covers them."""
    account = new_account()
    queues = setup(account, ("u_1",), agent_whisper=whisper, agent_confirm=confirm,
                   language="de-DE")  # fmt: skip
    offered: list[int] = []

    async def main() -> CallRecord:
        async with controller(redis_url, queues, static(account)) as ctl:
            seat(ctl.acd, account, "u_1")
            original = ctl.acd.offer

            def offer(*args: Any) -> Any:
                made = original(*args)
                if made is not None:
                    offered.append(made.lease_until)
                return made

            ctl.acd.offer = offer  # type: ignore[method-assign]
            began = int(time.time() * 1000)
            call = await FreeSwitchPeer().call(
                [ctl.address], sipio_headers(account, "queue:q_1"), phones(first)
            )
            offered[:] = [lease - began for lease in offered]
            return call

    call = asyncio.run(main())
    dial = dict(call.apps)["bridge"]
    system = "/var/lib/sipio/media/system/de-DE"
    if confirm:
        files = f"{system}/confirm-accept.wav"
        if whisper:
            files = f"file_string://{system}/whisper-queue.wav!{files}"
        assert f"group_confirm_file={files},group_confirm_key=1," in dial
        assert "group_confirm_read_timeout=5000" in dial
    else:
        assert (
            f"group_confirm_key=exec,group_confirm_file=playback {system}/whisper-queue.wav]"
            in dial
        )
    assert call.bridged == ["u_1"]
    (lease,) = offered
    assert 11_000 <= lease <= 12_500  # ring 2 s + 10 s for the prompts and the key


def test_caller_holds_until_an_agent_becomes_ready(redis_url: str, trace: Watch) -> None:
    """The agent is logged in but not ready: the caller hears MOH and a position
    announcement; when the agent goes available, the MOH is broken and the agent rung."""
    account = new_account()
    queues = setup(account, ("u_1",), announce_position=1, announce_first_sec=1)

    async def main() -> tuple[CallRecord, float]:
        async with controller(redis_url, queues, static(account)) as ctl:
            seat(ctl.acd, account, "u_1", ready=False)
            peer = FreeSwitchPeer()
            placed = asyncio.ensure_future(
                peer.call([ctl.address], sipio_headers(account, "queue:q_1"), phones(first))
            )
            await asyncio.sleep(1.5)
            ready_at = time.monotonic()
            await asyncio.to_thread(make_available, ctl.acd, account, "u_1")
            call = await placed
            return call, ready_at

    call, _ = asyncio.run(main())
    played = [arg for app, arg in call.apps if app == "playback"]
    assert played[0] == MOH
    announcement = next(a for a in played if a.startswith("file_string://"))
    assert "/system/en-US/queue_position.wav!" in announcement
    assert announcement.split("!")[1].endswith("/system/en-US/number_1.wav")
    assert any(c.startswith(f"api uuid_break {call.uuid}") for c in call.commands)
    assert apps_of(call)[-1] == "bridge" and call.bridged == ["u_1"]
    events = trace(call.call_id)
    assert kinds(events) == ["queue_join", "queue_offer", "queue_answer"]
    assert "announce" in details(events)


def test_no_answer_rings_the_next_agent_and_auto_pauses(redis_url: str, trace: Watch) -> None:
    """longest_idle: u_1 (free first) rings and does not answer; with max_no_answer 1 it is
    paused (no_answer) and u_2 gets the caller."""
    account = new_account()
    queues = setup(account, ("u_1", "u_2"), max_no_answer=1)

    async def main() -> tuple[CallRecord, Ctl]:
        async with controller(redis_url, queues, static(account)) as ctl:
            seat(ctl.acd, account, "u_1")
            await asyncio.sleep(0.02)
            seat(ctl.acd, account, "u_2")
            script = phones(lambda users: "u_2" if "u_2" in users else None)
            call = await FreeSwitchPeer().call(
                [ctl.address], sipio_headers(account, "queue:q_1"), script
            )
            return call, ctl

    call, ctl = asyncio.run(main())
    assert bridges(call) == [["u_1"], ["u_2"]] and call.bridged == ["u_2"]
    assert agent(ctl.acd, account, "u_1") == ("on_break", "waiting", "no_answer", 1)
    assert agent(ctl.acd, account, "u_2")[:2] == ("available", "waiting")  # no wrap-up
    events = trace(call.call_id)
    assert kinds(events) == [
        "queue_join",
        "queue_offer",
        "queue_miss",
        "queue_offer",
        "queue_answer",
    ]
    miss = next(
        e for e in events if e["type"] == "queue_step" and e["data"]["detail"] == "no_answer"
    )
    assert miss["data"]["agents"] == ["u_1"] and miss["data"]["cause"] == "NO_ANSWER"


def test_ring_all_rings_every_ready_agent(redis_url: str) -> None:
    account = new_account()
    queues = setup(account, ("u_1", "u_2"), strategy="ring_all")

    async def main() -> tuple[CallRecord, Ctl]:
        async with controller(redis_url, queues, static(account)) as ctl:
            seat(ctl.acd, account, "u_1")
            seat(ctl.acd, account, "u_2")
            script = phones(lambda users: "u_2")
            call = await FreeSwitchPeer().call(
                [ctl.address], sipio_headers(account, "queue:q_1"), script
            )
            return call, ctl

    call, ctl = asyncio.run(main())
    assert bridges(call) == [["u_1", "u_2"]] and call.bridged == ["u_2"]
    assert agent(ctl.acd, account, "u_1") == ("available", "waiting", None, 0)  # released, no miss


def test_wrap_up_blocks_the_agent_then_it_takes_the_next_caller(redis_url: str) -> None:
    account = new_account()
    queues = setup(account, ("u_1",), wrap_up_sec=1)

    async def main() -> tuple[CallRecord, CallRecord, float, float]:
        async with controller(redis_url, queues, static(account)) as ctl:
            seat(ctl.acd, account, "u_1")
            peer = FreeSwitchPeer()
            headers = sipio_headers(account, "queue:q_1")
            first_call = await peer.call([ctl.address], headers, phones(first))
            ended = time.monotonic()
            second = await peer.call([ctl.address], headers, phones(first))
            return first_call, second, ended, time.monotonic()

    one, two, _, _ = asyncio.run(main())
    assert one.bridged == ["u_1"] and two.bridged == ["u_1"]
    assert apps_of(one) == ["answer", "multiset", "bridge"]
    assert apps_of(two)[:4] == ["answer", "multiset", "playback", "bridge"]  # held during wrap-up


def test_timeout_continues_at_the_queue_timeout_target(redis_url: str, trace: Watch) -> None:
    """A direct queue target (no flow exits): max_wait_sec runs out, the queue's own
    timeout_dest (voicemail) takes the call; agents stay as they were."""
    account = new_account()
    queues = setup(
        account, ("u_1",), max_wait_sec=1, timeout_dest_kind="voicemail", timeout_dest_id="vm_1"
    )

    async def main() -> tuple[CallRecord, Ctl, float]:
        async with controller(redis_url, queues, static(account)) as ctl:
            seat(ctl.acd, account, "u_1", ready=False)
            began = time.monotonic()
            call = await FreeSwitchPeer().call(
                [ctl.address], sipio_headers(account, "queue:q_1"), phones(first)
            )
            return call, ctl, time.monotonic() - began

    call, ctl, took = asyncio.run(main())
    assert 1.0 <= took < 5.0
    assert "bridge" not in apps_of(call)
    events = trace(call.call_id)
    assert kinds(events) == ["queue_join", "queue_timeout"]
    steps = [(e["node_id"], e["outcome"], e["data"]["step"], e["data"].get("detail"))
             for e in events if e["type"] == "flow_step"]  # fmt: skip
    assert steps[:2] == [("entry", "default", "node", "trigger inbound"),
                         ("queue", None, "end", "transfer")]  # fmt: skip
    assert steps[2] == ("queue", None, "end", "enqueue_timeout:voicemail:vm_1")
    assert steps[3][:3] == ("entry", "default", "node")
    assert steps[-1][0] == "voicemail" and steps[-1][2] == "end"
    seqs = [e["data"]["seq"] for e in events if e["type"] == "flow_step"]
    assert seqs == sorted(set(seqs))  # numbered on, never reused
    assert agent(ctl.acd, account, "u_1") == ("on_break", "waiting", "not_ready", 0)
    assert ctl.acd.live(account, "q_1")["waiting"] == 0


def test_abandon_while_agents_ring_releases_them_without_a_miss(
    redis_url: str, trace: Watch
) -> None:
    account = new_account()
    queues = setup(account, ("u_1",), max_no_answer=1)

    def hang_up_while_ringing(app: str, arg: str, n: int) -> Reaction | None:
        return Reaction(delay=0.3, hangup=True) if app == "bridge" else None

    async def main() -> tuple[CallRecord, Ctl]:
        async with controller(redis_url, queues, static(account)) as ctl:
            seat(ctl.acd, account, "u_1")
            call = await FreeSwitchPeer().call(
                [ctl.address],
                sipio_headers(account, "queue:q_1"),
                Caller(react=hang_up_while_ringing),
            )
            await asyncio.sleep(0.3)
            return call, ctl

    call, ctl = asyncio.run(main())
    assert call.hung_up_by == "caller"
    assert agent(ctl.acd, account, "u_1") == ("available", "waiting", None, 0)
    events = trace(call.call_id)
    assert kinds(events) == ["queue_join", "queue_offer", "queue_abandon"]
    assert details(events)[-1] == "exit"
    assert ctl.acd.live(account, "q_1")["waiting"] == 0


def test_queue_full_is_an_exit_the_flow_handles(redis_url: str, trace: Watch) -> None:
    account = new_account()
    flow = {
        "id": "flow_q", "name": "q", "version": 1, "start": "entry",
        "nodes": [
            {"id": "entry", "type": "entry", "data": {"kind": "entry", "trigger": "inbound"}},
            {"id": "enq", "type": "enqueue", "data": {"kind": "enqueue", "queueId": "q_1"}},
            {"id": "full", "type": "say", "data": {"kind": "say", "text": "We are busy"}},
        ],
        "edges": [
            {"id": "e1", "source": "entry", "target": "enq"},
            {"id": "e2", "source": "enq", "target": "full", "sourceHandle": "queue_full"},
        ],
    }  # fmt: skip
    queues = setup(account, ("u_1",), max_queued=1, queue_full_dest_kind="hangup")

    async def main() -> tuple[CallRecord, CallRecord]:
        async with controller(redis_url, queues, static(account, flow)) as ctl:
            seat(ctl.acd, account, "u_1", ready=False)
            peer = FreeSwitchPeer()
            headers = sipio_headers(account, "flow:flow_q")
            holding = asyncio.ensure_future(
                peer.call(
                    [ctl.address],
                    headers,
                    phones(first, moh=lambda n: Reaction(delay=0.8, hangup=True)),
                )
            )
            await asyncio.sleep(0.5)
            full = await peer.call([ctl.address], headers, phones(first))
            return await holding, full

    held, full = asyncio.run(main())
    assert apps_of(full) == ["answer", "speak"] and "busy" in dict(full.apps)["speak"]
    assert kinds(trace(full.call_id)) == ["queue_leave"]
    assert kinds(trace(held.call_id)) == ["queue_join", "queue_abandon"]


def test_controller_killed_mid_hold_another_resumes_the_queue(redis_url: str, trace: Watch) -> None:
    """Controller A is stopped (its sockets close) while the caller holds; FreeSWITCH
    resumes into controller B, which re-joins (original enqueue time) and connects the agent
    (a SIGKILLed process: test_killed_controller_process_mid_hold_is_replaced)."""
    account = new_account()
    queues = setup(account, ("u_1",))

    async def main() -> tuple[CallRecord, Ctl]:
        async with (
            controller(redis_url, queues, static(account), "ctl-b") as b,
        ):
            a_ctx = controller(redis_url, queues, static(account), "ctl-a")
            a = await a_ctx.__aenter__()
            seat(a.acd, account, "u_1", ready=False)
            placed = asyncio.ensure_future(
                FreeSwitchPeer().call(
                    [a.address, b.address], sipio_headers(account, "queue:q_1"), phones(first)
                )
            )
            await asyncio.sleep(0.6)
            await a_ctx.__aexit__(None, None, None)  # killed: its sockets close at once
            await asyncio.sleep(0.2)
            await asyncio.to_thread(make_available, b.acd, account, "u_1")
            return await placed, b

    call, b = asyncio.run(main())
    assert call.connections == 2 and call.bridged == ["u_1"]
    events = trace(call.call_id)
    assert kinds(events) == ["queue_join", "queue_offer", "queue_answer"]  # joined once
    assert details(events)[:2] == ["joined", "rejoined"]
    rejoined = [e for e in events if e["type"] == "queue_step"][1]
    assert rejoined["data"]["controller"] == "ctl-b"
    answer = next(e for e in events if e["type"] == "queue_answer")
    assert answer["waited_ms"] >= 800  # counted from the first join
    assert agent(b.acd, account, "u_1")[:2] == ("available", "waiting")
    assert b.acd.live(account, "q_1")["waiting"] == 0


def test_controller_stopped_while_an_agent_rings_leaves_no_agent_stuck(
    redis_url: str, trace: Watch
) -> None:
    """A stops while u_1 rings; the ring runs its course in FreeSWITCH (nobody answers), then
    B takes the call: the ACD's sweep counts u_1's miss for the lapsed lease and B offers the
    caller again; u_1 answers this time."""
    account = new_account()
    queues = setup(account, ("u_1",))
    rings = iter([Reaction(delay=2.7), Reaction(answered_by="u_1", delay=0.1, talk=0.2)])

    def react(app: str, arg: str, n: int) -> Reaction | None:
        return next(rings) if app == "bridge" else None

    async def main() -> tuple[CallRecord, Ctl, tuple[str, str, str | None, int]]:
        async with controller(redis_url, queues, static(account), "ctl-b") as b:
            a_ctx = controller(redis_url, queues, static(account), "ctl-a")
            a = await a_ctx.__aenter__()
            seat(a.acd, account, "u_1")
            placed = asyncio.ensure_future(
                FreeSwitchPeer().call(
                    [a.address, b.address], sipio_headers(account, "queue:q_1"), Caller(react=react)
                )
            )
            await asyncio.sleep(0.5)
            ringing = agent(b.acd, account, "u_1")
            await a_ctx.__aexit__(None, None, None)
            return await placed, b, ringing

    call, b, ringing = asyncio.run(main())
    assert ringing[:2] == ("available", "offering")
    assert call.connections == 2 and bridges(call) == [["u_1"], ["u_1"]]
    assert call.bridged == ["u_1"]
    events = trace(call.call_id)
    assert kinds(events) == [
        "queue_join", "queue_offer", "queue_miss", "queue_offer", "queue_answer"
    ]  # fmt: skip
    miss = next(e for e in events if e["type"] == "queue_miss")
    assert miss["reason"] == "lease_expired" and miss["agent_ids"] == ["u_1"]
    assert agent(b.acd, account, "u_1") == ("available", "waiting", None, 0)  # answered: reset


def test_controller_killed_while_bridged_ends_the_call_cleanly(
    redis_url: str, trace: Watch
) -> None:
    """A stops while the caller talks to the agent; the bridge lasts (FreeSWITCH resumes the
    dialplan only after it), B sees the bridge went to the agent's leg: wrap-up, call over,
    nobody rung twice."""
    account = new_account()
    queues = setup(account, ("u_1",), wrap_up_sec=1)

    async def main() -> tuple[CallRecord, Ctl]:
        async with controller(redis_url, queues, static(account), "ctl-b") as b:
            a_ctx = controller(redis_url, queues, static(account), "ctl-a")
            a = await a_ctx.__aenter__()
            seat(a.acd, account, "u_1")
            placed = asyncio.ensure_future(
                FreeSwitchPeer().call([a.address, b.address], sipio_headers(account, "queue:q_1"),
                                      phones(first, ring=0.1, talk=1.0))
            )  # fmt: skip
            await asyncio.sleep(0.5)
            await a_ctx.__aexit__(None, None, None)
            return await placed, b

    call, b = asyncio.run(main())
    assert call.connections == 2 and bridges(call) == [["u_1"]]
    assert call.hung_up_by == "controller"
    events = trace(call.call_id)
    assert kinds(events) == ["queue_join", "queue_offer", "queue_answer"]
    assert details(events)[-1] == "taken_over_after_bridge"
    assert agent(b.acd, account, "u_1")[:2] == ("available", "wrap_up")
    taken = [e for e in events if e["type"] == "queue_step"][-1]
    assert taken["data"]["controller"] == "ctl-b" and taken["data"]["agent"] == "u_1"


@pytest.fixture
def hook() -> Iterator[tuple[str, list[tuple[dict[str, str], dict[str, Any]]]]]:
    """A webhook receiver: (headers, JSON body) per POST."""
    seen: list[tuple[dict[str, str], dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((dict(self.headers), json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", seen
    finally:
        server.shutdown()
        server.server_close()


def test_file_moh_and_a_deflect_key_that_keeps_the_caller_holding(
    redis_url: str, trace: Watch, hook: tuple[str, list[tuple[dict[str, str], dict[str, Any]]]]
) -> None:
    """moh_mode file: the queue's own file, restarted from the top; key 1 fires the webhook,
    plays the confirmation and the caller keeps holding until the agent is ready."""
    url, seen = hook
    account = new_account()
    deflect = QueueOption(digit="1", action="deflect", webhook_url=url, prompt_media_id="media_ok")
    queues = setup(account, ("u_1",), options=(deflect,), moh_mode="file", moh_media_id="moh_acme")
    moh_file = f"/var/lib/sipio/media/{account}/moh_acme.wav"

    def react(app: str, arg: str, n: int) -> Reaction | None:
        if app == "bridge":
            return Reaction(answered_by="u_1", delay=0.1, talk=0.1)
        if app == "playback" and arg == moh_file and n == 0:
            return Reaction(digits="1", delay=0.2)
        if app == "playback" and arg == moh_file:
            return Reaction(delay=0.5)
        return None

    async def main() -> CallRecord:
        async with controller(redis_url, queues, static(account)) as ctl:
            seat(ctl.acd, account, "u_1", ready=False)
            placed = asyncio.ensure_future(
                FreeSwitchPeer().call(
                    [ctl.address], sipio_headers(account, "queue:q_1"), Caller(react=react)
                )
            )
            await asyncio.sleep(1.5)
            await asyncio.to_thread(make_available, ctl.acd, account, "u_1")
            return await placed

    call = asyncio.run(main())
    played = [arg for app, arg in call.apps if app == "playback"]
    assert played[0] == moh_file and played[1] == f"/var/lib/sipio/media/{account}/media_ok.wav"
    assert played.count(moh_file) >= 2  # holding again after the key
    assert f"transfer_ringback={moh_file}" in dict(call.apps)["multiset"]
    assert call.bridged == ["u_1"]
    assert len(seen) == 1
    headers, body = seen[0]
    assert "Authorization" not in headers
    assert body["digit"] == "1" and body["action"] == "deflect" and body["queueId"] == "q_1"
    assert body["callId"] == call.call_id and body["position"] == 1
    events = trace(call.call_id)
    assert kinds(events) == ["queue_join", "queue_offer", "queue_answer"]
    hooked = next(
        e for e in events if e["type"] == "queue_step" and e["data"]["detail"] == "webhook"
    )
    assert hooked["data"]["status"] == 204


def test_webhook_key_with_a_token_from_the_secret_store_then_the_caller_leaves(
    redis_url: str,
    trace: Watch,
    tmp_path: Path,
    hook: tuple[str, list[tuple[dict[str, str], dict[str, Any]]]],
) -> None:
    """A webhook option that does not keep the caller: the POST carries the option's token
    (resolved at use time), the caller leaves (handled: ``route``) and is hung up; the token
    is in no event."""
    url, seen = hook
    secrets = SecretStore(LocalBackend(tmp_path / "secrets"), cache_ttl=0)
    token = "tok-" + new_account()
    secrets.put("kv:qopt:iqo_9:webhook_token", token)
    account = new_account()
    option = QueueOption(
        digit="9", action="webhook", webhook_url=url,
        webhook_secret_ref="kv:qopt:iqo_9:webhook_token", label="Leave a note",
    )  # fmt: skip
    queues = setup(account, ("u_1",), options=(option,))

    async def main() -> CallRecord:
        async with controller(redis_url, queues, static(account), secrets=secrets) as ctl:
            seat(ctl.acd, account, "u_1", ready=False)
            script = phones(first, moh=lambda n: Reaction(digits="9", delay=0.2))
            call = await FreeSwitchPeer().call(
                [ctl.address], sipio_headers(account, "queue:q_1"), script
            )
            await asyncio.sleep(0.5)  # the POST runs off the call path
            return call

    call = asyncio.run(main())
    assert call.hung_up_by == "controller"
    assert len(seen) == 1
    headers, body = seen[0]
    assert headers["Authorization"] == f"Bearer {token}"
    assert (body["action"], body["label"], body["digit"]) == ("webhook", "Leave a note", "9")
    events = trace(call.call_id)
    assert kinds(events) == ["queue_join", "queue_leave"]
    assert next(e for e in events if e["type"] == "queue_leave")["reason"] == "route"
    assert token not in json.dumps(events)


def test_route_key_and_no_agents_continue_at_their_targets(redis_url: str, trace: Watch) -> None:
    """Key 3 routes the caller to a voicemail box (handled, not abandoned); a queue nobody
    is logged into sends the next caller to its no_agents target at once."""
    account = new_account()
    route = QueueOption(digit="3", action="route", dest_kind="voicemail", dest_id="vm_sales")
    queues = {
        **setup(account, ("u_1",), options=(route,)),
        **setup(
            account, ("u_2",), "q_2", no_agents_dest_kind="voicemail", no_agents_dest_id="vm_2"
        ),
    }

    async def main() -> tuple[CallRecord, CallRecord]:
        async with controller(redis_url, queues, static(account)) as ctl:
            seat(ctl.acd, account, "u_1", ready=False)
            peer = FreeSwitchPeer()
            keyed = await peer.call(
                [ctl.address],
                sipio_headers(account, "queue:q_1"),
                phones(first, moh=lambda n: Reaction(digits="3", delay=0.2)),
            )
            empty = await peer.call([ctl.address], sipio_headers(account, "queue:q_2"))
            return keyed, empty

    keyed, empty = asyncio.run(main())
    events = trace(keyed.call_id)
    assert kinds(events) == ["queue_join", "queue_leave"]
    assert next(e for e in events if e["type"] == "queue_leave")["reason"] == "route"
    ends = [
        e["data"]["detail"]
        for e in events
        if e["type"] == "flow_step" and e["data"]["step"] == "end"
    ]
    assert ends[:2] == ["transfer", "enqueue_route:voicemail:vm_sales"]
    events = trace(empty.call_id)
    assert kinds(events) == ["queue_join", "queue_leave"]
    assert next(e for e in events if e["type"] == "queue_leave")["reason"] == "no_agents"
    ends = [
        e["data"]["detail"]
        for e in events
        if e["type"] == "flow_step" and e["data"]["step"] == "end"
    ]
    assert ends[:2] == ["transfer", "enqueue_no_agents:voicemail:vm_2"]
    assert "playback" not in apps_of(empty)  # never held


def test_ewt_exit_at_join_continues_at_the_queue_target(redis_url: str, trace: Watch) -> None:
    """Estimated wait (position 1 x AHT 600 s / 1 ready agent) above the 60 s threshold: the
    caller never joins and goes to the queue's ewt target; the agent is not rung."""
    account = new_account()
    queues = setup(
        account, ("u_1",), ewt_threshold_sec=60, ewt_aht_sec=600,
        ewt_dest_kind="voicemail", ewt_dest_id="vm_busy",
    )  # fmt: skip

    async def main() -> tuple[CallRecord, Ctl]:
        async with controller(redis_url, queues, static(account)) as ctl:
            seat(ctl.acd, account, "u_1")
            call = await FreeSwitchPeer().call(
                [ctl.address], sipio_headers(account, "queue:q_1"), phones(first)
            )
            return call, ctl

    call, ctl = asyncio.run(main())
    assert apps_of(call) == ["answer"]  # neither hold nor bridge
    events = trace(call.call_id)
    leave = next(e for e in events if e["type"] == "queue_leave")
    assert (leave["reason"], leave["joined"], leave["ewt_sec"]) == ("ewt", False, 600)
    ends = [
        e["data"]["detail"]
        for e in events
        if e["type"] == "flow_step" and e["data"]["step"] == "end"
    ]
    assert ends[:2] == ["transfer", "enqueue_ewt:voicemail:vm_busy"]
    assert agent(ctl.acd, account, "u_1") == ("available", "waiting", None, 0)


def test_bridge_events_are_the_recorded_frame_around_the_calls_channel() -> None:
    """CHANNEL_BRIDGE / CHANNEL_UNBRIDGE: the recorded event's own headers (Event-Calling-*,
    Bridge-*, Other-*) with their recorded values, in the recorded order, around the headers
    of the channel every other peer event carries."""
    peer = FreeSwitchPeer()
    own = ("Event-Calling", "Bridge-", "Other-")
    for name in ("CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE"):
        recorded = bridge_event(name)
        template = peer._template(Channel(peer, {}, Caller()), name, {})[0]
        assert dict(template)["Event-Name"] == name
        assert [p for p in template if p[0].startswith(own)] == [
            p for p in recorded if p[0].startswith(own)
        ]
        execute = peer.full.event("CHANNEL_EXECUTE", Application="playback")
        skip = (*own, "Event-Name", "Application")
        assert [p for p in template if not p[0].startswith(skip)] == [
            p for p in execute if not p[0].startswith(skip)
        ]
        names = [h for h, _ in template if not h.startswith("variable_")]
        shared = [h for h, _ in recorded if h in names]
        assert [h for h in names if h in shared] == shared  # event headers in recorded order


def _queue_db(path: Path, account: str) -> str:
    """A config DB with one queue, one agent seated in it and one in-queue option."""
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(insert(m.Account).values(id=account, name="queues"))
        c.execute(
            insert(m.SipUser).values(id="u_1", account_id=account, username="1001", is_agent=1)
        )
        c.execute(insert(m.Queue).values(**queue_row(account, agent_ring_timeout_sec=3)))
        c.execute(
            insert(m.AgentQueueAssignment).values(
                id="aqa_1", account_id=account, queue_id="q_1", user_id="u_1", tier_level=1
            )
        )
        c.execute(
            insert(m.InQueueOption).values(
                id="iqo_1", account_id=account, queue_id="q_1", digit="0", action="hangup"
            )
        )
    engine.dispose()
    return url


def test_sql_queue_source_reads_one_accounts_queue(tmp_path: Path) -> None:
    """Rows, options and seats of the account's queue; another account's queue of the same
    id is invisible; a change shows after the cache's ttl."""
    account, other = new_account(), new_account()
    url = _queue_db(tmp_path / "q.db", account)
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(insert(m.Account).values(id=other, name="other"))
        c.execute(insert(m.Queue).values(**queue_row(other, "q_other", timeout_dest_kind="hangup")))
    source = SqlQueueSource(engine, ttl=0.2)

    async def main() -> tuple[Any, ...]:
        mine = await source.queue(account, "q_1")
        theirs = await source.queue(account, "q_other")
        with engine.begin() as c:
            c.execute(m.Queue.__table__.update().values(max_wait_sec=99))
        cached = await source.queue(account, "q_1")
        await asyncio.sleep(0.25)
        return mine, theirs, cached, await source.queue(account, "q_1")

    mine, theirs, cached, fresh = asyncio.run(main())
    engine.dispose()
    assert theirs is None
    assert mine.queue_id == "q_1" and mine.row["agent_ring_timeout_sec"] == 3
    assert mine.options["0"].action == "hangup" and not mine.options["0"].stay_in_queue
    assert mine.members == {"u_1": Membership("q_1", 1, "static")}
    assert mine.positions == {"u_1": 0}
    assert mine.exit_target("timeout") is None and mine.exit_target("bogus") is None
    assert cached.row["max_wait_sec"] == 20 and fresh.row["max_wait_sec"] == 99


def test_killed_controller_process_mid_hold_is_replaced(
    tmp_path: Path, redis_url: str, trace: Watch
) -> None:
    """``sipio esl-controller`` (queues from the config DB) is SIGKILLed while the caller
    holds; the MOH slice ends, FreeSWITCH resumes into a new process, which re-joins the
    caller at its place and connects the agent once it is ready."""
    account = new_account()
    db_url = _queue_db(tmp_path / "queues.db", account)
    acd = AcdStore.from_url(redis_url)
    seat(acd, account, "u_1", ready=False)
    port = free_port(udp=False)
    slice_over = asyncio.Event()
    holding = asyncio.Event()

    def moh(n: int) -> Reaction | None:
        if n == 0:
            holding.set()
            return Reaction(hold=slice_over)  # the slice playback_timeout_sec bounds
        return None

    one = _controller(tmp_path, port, redis_url, db_url, "ctl-1")
    second = None

    async def main() -> CallRecord:
        nonlocal second
        address = ("127.0.0.1", port)
        headers = sipio_headers(account, "queue:q_1")
        call = asyncio.create_task(
            FreeSwitchPeer().call([address, address], headers, phones(first, moh=moh), timeout=30)
        )
        await asyncio.wait_for(holding.wait(), 10)
        await asyncio.sleep(0.3)
        one.send_signal(signal.SIGKILL)
        await asyncio.to_thread(one.wait, 10)
        second = await asyncio.to_thread(_controller, tmp_path, port, redis_url, db_url, "ctl-2")
        slice_over.set()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(make_available, acd, account, "u_1")
        return await asyncio.wait_for(call, 20)

    try:
        call = asyncio.run(main())
    finally:
        for process in (one, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(10)
    assert call.connections == 2 and call.bridged == ["u_1"]
    events = trace(call.call_id)
    assert kinds(events) == ["queue_join", "queue_offer", "queue_answer"]
    steps = [
        (e["data"]["detail"], e["data"]["controller"]) for e in events if e["type"] == "queue_step"
    ]
    assert steps[:2] == [("joined", "ctl-1"), ("rejoined", "ctl-2")]
    answer = next(e for e in events if e["type"] == "queue_answer")
    assert answer["waited_ms"] >= 1300  # from the first join, not the second
    assert acd.presence.get(account, "u_1").state == "waiting"  # wrap_up_sec 0
    assert acd.live(account, "q_1")["waiting"] == 0
