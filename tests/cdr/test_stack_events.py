"""Real events from Kamailio's KEMI script and dialog module, consumed by the stack's own
collector (the one `sipio up` starts): answered, busy, unanswered and admission-refused calls
become complete CDRs, priced by the account's rate table, and `sipio cdr` / `sipio trace` show
them as an operator would."""

from __future__ import annotations

import csv
import io
import subprocess
import time
from pathlib import Path
from typing import Any

from control.cdr.lake import Lake
from control.cdr.query import trace
from control.cdr.tables import CALL_CDR
from control.demo import sipp
from control.settings import Settings
from control.stack import supervisor
from control.stack.ports import free_port
from tests.harness.phones import Phone, header
from tests.harness.provision import Provisioner

TRUNK_IP = "127.0.0.7"  # the carrier of the outbound call
CANCEL = Path(__file__).parent / "scenarios" / "uac_call_cancel.xml"


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


def sipio_trace(sipio_bin: str, stack: Settings, call_id: str) -> list[str]:
    shown = subprocess.run([sipio_bin, "trace", call_id, "--state-dir", str(stack.state_dir)],
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.splitlines()


def kinds_of(timeline: list[str]) -> list[str]:
    """Event types of `sipio trace` lines (date, time, "+", offset, emitter, type, ...)."""
    return [line.split()[5] for line in timeline]


def test_unanswered_cancelled_refused_and_rated_calls(stack: Settings, sipio_bin: str) -> None:
    """A callee that rings until its ring timeout, a caller who hangs up while it rings, an
    answered outbound call priced from the account's rate table, and the same account refused
    by admission control once capped."""
    tenant = Provisioner(stack).tenant("Rated Co", "rated.example.com")
    sleeper = tenant.user_with_devices("7101", ring_timeout_sec=2)  # no fwd_noanswer: 480
    patient = tenant.user_with_devices("7102", ring_timeout_sec=30)
    caller = tenant.user_with_devices("7103")
    port = free_port()
    tenant.make("sip_trunks", {"name": "pstn", "proxy": f"{TRUNK_IP}:{port}",
                               "direction": "outbound"})  # fmt: skip
    line = tenant.make("rates", {"name": "Berlin", "prefix": "4930", "per_minute_micros": 60_000,
                                 "connect_micros": 500, "min_sec": 30, "increment_sec": 6})  # fmt: skip
    assert line["account_id"] == tenant.id
    time.sleep(stack.config_check_sec * 2 + 0.2)
    proxy = f"{stack.sip_host}:{stack.sip_port}"
    phones = {}
    for user in (sleeper, patient, caller):
        device = user["devices"][0]
        phones[user["username"]] = Phone(device["auth_username"], device["password"], tenant.domain)
        assert phones[user["username"]].register(proxy).ok

    ringing = phones["7101"].ring(timeout=20)
    unanswered = phones["7103"].call(proxy, "7101", scenario="uac_call_refused.xml")
    assert unanswered.ok, unanswered.output
    assert "SIP/2.0 180" in unanswered.messages and "SIP/2.0 480" in unanswered.messages
    assert ringing.wait().ok  # the callee rang, then the proxy cancelled it (CANCEL, 487)

    ringing = phones["7102"].ring(timeout=20)
    me = phones["7103"]
    hung_up = sipp.run(CANCEL, proxy, local_ip=me.ip, timeout=30, auth=(me.user, me.password),
                       keys={"user": me.user, "domain": me.domain, "dialled": "7102"})  # fmt: skip
    assert hung_up.ok, hung_up.output
    assert "SIP/2.0 180" in hung_up.messages and "SIP/2.0 487" in hung_up.messages
    assert ringing.wait().ok  # the CANCEL reached the callee

    carrier = sipp.start(sipp.scenario("uas_answer.xml"), None, local_ip=TRUNK_IP, local_port=port,
                         timeout=20)  # fmt: skip
    rated = phones["7103"].call(proxy, "+4930555123")
    assert rated.ok and carrier.wait().ok, rated.output

    Provisioner(stack).patch("accounts", tenant.id, {"max_out": 0})
    time.sleep(stack.config_check_sec * 2 + 0.2)
    capped = phones["7103"].call(proxy, "+4930555124", scenario="uac_call_refused.xml")
    assert capped.ok and "SIP/2.0 503" in capped.messages, capped.output

    calls = (("no_answer", unanswered), ("cancel", hung_up), ("rated", rated), ("cac", capped))
    ids = {name: header(result.messages, "Call-ID")[0] for name, result in calls}
    rows = wait_for_cdrs(Lake(stack), set(ids.values()))
    assert set(rows) == set(ids.values()), "the stack's collector did not commit the calls"
    nobody, gave_up, paid, refused = (rows[ids[k]] for k, _ in calls)

    assert (nobody["disposition"], nobody["sip_code"], nobody["answered"]) == ("no_answer", 480, 0)
    assert nobody["hangup_cause"] == "Temporarily Unavailable"
    assert (nobody["direction"], nobody["account_id"], nobody["billsec"]) == (
        "internal",
        tenant.id,
        0,
    )
    assert nobody["duration_sec"] >= 2  # it rang for the user's ring timeout
    assert nobody["cost_micros"] is None  # the table has no internal line: unrated, not 0
    timeline = sipio_trace(sipio_bin, stack, ids["no_answer"])
    kinds = kinds_of(timeline)
    assert kinds.index("route") < kinds.index("fallback") < kinds.index("call_failed"), timeline
    given_up = timeline[kinds.index("fallback")]  # the ring timeout fired: 408 -> 480
    assert "no_answer(408)" in given_up and '"code":480' in given_up, given_up
    assert "Temporarily Unavailable" in given_up
    assert float(given_up.split()[3].rstrip("s")) >= 2.0  # offset from the route event

    # complete and unanswered; which failure it was is test_a_cancelled_call_says_so's matter
    assert gave_up["end_ts"] and gave_up["disposition"] not in ("answered", "in_progress")
    assert (gave_up["answered"], gave_up["billsec"]) == (0, 0) and gave_up["duration_sec"] >= 1
    timeline = sipio_trace(sipio_bin, stack, ids["cancel"])
    kinds = kinds_of(timeline)
    assert kinds[0] == "route" and kinds[-1] == "call_failed", timeline
    assert float(timeline[-1].split()[3].rstrip("s")) >= 1.5  # rang until the caller gave up

    assert (paid["disposition"], paid["direction"], paid["to_num"]) == (
        "answered",
        "outbound",
        "+4930555123",
    )
    assert paid["trunk_id"] is None or paid["trunk_id"].startswith("tr_")
    assert 0 < paid["billsec"] <= 30  # raised to the 30 s minimum
    assert paid["cost_micros"] == 500 + 60_000 * 30 // 60

    assert (refused["disposition"], refused["sip_code"], refused["hangup_cause"]) == (
        "rejected", 503, "rejected_by_cac",
    )  # fmt: skip
    assert (refused["answered"], refused["account_id"]) == (0, tenant.id)
    assert refused["cost_micros"] == 0  # priced by the table, but never answered
    timeline = sipio_trace(sipio_bin, stack, ids["cac"])
    kinds = kinds_of(timeline)
    assert kinds.index("route") < kinds.index("cac") < kinds.index("call_failed"), timeline
    assert timeline[kinds.index("cac")].split()[4] == "cac"  # the emitter column
    assert "rejected_by_cac" in timeline[kinds.index("call_failed")]


def test_a_cancelled_call_says_so(stack: Settings) -> None:
    tenant = Provisioner(stack).tenant("Cancel Co", "cancel.example.com")
    callee = tenant.user_with_devices("7201", ring_timeout_sec=30)
    caller = tenant.user_with_devices("7202")
    time.sleep(stack.config_check_sec * 2 + 0.2)
    proxy = f"{stack.sip_host}:{stack.sip_port}"
    phones = [
        Phone(u["devices"][0]["auth_username"], u["devices"][0]["password"], tenant.domain)
        for u in (callee, caller)
    ]
    assert all(phone.register(proxy).ok for phone in phones)
    ringing, me = phones[0].ring(timeout=20), phones[1]
    hung_up = sipp.run(CANCEL, proxy, local_ip=me.ip, timeout=30, auth=(me.user, me.password),
                       keys={"user": me.user, "domain": me.domain, "dialled": "7201"})  # fmt: skip
    assert hung_up.ok and ringing.wait().ok, hung_up.output
    call_id = header(hung_up.messages, "Call-ID")[0]
    row = wait_for_cdrs(Lake(stack), {call_id})[call_id]
    assert (row["disposition"], row["sip_code"]) == ("cancelled", 487)
