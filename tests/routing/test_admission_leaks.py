"""No counter stays stuck: Kamailio killed mid-call, then the reconciler compares Redis with
the dialogs Kamailio really has (dlg.list) and gives the dead call's counters back."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.demo import sipp
from control.kamailio import KamailioRpc
from control.live.admission import AdmissionStore
from control.live.kamailio_sync import live_calls, reconcile_once
from control.settings import Settings
from control.stack import supervisor
from control.stack.components import Kamailio
from control.stack.ports import free_port
from control.stack.process import spawn, stop
from tests.conftest import free_settings
from tests.harness.phones import Phone
from tests.harness.provision import Provisioner
from tests.routing.test_calls import proxy, settle


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = free_settings(Path(tmp_path_factory.mktemp("leaks")))
    supervisor.up(settings)
    try:
        yield settings
    finally:
        supervisor.down(settings.state_dir)


def out_count(store: AdmissionStore, account_id: str) -> int:
    return int(store.live(account_id).counters.get("out", 0))


def test_counters_of_calls_lost_with_kamailio_are_released(own_stack: Settings) -> None:
    stack = own_stack
    tenant = Provisioner(stack).tenant("Leaky", "leaky.example.com", max_out=5)
    port = free_port()
    tenant.make(
        "sip_trunks", {"name": "pstn", "proxy": f"127.0.0.5:{port}", "direction": "outbound"}
    )
    device = tenant.user_with_devices("6001")["devices"][0]
    phone = Phone(device["auth_username"], device["password"], tenant.domain)
    settle(stack)
    carrier = sipp.start(sipp.scenario("uas_answer.xml"), None, local_ip="127.0.0.5", local_port=port,
                         timeout=15)  # fmt: skip
    talking = sipp.start(sipp.scenario("uac_call_auth_rtp.xml"), proxy(stack), timeout=15,
                         keys={"user": phone.user, "domain": tenant.domain, "dialled": "+4930600000"},
                         auth=(phone.user, phone.password), extra=["-mp", str(free_port())])  # fmt: skip
    store = AdmissionStore.from_url(stack.redis_url)
    rpc = KamailioRpc(stack.kamailio_rpc_socket)
    deadline = time.monotonic() + 5
    while not live_calls(rpc) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(live_calls(rpc)) == 1
    assert out_count(store, tenant.id) == 1
    assert reconcile_once(rpc, store, grace=0).released == 0  # a live call is left alone

    record = next(r for r in supervisor.load_records(stack.state_dir) if r.name == "kamailio")
    os.killpg(record.pid, signal.SIGKILL)  # every worker dies with the dialog it held
    stop(record, timeout=5)
    talking.stop()
    carrier.stop()
    assert out_count(store, tenant.id) == 1  # Redis still counts the dead call

    component = Kamailio(stack)
    restarted = spawn("kamailio", component.argv(), component.env(), component.log_path,
                      stack.state_dir)  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not component.check().ok and time.monotonic() < deadline:
            time.sleep(0.2)
        assert component.check().ok
        report = reconcile_once(rpc, store, grace=0)
        assert report.released == 1
        assert out_count(store, tenant.id) == 0
    finally:
        stop(restarted)
