"""The flow controller end to end: the FreeSWITCH peer places calls through the outbound
socket with Kamailio's headers, the controller runs real flows, session state and traces go
to the stack's Redis."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from sqlalchemy import insert

from control.core.flow import CommandKind
from control.db import make_engine
from control.db import models as m
from control.db.migrate import upgrade
from esl.apps import MediaConfig
from esl.session_store import SessionStore
from esl.voicemail import VoicemailConfig, VoicemailFeature, VoicemailStore
from tests.esl.harness import doc, new_account, running, session, static, trace
from tests.esl.peer import Caller, FreeSwitchPeer, Reaction, sipio_headers
from tests.esl.queues import MOH, controller, first, phones, seat, setup

__all__ = ["MOH", "steps"]  # shared with test_takeover


def voicemail(tmp_path: Path, account: str, box: str) -> VoicemailFeature:
    """The voicemail feature over a config DB holding the account's box."""
    url = f"sqlite:///{tmp_path / 'config.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(insert(m.Account).values(id=account, name="ivr"))
        c.execute(insert(m.VoicemailBox).values(id=box, account_id=account, name=box))
    return VoicemailFeature(VoicemailStore(engine), VoicemailConfig())


def steps(events: list[dict[str, Any]]) -> list[tuple[str | None, str | None, str]]:
    return [(e["node_id"], e["outcome"], e["data"]["step"]) for e in events]


def test_ivr_menu_digit_queue_then_voicemail(
    tmp_path: Path, redis_url: str, redis_sync: redis.Redis
) -> None:
    """docs/flows/main-ivr.json: hours fail open, menu, key 1, the sales queue has no agent
    logged in (no_agents), sales voicemail records. Every node entered is in the trace
    stream, in order."""
    account = new_account()
    caller = Caller(on={"play_and_get_digits": [Reaction(digits="1")]})
    features = {CommandKind.VOICEMAIL: voicemail(tmp_path, account, "vm_sales")}
    media = MediaConfig(media_root=str(tmp_path / "media"))

    async def main() -> Any:
        queues = setup(account, (), "q_sales")
        flows = static(account, doc("main-ivr.json"))
        async with controller(redis_url, queues, flows, features=features, media=media) as ctl:
            headers = sipio_headers(account, "flow:flow_main_ivr", {"caller_cid": "+15551234"})
            return await FreeSwitchPeer().call([ctl.address], headers, caller)

    call = asyncio.run(main())
    apps = [app for app, _ in call.apps]
    assert apps[:2] == ["answer", "play_and_get_digits"] and apps[-1] == "record"
    pagd = dict(call.apps)["play_and_get_digits"].split(" ")
    assert pagd[:5] == ["1", "1", "1", "5000", "none"]
    assert pagd[5] == f"{tmp_path}/media/{account}/media_main_menu.wav"
    recorded = dict(call.apps)["record"].split(" ")[0]
    assert recorded.startswith(f"{tmp_path}/media/{account}/vm/")  # the box's private store
    assert call.hung_up_by == "controller" and call.hangup_cause == "NORMAL_CLEARING"
    assert call.connections == 1
    commands = [c.split("\n")[0] for c in call.commands[:6]]
    assert commands == [
        "connect", "resume", "myevents", "filter Event-Name CHANNEL_EXECUTE_COMPLETE",
        "filter Event-Name CHANNEL_HANGUP", "linger 1",
    ]  # fmt: skip

    events = [e for e in trace(redis_sync, call.call_id) if e["type"] == "flow_step"]
    assert all(e["account_id"] == account for e in events)
    assert steps(events) == [
        ("entry", "default", "node"),
        ("hours", "in_hours", "node"),
        ("menu", "digit:1", "node"),
        ("sales", "no_agents", "node"),
        ("sales_vm", None, "end"),
    ]
    assert [e["data"]["seq"] for e in events] == [0, 1, 2, 3, 4]
    assert events[2]["data"]["dtmf"] == "1"
    assert events[-1]["data"]["detail"] == "voicemail"
    assert all(isinstance(e["ts"], int) and e["ts"] > 1_600_000_000_000 for e in events)

    stored = session(redis_sync, account, call.call_id)
    state = json.loads(stored["state"])
    assert state["ended"] and state["trace"] == [] and stored["pending"] == ""
    assert state["variables"]["caller_cid"] == "+15551234"  # Kamailio's X-Sipio-Vars
    assert state["variables"]["call_id"] == call.call_id
    assert 0 < redis_sync.pttl(f"sipio:flow:{{{account}}}:{call.call_id}") <= 10 * 60 * 1000


