"""Courtesy callbacks (SPEC 7.5): the caller keeps their place and hangs up; the dialer
(esl/callbacks.py) calls back through FreeSWITCH's inbound socket when an agent takes it.

Real Redis (the ACD and presence), the inbound FreeSWITCH stand-in with ``bgapi originate``
(``fs_inbound.py`` + ``fs_originate.py``, framed as the ``orig01``/``orig02`` captures)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from control.core.acd import QueueConfig
from control.db.engine import make_engine
from control.live.acd import AcdStore
from control.secrets import open_store
from control.settings import Settings
from control.stack.ports import free_port
from esl.apps import MediaConfig
from esl.callbacks import CallbackDialer, CallbackPolicy, leg_uuid
from esl.inbound import Backoff
from esl.queues_source import QueueOption, QueueSetup, SqlQueueSource, StaticQueueSource
from tests.esl.fs_inbound import InboundFreeSwitch
from tests.esl.fs_originate import Originator, Phone
from tests.esl.harness import new_account, static
from tests.esl.peer import FreeSwitchPeer, Reaction, sipio_headers
from tests.esl.queues import agent, controller, first, make_available, phones, seat, setup
from tests.esl.test_queue import Watch, kinds
from tests.harness.provision import Provisioner

NUMBER = "+4930123456"
FAST = CallbackPolicy(poll_sec=0.05, claim_sec=1.0, check_sec=0.5, retry_sec=0.3, job_grace_sec=3)
MEDIA = MediaConfig(proxy="127.0.0.1:5060")


@pytest.fixture
def trace(redis_url: str) -> Iterator[Watch]:
    watch = Watch(redis_url)
    yield watch
    watch.close()


@pytest.fixture
def originator() -> Originator:
    return Originator()


@pytest.fixture
def fs(originator: Originator) -> Iterator[InboundFreeSwitch]:
    with InboundFreeSwitch(originator=originator).running() as server:
        yield server


def acd_for(redis_url: str) -> AcdStore:
    """The test's own ACD keys (and callback registry): other tests' callbacks stay unseen."""
    prefix = f"sipio:acd:t{uuid.uuid4().hex[:8]}"
    return AcdStore.from_url(redis_url, prefix=prefix, lease_grace_sec=0.5)


def waiting_callback(
    acd: AcdStore, cfg: QueueConfig, call_id: str, number: str = NUMBER, window: float = 60
) -> None:
    """A caller joined ``cfg``'s queue and asked to be called back."""
    assert acd.join(cfg, call_id).exit is None
    assert acd.callback(cfg, call_id, f"number:{number}", window) is not None


@dataclass
class Scene:
    account: str
    queues: dict[tuple[str, str], QueueSetup]
    cfg: QueueConfig
    acd: AcdStore


def scene(
    redis_url: str,
    users: tuple[str, ...] = ("u_1",),
    *,
    ready: bool = True,
    callbacks: tuple[str, ...] = ("cb-1",),
    **row: Any,
) -> Scene:
    """A queue of ``users`` (seated, ready or on break) with ``callbacks`` waiting in it."""
    account = new_account()
    queues = setup(account, users, **row)
    cfg = QueueConfig.from_row(queues[(account, "q_1")].row)
    acd = acd_for(redis_url)
    for user in users:
        seat(acd, account, user, ready=ready)
    for call_id in callbacks:
        waiting_callback(acd, cfg, call_id)
    return Scene(account, queues, cfg, acd)


@asynccontextmanager
async def dialer(
    acd: AcdStore,
    queues: Any,
    fs: InboundFreeSwitch,
    policy: CallbackPolicy = FAST,
    node_id: str = "ctl-a",
    port: int | None = None,
) -> AsyncIterator[CallbackDialer]:
    d = CallbackDialer.connect(
        acd, StaticQueueSource(queues), fs.host, fs.port if port is None else port, "ClueCon",
        MEDIA, node_id=node_id, policy=policy,
    )  # fmt: skip
    d.inbound.backoff = Backoff(first=0.05, cap=0.2)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def of(watch: Watch, call_id: str) -> list[dict[str, Any]]:
    return [e for e in watch.seen if e.get("call_id") == call_id]


