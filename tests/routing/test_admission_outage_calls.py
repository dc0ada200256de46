"""Redis stops in the middle of traffic, through real Kamailio, SIPp and rtpengine (SPEC 15):
each account's ``cac_redis_policy`` decides new calls, a call already up ends normally, and
once Redis is back (empty) admission works again and the reconciler leaves no counter stuck.
The stack is the test's own: the session stack's Redis is never stopped."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from control.demo import sipp
from control.kamailio import KamailioRpc
from control.live.admission import AdmissionStore
from control.live.kamailio_sync import live_calls, reconcile_once
from control.live.presence import PresenceStore
from control.settings import Settings
from control.stack import supervisor
from control.stack.components import Kamailio, Reconciler, RedisServer
from control.stack.ports import free_port
from control.stack.process import ProcessRecord, is_running, spawn, stop
from tests.conftest import free_settings
from tests.harness.phones import Phone
from tests.harness.provision import Provisioner, Tenant
from tests.routing.test_calls import proxy, settle, sipp_call_id

CARRIER_IP = "127.0.0.7"
HOLD = Path(__file__).parents[1] / "scenarios" / "uac_call_auth_hold.xml"


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = free_settings(Path(tmp_path_factory.mktemp("outage")))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Reconciler, "every_sec", 1)  # its passes must meet the outage
        supervisor.up(settings)
    try:
        yield settings
    finally:
        supervisor.down(settings.state_dir)


def tenant(prov: Provisioner, name: str, **account: object) -> tuple[Tenant, Phone, int, str]:
    """An account with an outbound trunk and one caller: (tenant, phone, carrier port, user)."""
    t = prov.tenant(name, f"{name.lower()}.example.com", max_out=5, **account)
    port = free_port(CARRIER_IP)
    t.make("sip_trunks", {"name": "pstn", "proxy": f"{CARRIER_IP}:{port}", "direction": "outbound"})
    user = t.user_with_devices("4001")
    device = user["devices"][0]
    return t, Phone(device["auth_username"], device["password"], t.domain), port, user["id"]


def out_count(store: AdmissionStore, account_id: str, expected: int, within: float = 3.0) -> int:
    """The account's outbound counter once it is ``expected`` (or the last value seen)."""
    deadline = time.monotonic() + within
    while True:
        value = int(store.live(account_id).counters.get("out", 0))
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def last_pass(status: Path) -> dict[str, Any]:
    """The reconciler's status file (rewritten each pass: read again if caught mid-write)."""
    for _ in range(20):
        try:
            return dict(json.loads(status.read_text()))
        except (ValueError, FileNotFoundError):
            time.sleep(0.05)
    raise AssertionError(f"unreadable {status}")


def cac_traces(stack: Settings, call_id: str) -> list[dict[str, Any]]:
    """The ``cac`` decisions Kamailio logged for a call (the log has them even without Redis)."""
    found = []
    for line in Kamailio(stack).log_path.read_text(errors="replace").splitlines():
        if "sipio {" in line and '"type":"cac"' in line:
            event = json.loads(line.split("sipio ", 1)[1])
            if event["call_id"] == call_id:
                found.append(event)
    return found