@pytest.fixture
def crm() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            query = parse_qs(urlsplit(self.path).query)
            tier = "gold" if self.path.startswith("/api/accounts/123456") else "silver"
            body = json.dumps({"tier": tier, "caller": query.get("caller", [""])[0]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_collected_digits_drive_an_http_lookup_then_a_queue(
    redis_url: str, redis_sync: redis.Redis, crm: tuple[str, list[str]]
) -> None:
    """main-ivr.json with its CRM pointed at a local server: key 3, account number, the
    controller calls the CRM within the node's budget, a gold tier goes to the priority
    queue, an agent answers and the flow ends."""
    base, seen = crm
    flow = doc("main-ivr.json")
    for node in flow["nodes"]:
        if node["id"] == "crm":
            node["data"]["url"] = base + "/api/accounts/{{account_number}}?caller={{caller_number}}"
    account = new_account()
    caller = phones(first)
    caller.on["play_and_get_digits"] = [Reaction(digits="3"), Reaction(digits="123456#")]

    async def main() -> Any:
        queues = setup(account, ("u_gold",), "q_priority")
        async with controller(redis_url, queues, static(account, flow)) as ctl:
            seat(ctl.acd, account, "u_gold", "q_priority")
            headers = sipio_headers(account, "flow:flow_main_ivr")
            return await FreeSwitchPeer().call([ctl.address], headers, caller)

    call = asyncio.run(main())
    assert seen == ["/api/accounts/123456?caller=sipp"]  # Caller-Caller-ID-Number: sipp
    assert call.bridged == ["u_gold"]  # the priority queue's agent took the call
    events = [e for e in trace(redis_sync, call.call_id) if e["type"] == "flow_step"]
    assert steps(events)[3:] == [
        ("account", "default", "node"),
        ("crm", "success", "node"),
        ("vip", "true", "node"),
        ("priority", "answered", "end"),
    ]
    crm_step = events[4]["data"]
    assert crm_step["variables"] == {"tier": "gold", "crm_status": 200}
    assert events[3]["data"]["variables"] == {"account_number": "123456"}


def test_caller_hangup_during_the_menu_ends_the_flow(
    redis_url: str, redis_sync: redis.Redis
) -> None:
    account = new_account()
    caller = Caller(on={"play_and_get_digits": [Reaction(hangup=True)]})

    async def main() -> Any:
        async with running(redis_url, static(account, doc("main-ivr.json"))) as ctl:
            return await FreeSwitchPeer().call(
                [ctl.address], sipio_headers(account, "flow:flow_main_ivr"), caller
            )

    call = asyncio.run(main())
    assert call.hung_up_by == "caller"
    assert not any("call-command: hangup" in c for c in call.commands)  # nobody left to hang up
    assert steps(trace(redis_sync, call.call_id))[-1] == ("menu", "hangup", "end")


def test_direct_queue_target_and_rejected_calls(redis_url: str, redis_sync: redis.Redis) -> None:
    account = new_account()

    async def main() -> Any:
        async with controller(
            redis_url, setup(account, ("u_1",), "q_support"), static(account)
        ) as ctl:
            seat(ctl.acd, account, "u_1", "q_support")
            peer = FreeSwitchPeer()
            queued = await peer.call(
                [ctl.address], sipio_headers(account, "queue:q_support"), phones(first)
            )
            nothing = await peer.call([ctl.address], {}, Caller())
            missing = await peer.call([ctl.address], sipio_headers(account, "flow:flow_nope"))
            forged = await peer.call([ctl.address], sipio_headers("acc_x/../y", "flow:f"))
            return queued, nothing, missing, forged, ctl.controller.stats

    queued, nothing, missing, forged, stats = asyncio.run(main())
    assert [a for a, _ in queued.apps] == ["answer", "multiset", "bridge"]
    flow_steps = [e for e in trace(redis_sync, queued.call_id) if e["type"] == "flow_step"]
    assert steps(flow_steps) == [
        ("entry", "default", "node"),
        ("queue", None, "end"),
    ]
    assert nothing.hangup_cause == forged.hangup_cause == "CALL_REJECTED"
    assert nothing.apps == [] and stats.rejected == 2
    assert missing.hangup_cause == "NORMAL_TEMPORARY_FAILURE"
    unavailable = trace(redis_sync, missing.call_id)
    assert [e["data"]["detail"] for e in unavailable] == ["flow_unavailable"]
    assert session(redis_sync, account, missing.call_id) == {}  # nothing left behind


def test_a_controller_that_lost_the_call_cannot_write_it(redis_url: str) -> None:
    async def main() -> None:
        store = SessionStore.from_url(redis_url)
        account, call_id = new_account(), "fence@test"
        first = await store.claim(account, call_id, "a")
        second = await store.claim(account, call_id, "b")
        assert (first, second) == (1, 2)
        from control.core.flow import SessionState
        from esl.session_store import SessionRecord

        state = SessionState("c", "f", {"f": 1}, "f", "en-US", "male", 1)
        assert not await store.save(SessionRecord(account, call_id, first, "a", state, None))
        assert await store.save(SessionRecord(account, call_id, second, "b", state, None))
        loaded = await store.load(account, call_id)
        assert loaded is not None and loaded.owner == "b" and loaded.epoch == 2
        await store.close()

    asyncio.run(main())