def results(watch: Watch, call_id: str) -> list[dict[str, Any]]:
    return [e for e in of(watch, call_id) if e["type"] == "queue_callback_result"]


def leftovers(acd: AcdStore, account: str) -> dict[str, Any]:
    """What is left of the account's callbacks. A dialer stopped in the middle of a scan may
    leave a claim it just took (on a callback that was served meanwhile): claims expire, so
    they are given ``claim_sec`` to go; everything else must already be gone."""
    base = acd.base(account)
    r = acd.redis
    deadline = time.monotonic() + FAST.claim_sec + 0.5
    while list(r.scan_iter(f"{base}:cbclaim:*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {
        "cb": r.zrange(f"{base}:cb", 0, -1),
        "state": r.hkeys(f"{base}:cbstate"),
        "calls": r.hkeys(f"{base}:calls"),
        "claims": list(r.scan_iter(f"{base}:cbclaim:*")),
        "q": r.zrange(acd.queue_key(account, "q_1"), 0, -1),
    }


EMPTY: dict[str, Any] = {"cb": [], "state": [], "calls": [], "claims": [], "q": []}


# -- the caller's side ------------------------------------------------------------------------
def test_callback_key_keeps_the_place_and_hangs_up(redis_url: str, trace: Watch) -> None:
    account = new_account()
    callback = QueueOption(digit="2", action="callback", prompt_media_id="media_cb_ok")
    queues = setup(account, ("u_1",), options=(callback,))

    async def main() -> Any:
        async with controller(redis_url, queues, static(account)) as ctl:
            seat(ctl.acd, account, "u_1", ready=False)
            script = phones(
                first, moh=lambda n: Reaction(digits="2", delay=0.4) if n == 0 else None
            )
            call = await FreeSwitchPeer().call(
                [ctl.address], sipio_headers(account, "queue:q_1"), script, caller_number=NUMBER
            )
            return call, ctl.acd

    call, acd = asyncio.run(main())
    assert ("playback", f"/var/lib/sipio/media/{account}/media_cb_ok.wav") in call.apps
    assert call.hung_up_by == "controller"
    events = trace(call.call_id)
    assert kinds(events) == ["queue_join", "queue_callback"]  # no leave: the place is kept
    joined, asked = events[0], next(e for e in events if e["type"] == "queue_callback")
    assert asked["position"] == 1 and NUMBER not in json.dumps(asked)
    # still in the queue at its original enqueue time, marked for the dialer
    score = acd.redis.zscore(acd.queue_key(account, "q_1"), call.call_id)
    assert score is not None and abs(score - joined["ts"]) < 50
    (waiting,) = acd.callbacks(account)
    assert waiting.call_id == call.call_id and waiting.callback == f"number:{NUMBER}"
    assert waiting.deadline - waiting.enqueued > 3_000_000  # the callback window, not max_wait
    assert acd.redis.zscore(acd.callback_registry, account) is not None
    assert acd.live(account, "q_1")["waiting"] == 1
    cfg = QueueConfig.from_row(queues[(account, "q_1")].row)
    acd.leave(cfg, call.call_id, "callback_expired")  # the stack's registry stays clean
    acd.redis.zrem(acd.callback_registry, account)


def test_a_caller_without_a_callable_number_keeps_holding(redis_url: str, trace: Watch) -> None:
    account = new_account()
    queues = setup(account, ("u_1",), options=(QueueOption(digit="2", action="callback"),))

    async def main() -> Any:
        async with controller(redis_url, queues, static(account)) as ctl:
            seat(ctl.acd, account, "u_1", ready=False)
            script = phones(
                first,
                moh=lambda n: Reaction(digits="2", delay=0.2) if n == 0
                else Reaction(delay=0.3, hangup=True),
            )  # fmt: skip
            return await FreeSwitchPeer().call(
                [ctl.address], sipio_headers(account, "queue:q_1"), script,
                caller_number="anonymous",
            )  # fmt: skip

    call = asyncio.run(main())
    events = trace(call.call_id)
    assert kinds(events) == ["queue_join", "queue_abandon"]
    steps = [e["data"]["detail"] for e in events if e["type"] == "queue_step"]
    assert "callback_unavailable" in steps


# -- the dialer ---------------------------------------------------------------------------------
def test_dialer_calls_back_when_an_agent_is_free(
    redis_url: str, fs: InboundFreeSwitch, originator: Originator, trace: Watch
) -> None:
    sc = scene(redis_url, ready=False, wrap_up_sec=1)
    account, queues, acd = sc.account, sc.queues, sc.acd
    originator.agents["u_1"] = Phone(delay=0.05)
    originator.callers[NUMBER] = Phone(delay=0.05, talk=0.3)

    async def main() -> None:
        async with dialer(acd, queues, fs) as d:
            await asyncio.sleep(0.3)
            assert originator.originates == []  # nobody ready: nobody is dialled
            make_available(acd, account, "u_1")
            await until(lambda: bool(results(trace, "cb-1")) and not d.driving)
            assert d.placed == 1

    asyncio.run(main())
    (command,) = originator.originates
    leg = leg_uuid("cb-1", 0, "u_1")
    assert f"[sip_h_X-Sipio-Account={account},sip_h_X-Sipio-Dial=user:u_1," in command
    assert f"origination_uuid={leg}" in command and "sofia/internal/u_1@127.0.0.1:5060" in command
    assert (
        f" &bridge({{sip_h_X-Sipio-Account={account},sip_h_X-Sipio-Dial=number:{NUMBER}," in command
    )
    assert command.endswith(f"sofia/internal/{NUMBER}@127.0.0.1:5060)")
    events = of(trace, "cb-1")
    assert kinds(events) == [
        "queue_join", "queue_callback", "queue_offer", "queue_answer",
        "queue_callback_connected", "queue_callback_result",
    ]  # fmt: skip
    answer = events[3]
    assert answer["agent_id"] == "u_1" and answer["callback"] is True and answer["attempt"] == 1
    assert events[-1]["outcome"] == "connected" and events[-1]["retry"] is False
    assert originator.ended[leg] == "NORMAL_CLEARING"
    assert agent(acd, account, "u_1")[:2] == ("available", "wrap_up")
    assert leftovers(acd, account) == EMPTY


def test_a_callback_agent_confirms_like_a_live_callers(
    redis_url: str, fs: InboundFreeSwitch, originator: Originator, trace: Watch
) -> None:
    sc = scene(redis_url, agent_confirm=1)
    originator.agents["u_1"] = Phone()
    originator.callers[NUMBER] = Phone(talk=0.1)

    async def main() -> None:
        async with dialer(sc.acd, sc.queues, fs) as d:
            await until(lambda: bool(results(trace, "cb-1")) and not d.driving)

    asyncio.run(main())
    (command,) = originator.originates
    prompt = "/var/lib/sipio/media/system/en-US/confirm-accept.wav"
    assert f"group_confirm_file={prompt},group_confirm_key=1," in command
    assert command.index("group_confirm_key") < command.index(" &bridge(")  # the agent's leg
    offer = next(e for e in of(trace, "cb-1") if e["type"] == "queue_offer")
    assert offer["lease_until"] - offer["ts"] == 12_000  # ring 2 s + 10 s to confirm


def test_the_callback_is_served_before_later_callers(
    redis_url: str, fs: InboundFreeSwitch, originator: Originator, trace: Watch
) -> None:
    """The place is kept: a caller who joined after the callback was asked waits behind it."""
    sc = scene(redis_url, ready=False)
    account, queues, cfg, acd = sc.account, sc.queues, sc.cfg, sc.acd
    assert acd.join(cfg, "live-2").position == 2
    make_available(acd, account, "u_1")
    assert acd.offer(cfg, "live-2") is None  # the head is the callback
    originator.agents["u_1"] = Phone()
    originator.callers[NUMBER] = Phone(talk=0.2)

    async def main() -> None:
        async with dialer(acd, queues, fs) as d:
            await until(lambda: bool(results(trace, "cb-1")) and not d.driving)

    asyncio.run(main())
    assert results(trace, "cb-1")[0]["outcome"] == "connected"
    offer = acd.offer(cfg, "live-2")  # now the live caller is next
    assert offer is not None and offer.user_ids == ("u_1",)
    acd.leave(cfg, "live-2", "abandon")


def test_an_agent_who_does_not_answer_is_a_miss_and_the_next_one_is_tried(
    redis_url: str, fs: InboundFreeSwitch, originator: Originator, trace: Watch
) -> None:
    sc = scene(redis_url, ("u_1", "u_2"), strategy="top_down", max_no_answer=1)
    account, queues, acd = sc.account, sc.queues, sc.acd
    originator.agents["u_1"] = Phone(answer=False, delay=0.1, cause="USER_BUSY")
    originator.agents["u_2"] = Phone()
    originator.callers[NUMBER] = Phone(talk=0.2)

    async def main() -> None:
        async with dialer(acd, queues, fs) as d:
            await until(lambda: bool(results(trace, "cb-1")) and not d.driving)

    asyncio.run(main())
    assert len(originator.originates) == 2
    assert "Dial=user:u_1" in originator.originates[0]
    assert "Dial=user:u_2" in originator.originates[1]
    events = of(trace, "cb-1")
    attempt = next(e for e in events if e["type"] == "queue_callback_attempt")
    assert attempt["outcome"] == "agent_no_answer" and attempt["cause"] == "USER_BUSY"
    assert attempt["agent_ids"] == ["u_1"]
    status, _, reason, misses = agent(acd, account, "u_1")
    assert (status, reason, misses) == ("on_break", "no_answer", 1)  # counted, auto-paused
    assert next(e for e in events if e["type"] == "queue_answer")["agent_id"] == "u_2"
    assert results(trace, "cb-1")[0]["outcome"] == "connected"
    assert leftovers(acd, account) == EMPTY


def test_a_caller_not_reached_is_tried_again_then_given_up(
    redis_url: str, fs: InboundFreeSwitch, originator: Originator, trace: Watch
) -> None:
    sc = scene(redis_url)
    account, queues, acd = sc.account, sc.queues, sc.acd
    originator.agents["u_1"] = Phone()
    originator.callers[NUMBER] = Phone(answer=False, delay=0.1)
    policy = CallbackPolicy(**{**FAST.__dict__, "attempts": 2})

    async def main() -> None:
        async with dialer(acd, queues, fs, policy) as d:
            await until(lambda: len(results(trace, "cb-1")) == 2 and not d.driving)

    asyncio.run(main())
    first_try, second_try = results(trace, "cb-1")
    assert (first_try["outcome"], first_try["retry"], first_try["attempt"]) == (
        "caller_unreached", True, 1,
    )  # fmt: skip
    assert (second_try["outcome"], second_try["retry"], second_try["attempt"]) == (
        "caller_unreached", False, 2,
    )  # fmt: skip
    assert second_try["ts"] - first_try["ts"] >= 300  # retry_sec
    events = of(trace, "cb-1")
    assert [e["type"] for e in events if e["type"] == "queue_answer"] == ["queue_answer"] * 2
    assert [e["attempt"] for e in events if e["type"] == "queue_answer"] == [1, 2]
    assert "queue_callback_retry" in kinds(events)
    legs = [leg_uuid("cb-1", n, "u_1") for n in (0, 1)]
    assert all(
        f"origination_uuid={leg}" in c for leg, c in zip(legs, originator.originates, strict=True)
    )
    assert agent(acd, account, "u_1")[:2] == ("available", "waiting")
    assert leftovers(acd, account) == EMPTY


def test_a_callback_withdrawn_between_two_tries_is_not_placed_again(
    redis_url: str, fs: InboundFreeSwitch, originator: Originator, trace: Watch
) -> None:
    sc = scene(redis_url)
    originator.agents["u_1"] = Phone()
    originator.callers[NUMBER] = Phone(answer=False, delay=0.05)
    policy = CallbackPolicy(**{**FAST.__dict__, "retry_sec": 1.0})

    async def main() -> None:
        async with dialer(sc.acd, sc.queues, fs, policy) as d:
            await until(lambda: bool(results(trace, "cb-1")))
            assert results(trace, "cb-1")[0]["retry"] is True
            assert await asyncio.to_thread(sc.acd.cancel_callback, sc.cfg, "cb-1") is True
            await asyncio.sleep(1.5)  # past the retry's due time
            await until(lambda: not d.driving)

    asyncio.run(main())
    assert len(originator.originates) == 1
    assert sc.acd.cancel_callback(sc.cfg, "cb-1") is False
    assert leftovers(sc.acd, sc.account) == EMPTY


def test_a_dialer_that_dies_mid_call_is_replaced(
    redis_url: str, fs: InboundFreeSwitch, originator: Originator, trace: Watch
) -> None:
    """Dialer A dies while the agent talks to the caller (its claim is left to expire);
    dialer B adopts the callback, follows the agent's leg to its end and sends the agent to
    wrap-up: nobody is left in_call, nothing is dialled twice."""
    sc = scene(redis_url)
    account, queues, acd = sc.account, sc.queues, sc.acd
    originator.agents["u_1"] = Phone(talk=None)
    originator.callers[NUMBER] = Phone(talk=None)
    leg = leg_uuid("cb-1", 0, "u_1")

    async def main() -> None:
        async with dialer(acd, queues, fs, node_id="ctl-a"):
            await until(lambda: any(e["type"] == "queue_callback_connected"
                                    for e in of(trace, "cb-1")))  # fmt: skip
        assert agent(acd, account, "u_1")[1] == "in_call"
        async with dialer(acd, queues, fs, node_id="ctl-b") as b:
            await until(lambda: bool(b.driving))  # adopted once A's claim ran out
            await asyncio.sleep(0.3)
            assert agent(acd, account, "u_1")[1] == "in_call"  # the leg is still up
            fs.call(lambda: originator.hang_up(leg))
            await until(lambda: bool(results(trace, "cb-1")) and not b.driving)

    asyncio.run(main())
    (result,) = results(trace, "cb-1")
    assert result["controller"] == "ctl-b" and result["outcome"] == "connected"
    assert len(originator.originates) == 1
    assert agent(acd, account, "u_1")[:2] == ("available", "waiting")
    assert leftovers(acd, account) == EMPTY


def test_two_dialers_place_each_callback_once(
    redis_url: str, fs: InboundFreeSwitch, originator: Originator, trace: Watch
) -> None:
    users = ("u_1", "u_2", "u_3")
    calls = tuple(f"cb-{n}" for n in range(4))
    sc = scene(redis_url, users, callbacks=calls)
    account, queues, acd = sc.account, sc.queues, sc.acd
    for user in users:
        originator.agents[user] = Phone(delay=0.05)
    originator.callers[NUMBER] = Phone(talk=0.2)

    async def main() -> None:
        async with (
            dialer(acd, queues, fs, node_id="ctl-a"),
            dialer(acd, queues, fs, node_id="ctl-b"),
        ):
            await until(lambda: all(results(trace, c) for c in calls), timeout=20)

    asyncio.run(main())
    for call in calls:
        assert [r["outcome"] for r in results(trace, call)] == ["connected"]
        assert sum(f"sipio_callback={call}," in c for c in originator.originates) == 1
    assert len(originator.originates) == 4
    assert leftovers(acd, account) == EMPTY


def test_an_uncallable_callback_is_dropped_without_ringing_anyone(
    redis_url: str, fs: InboundFreeSwitch, originator: Originator, trace: Watch
) -> None:
    """A record whose target would not make a safe dial string (written by something else
    than the queue runner) is withdrawn; no agent is offered it, none collects a miss."""
    sc = scene(redis_url, callbacks=())
    assert sc.acd.join(sc.cfg, "cb-bad").exit is None
    assert sc.acd.callback(sc.cfg, "cb-bad", "number:+49 30,x}&park()", 60) is not None

    async def main() -> None:
        async with dialer(sc.acd, sc.queues, fs) as d:
            await until(lambda: not sc.acd.callbacks(sc.account) and not d.driving)

    asyncio.run(main())
    assert originator.originates == []
    assert agent(sc.acd, sc.account, "u_1") == ("available", "waiting", None, 0)
    gone = next(e for e in of(trace, "cb-bad") if e["type"] == "queue_abandon")
    assert gone["reason"] == "callback_cancelled"
    assert leftovers(sc.acd, sc.account) == EMPTY


def test_freeswitch_unreachable_rings_no_agent(redis_url: str, trace: Watch) -> None:
    """Without FreeSWITCH the callback waits: no agent is offered a call that cannot be
    placed (no miss counted against them)."""
    sc = scene(redis_url)
    account, queues, cfg, acd = sc.account, sc.queues, sc.cfg, sc.acd
    down = InboundFreeSwitch()  # never started: its port 0 refuses

    async def main() -> None:
        async with dialer(acd, queues, down, port=1) as d:
            await until(lambda: bool(d.driving))
            await asyncio.sleep(0.5)
            assert d.inbound.last_error is not None and d.placed == 0

    asyncio.run(main())
    assert agent(acd, account, "u_1") == ("available", "waiting", None, 0)
    assert [c.call_id for c in acd.callbacks(account)] == ["cb-1"]
    assert "queue_offer" not in kinds(of(trace, "cb-1"))
    acd.leave(cfg, "cb-1", "callback_expired")
    assert leftovers(acd, account)["cb"] == []


def test_a_callback_nobody_serves_expires(redis_url: str, trace: Watch) -> None:
    sc = scene(redis_url, (), callbacks=())
    account, acd = sc.account, sc.acd
    waiting_callback(acd, sc.cfg, "cb-1", window=0.2)
    time.sleep(0.3)
    assert acd.sweep(account) == 1
    timeout = next(e for e in trace("cb-1") if e["type"] == "queue_timeout")
    assert timeout["reason"] == "callback_expired"
    assert leftovers(acd, account) == EMPTY


def test_the_esl_controller_process_places_callbacks(
    stack: Settings, tmp_path: Path, originator: Originator, trace: Watch
) -> None:
    """``sipio esl-controller --freeswitch HOST:PORT``: the dialer in the controller process,
    with the event-socket password from the stack's secret store and queues from its DB."""
    password = "Cb.proc-Pass_0123456789"
    open_store(stack).put(stack.freeswitch_esl_password_ref, password)
    tenant = Provisioner(stack).tenant("Callback Co", "callback.example.com")
    queue = tenant.make("queues", {"name": "cbq", "agent_ring_timeout_sec": 5})
    user = tenant.user_with_devices("7301", is_agent=1)
    tenant.make("agent_queue_assignments", {"queue_id": queue["id"], "user_id": user["id"]})
    engine = make_engine(stack.db_url)
    setup_ = asyncio.run(SqlQueueSource(engine).queue(tenant.id, queue["id"]))
    engine.dispose()
    assert setup_ is not None
    cfg = QueueConfig.from_row(setup_.row)
    acd = AcdStore.from_url(stack.redis_url)
    seat(acd, tenant.id, user["id"], queue["id"])
    call_id = f"cb-{uuid.uuid4().hex[:8]}"
    originator.agents[user["id"]] = Phone()
    originator.callers[NUMBER] = Phone(talk=0.2)
    with InboundFreeSwitch(password=password, originator=originator).running() as fs:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "sipio"), "esl-controller", "--state-dir",
             str(stack.state_dir), "--port", str(free_port(udp=False)), "--node-id", "ctl-proc",
             "--freeswitch", f"{fs.host}:{fs.port}", "--proxy", "127.0.0.1:5060"],
            stdout=subprocess.PIPE, stderr=(tmp_path / "ctl.log").open("w"), text=True,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            assert process.stdout.readline().startswith("listening")
            waiting_callback(acd, cfg, call_id)
            deadline = time.monotonic() + 20
            while not results(trace, call_id) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            process.terminate()
            process.wait(10)
    log = (tmp_path / "ctl.log").read_text()
    (result,) = results(trace, call_id)
    assert (result["outcome"], result["controller"]) == ("connected", "ctl-proc"), log
    (command,) = originator.originates
    assert f"sip_h_X-Sipio-Dial=user:{user['id']}" in command
    assert "esl.callbacks.disabled" not in log and password not in log
    assert fs.auth_failures == 0