def test_policy_decides_while_redis_is_down_and_nothing_stays_stuck(
    outage_stack: Settings,
) -> None:
    stack = outage_stack
    prov = Provisioner(stack)
    open_t, open_phone, open_port, open_phone_user = tenant(prov, "FailOpen")
    shut_t, shut_phone, _, _ = tenant(prov, "FailClosed", cac_redis_policy="closed")
    settle(stack)
    store = AdmissionStore.from_url(stack.redis_url)
    rpc = KamailioRpc(stack.kamailio_rpc_socket)
    carrier = sipp.start(sipp.scenario("uas_answer.xml"), None, local_ip=CARRIER_IP,
                         local_port=open_port, calls=3, timeout=50)  # fmt: skip
    # A call that is up before the outage and still up when Redis comes back.
    held = sipp.start(HOLD, proxy(stack), timeout=40, auth=(open_phone.user, open_phone.password),
                      keys={"user": open_phone.user, "domain": open_t.domain,
                            "dialled": "+4930700000"})  # fmt: skip
    assert out_count(store, open_t.id, 1) == 1

    redis_record = next(r for r in supervisor.load_records(stack.state_dir) if r.name == "redis")
    assert stop(redis_record)
    restarted: ProcessRecord | None = None
    try:
        opened = open_phone.call(proxy(stack), "+4930700001")  # fail-open: admitted
        assert opened.ok, opened.output
        assert "SIP/2.0 200" in opened.messages
        (decision,) = cac_traces(stack, sipp_call_id(opened.messages))
        assert decision["admitted"] and decision["degraded"] and decision["policy"] == "open"
        assert decision["error"]  # why it was admitted without counting, for the operator

        shut = shut_phone.call(proxy(stack), "+4930700002", scenario="uac_call_refused.xml")
        assert shut.ok, shut.output
        assert "SIP/2.0 503" in shut.messages and "Retry-After: 5" in shut.messages
        (decision,) = cac_traces(stack, sipp_call_id(shut.messages))
        assert not decision["admitted"] and decision["policy"] == "closed"

        # The stack's reconciler meets the outage, says so, and keeps running.
        status = Reconciler(stack).status_path
        deadline = time.monotonic() + 5
        while not last_pass(status)["detail"].startswith("Redis"):
            assert time.monotonic() < deadline, "no reconcile pass during the outage"
            time.sleep(0.1)

        server = RedisServer(stack)  # back, and empty (the stack's Redis keeps nothing)
        restarted = spawn("redis", server.argv(), server.env(), server.log_path, stack.state_dir)
        deadline = time.monotonic() + 10
        while not server.check().ok:
            assert time.monotonic() < deadline, "Redis did not come back"
            time.sleep(0.05)
        time.sleep(1.2)  # the workers' backoff (1 s) runs out

        after = open_phone.call(proxy(stack), "+4930700003")
        assert after.ok, after.output
        (decision,) = cac_traces(stack, sipp_call_id(after.messages))
        assert decision["admitted"] and "degraded" not in decision

        # Redis forgot the held call; the stack's reconciler counts it again from the token
        # kept with its dialog (and only it: the calls that ended are not live).
        held_id = f"1-{held.proc.pid}@127.0.0.1"  # SIPp's Call-ID
        assert set(live_calls(rpc)) == {held_id}
        assert out_count(store, open_t.id, 1, within=5) == 1
        assert store.live(open_t.id).calls == 1
        assert last_pass(status)["ok"]

        result = held.wait()  # the call that was up all along ends normally
        assert result.ok, result.output
        assert "SIP/2.0 200" in result.messages.rsplit("BYE ", 1)[1]
        assert out_count(store, open_t.id, 0) == 0  # its BYE gave the adopted count back
        assert carrier.wait().ok
        second = reconcile_once(rpc, store, grace=0)
        assert second.released == 0 and second.drifted == 0
        assert store.live(open_t.id).counters == {}
        assert store.live(shut_t.id).counters == {}

        # The stack's presence feed joined the events again (its consumer group was lost).
        assert open_phone.register(proxy(stack)).ok
        presence = PresenceStore(store.redis)
        deadline = time.monotonic() + 4
        while not presence.get(open_t.id, open_phone_user).reachable:
            assert time.monotonic() < deadline, "presence feed stopped after the restart"
            time.sleep(0.1)
        running = {r.name: is_running(r) for r in supervisor.load_records(stack.state_dir)}
        assert running["reconciler"] and running["collector"] and running["kamailio"]
    finally:
        held.stop()
        carrier.stop()
        if restarted is not None:
            stop(restarted)
