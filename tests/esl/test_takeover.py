"""A controller dies mid-call; FreeSWITCH (the peer) resumes its dialplan into the next
``socket`` action and another controller carries the call on from Redis."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import insert

from control.db import make_engine
from control.db import models as m
from control.db.migrate import upgrade
from control.stack.ports import free_port
from tests.esl.harness import doc, new_account, running, session, static, trace
from tests.esl.peer import Caller, FreeSwitchPeer, Reaction, sipio_headers
from tests.esl.queues import controller, phones, queue_row, seat, setup
from tests.esl.queues import first as first_agent
from tests.esl.test_controller import steps


def _held_menu(first: Reaction, then: Reaction) -> tuple[Caller, asyncio.Event]:
    """The first menu prompt lasts until the test lets it finish; a queue's first agent
    answers."""
    started = asyncio.Event()
    agents = phones(first_agent)
    assert agents.react is not None

    def react(app: str, arg: str, n: int) -> Reaction | None:
        if app == "play_and_get_digits":
            if n == 0:
                started.set()
                return first
            return then
        return agents.react(app, arg, n) if agents.react else None

    return Caller(react=react), started


def _flow_db(path: Path, account: str) -> str:
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(insert(m.Account).values(id=account, name="takeover"))
        c.execute(
            insert(m.CallFlow).values(
                id="flow_main_ivr", account_id=account, name="main", published_version=1
            )
        )
        c.execute(
            insert(m.CallFlowVersion).values(
                id="cfv_main_1", account_id=account, flow_id="flow_main_ivr", version=1,
                status="published", document=doc("main-ivr.json"), published_at=1,
            )
        )  # fmt: skip
        c.execute(insert(m.Queue).values(**queue_row(account, "q_sales")))  # nobody logged in
        c.execute(insert(m.VoicemailBox).values(id="vm_sales", account_id=account, name="sales"))
    engine.dispose()
    return url


def _controller(state: Path, port: int, redis_url: str, db_url: str, node: str) -> Any:
    sipio = Path(sys.executable).parent / "sipio"
    process = subprocess.Popen(
        [str(sipio), "esl-controller", "--state-dir", str(state), "--port", str(port),
         "--redis-url", redis_url, "--db-url", db_url, "--node-id", node],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("listening"), line
    return process


def test_killed_controller_process_is_replaced_mid_call(
    tmp_path: Path, redis_url: str, redis_sync: redis.Redis
) -> None:
    """SIGKILL while the caller listens to the menu; the key pressed meanwhile is not lost:
    the restarted controller reads it from the channel and goes on to the queue."""
    account = new_account()
    db_url = _flow_db(tmp_path / "flows.db", account)
    port = free_port(udp=False)
    hold = asyncio.Event()
    caller, menu_started = _held_menu(Reaction(hold=hold, digits="1"), Reaction())
    first = _controller(tmp_path, port, redis_url, db_url, "ctl-1")
    second = None

    async def main() -> Any:
        nonlocal second
        address = ("127.0.0.1", port)
        headers = sipio_headers(account, "flow:flow_main_ivr")
        call = asyncio.create_task(FreeSwitchPeer().call([address, address], headers, caller))
        await asyncio.wait_for(menu_started.wait(), 10)
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 10)
        second = await asyncio.to_thread(_controller, tmp_path, port, redis_url, db_url, "ctl-2")
        hold.set()  # the caller presses 1 while no controller is connected
        return await asyncio.wait_for(call, 15)

    try:
        call = asyncio.run(main())
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(10)
    assert call.connections == 2
    apps = [app for app, _ in call.apps]
    assert apps[:2] == ["answer", "play_and_get_digits"] and apps[-1] == "record"
    assert call.hung_up_by == "controller"
    events = [e for e in trace(redis_sync, call.call_id) if e["type"] == "flow_step"]
    assert steps(events) == [
        ("entry", "default", "node"),
        ("hours", "in_hours", "node"),
        ("menu", "digit:1", "node"),
        ("sales", "no_agents", "node"),
        ("sales_vm", None, "end"),
    ]  # buffered before the crash, flushed by the successor: nothing lost, nothing twice
    assert {e["data"]["controller"] for e in events} == {"ctl-2"}
    stored = session(redis_sync, account, call.call_id)
    assert stored["owner"] == "ctl-2" and stored["epoch"] == "2"
    commands = [c.split("\n")[0] for c in call.commands]
    assert commands.count("connect") == 2 and commands.count("resume") == 2


def test_interrupted_prompt_is_replayed_by_the_next_controller(
    redis_url: str, redis_sync: redis.Redis
) -> None:
    account = new_account()
    hold = asyncio.Event()
    caller, menu_started = _held_menu(Reaction(hold=hold), Reaction(digits="2"))

    async def main() -> Any:
        flows = static(account, doc("main-ivr.json"))
        queues = setup(account, ("u_1",), "q_support")
        async with (
            controller(redis_url, queues, flows, "ctl-a") as a,
            controller(redis_url, queues, flows, "ctl-b") as b,
        ):
            seat(a.acd, account, "u_1", "q_support")
            headers = sipio_headers(account, "flow:flow_main_ivr")
            call = asyncio.create_task(
                FreeSwitchPeer().call([a.address, b.address], headers, caller)
            )
            await asyncio.wait_for(menu_started.wait(), 10)
            await a.server.stop()  # controller A vanishes with the prompt still playing
            hold.set()  # the prompt ends; nobody pressed anything
            return await asyncio.wait_for(call, 15), b.controller.stats

    call, stats = asyncio.run(main())
    gathers = [arg for app, arg in call.apps if app == "play_and_get_digits"]
    assert len(gathers) == 2 and gathers[0] == gathers[1]  # same command, same seq: re-issued
    assert stats.resumed == 1
    flow_steps = [e for e in trace(redis_sync, call.call_id) if e["type"] == "flow_step"]
    assert steps(flow_steps)[2:] == [
        ("menu", "digit:2", "node"),
        ("support", "answered", "end"),
    ]
    assert call.bridged == ["u_1"]


def test_takeover_during_a_bridge_ends_the_call_cleanly(
    redis_url: str, redis_sync: redis.Redis
) -> None:
    account = new_account()
    flow = {
        "id": "flow_dial", "name": "dial", "version": 1, "start": "entry",
        "nodes": [
            {"id": "entry", "type": "entry", "data": {"kind": "entry", "trigger": "inbound"}},
            {"id": "reception", "type": "dial",
             "data": {"kind": "dial", "targetKind": "extension", "target": "100"}},
            {"id": "vm", "type": "voicemail", "data": {"kind": "voicemail", "mailboxId": "vm_1"}},
        ],
        "edges": [
            {"id": "e1", "source": "entry", "target": "reception"},
            {"id": "e2", "source": "reception", "target": "vm", "sourceHandle": "no_answer"},
        ],
    }  # fmt: skip
    hold = asyncio.Event()
    started = asyncio.Event()

    def react(app: str, arg: str, n: int) -> Reaction | None:
        if app == "bridge":
            started.set()
            return Reaction(hold=hold, variables={"originate_disposition": "SUCCESS"})
        return None

    async def main() -> Any:
        flows = static(account, flow)
        async with running(redis_url, flows, "ctl-a") as a, running(redis_url, flows, "ctl-b") as b:
            headers = sipio_headers(account, "flow:flow_dial")
            call = asyncio.create_task(
                FreeSwitchPeer().call([a.address, b.address], headers, Caller(react=react))
            )
            await asyncio.wait_for(started.wait(), 10)
            await a.server.stop()
            hold.set()
            return await asyncio.wait_for(call, 15)

    call = asyncio.run(main())
    bridges = [arg for app, arg in call.apps if app == "bridge"]
    assert len(bridges) == 1  # never dialled twice
    assert bridges[0] == (
        f"{{sip_h_X-Sipio-Account={account},sip_h_X-Sipio-Dial=extension:100,call_timeout=25,"
        "hangup_after_bridge=false}sofia/internal/100@127.0.0.1:5060"
    )
    assert call.hung_up_by == "controller"
    ends = trace(redis_sync, call.call_id)
    assert [(e["node_id"], e["data"]["detail"]) for e in ends if e["data"]["step"] == "end"] == [
        ("reception", "controller_takeover")
    ]
    assert json.loads(session(redis_sync, account, call.call_id)["state"])["ended"]
