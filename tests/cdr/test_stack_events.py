"""Real events from Kamailio's KEMI script and dialog module, consumed by the stack's own
collector (the one `sipio up` starts): an answered call and a routing-time reject become
complete CDRs, and `sipio cdr` / `sipio trace` show them as an operator would."""

from __future__ import annotations

import csv
import io
import subprocess
import time
from typing import Any

from control.cdr.lake import Lake
from control.cdr.query import trace
from control.cdr.tables import CALL_CDR
from control.settings import Settings
from control.stack import supervisor
from tests.harness.phones import Phone, header
from tests.harness.provision import Provisioner


def wait_for_cdrs(lake: Lake, call_ids: set[str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        rows = {
            r["call_id"]: r for r in lake.read(CALL_CDR).to_pylist() if r["call_id"] in call_ids
        }
        complete = set(rows) == call_ids and all(r["end_ts"] for r in rows.values())
        if complete or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def test_kemi_route_and_reject_events_become_cdrs_and_traces(
    stack: Settings, sipio_bin: str
) -> None:
    since = str(int(time.time() * 1000))
    tenant = Provisioner(stack).tenant("Lake Co", "lake.example.com")
    callee = tenant.user_with_devices("7001")
    tenant.user_with_devices("7002", dnd=1)  # DND without a fallback: 486 at routing time
    caller = tenant.user_with_devices("7003")
    time.sleep(stack.config_check_sec * 2 + 0.2)
    proxy = f"{stack.sip_host}:{stack.sip_port}"
    phones = {}
    for user in (callee, caller):
        device = user["devices"][0]
        phones[user["username"]] = Phone(device["auth_username"], device["password"], tenant.domain)
        assert phones[user["username"]].register(proxy).ok
    answering = phones["7001"].answer()
    ok = phones["7003"].call(proxy, "7001")
    assert ok.ok and answering.wait().ok, ok.output
    refused = phones["7003"].call(proxy, "7002", scenario="uac_call_refused.xml")
    assert refused.ok, refused.output
    answered_id, busy_id = header(ok.messages, "Call-ID")[0], header(refused.messages, "Call-ID")[0]

    lake = Lake(stack)
    rows = wait_for_cdrs(lake, {answered_id, busy_id})
    assert set(rows) == {answered_id, busy_id}, "the stack's collector did not commit the calls"
    routed, busy = rows[answered_id], rows[busy_id]
    assert (routed["account_id"], routed["route_kind"], routed["direction"]) == (
        tenant.id,
        "ring",
        "internal",
    )
    assert routed["device_id"] == caller["devices"][0]["id"]
    assert (routed["from_num"], routed["to_num"]) == ("7003", "7001")
    assert (routed["disposition"], routed["answered"], routed["hangup_cause"]) == (
        "answered",
        1,
        "caller_bye",
    )
    assert routed["start_ts"] <= routed["answer_ts"] <= routed["end_ts"]
    assert routed["billsec"] is not None and routed["duration_sec"] >= routed["billsec"]
    assert (busy["disposition"], busy["sip_code"], busy["answered"]) == ("busy", 486, 0)
    assert busy["end_ts"] >= busy["start_ts"]
    # A Reject directive names no account and a rejected call has no dialog: the CDR's account
    # is the caller's only once the route event carries it (asked of the emitter).
    assert busy["account_id"] in (tenant.id, None)

    events = trace(lake, answered_id)
    kinds = [e["type"] for e in events]
    assert kinds.index("route") < kinds.index("call_answered") < kinds.index("call_ended")
    assert all(e["account_id"] == tenant.id for e in events)

    shown = subprocess.run([sipio_bin, "trace", busy_id, "--state-dir", str(stack.state_dir)],
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "route" in shown.stdout and "Busy Here" in shown.stdout
    listed = subprocess.run(
        [sipio_bin, "cdr", "list", "--state-dir", str(stack.state_dir), "--since", since,
         "--limit", "10000", "--format", "csv"], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    found = {r["call_id"]: r for r in csv.DictReader(io.StringIO(listed.stdout, newline=""))}
    assert found[busy_id]["disposition"] == "busy" and answered_id in found

    status = {s.name: s for s in supervisor.status(stack.state_dir)}
    assert status["collector"].ok, status["collector"].health.detail
