"""The pure builder: events → call_events, call_cdr and queue_cdr rows (SPEC 19.1-19.3)."""

from __future__ import annotations

import json
from typing import Any

from control.cdr import build
from control.cdr.events import DeadLetter, Event, highest, id_key, parse

T0 = 1_790_000_000_000


def ev(kind: str, ts: int, call: str = "c1", **data: Any) -> Event:
    body = {"type": kind, "call_id": call, "ts": ts, **data}
    entry = parse("s", f"{ts}-0", {b"e": json.dumps(body).encode()})
    assert isinstance(entry, Event)
    return entry


RING = {"kind": "ring", "account_id": "acc_1"}


def test_answered_internal_call_from_route_to_hangup() -> None:
    events = [
        ev("route", T0, decision=RING, device_id="dev_1", **{"from": "1001", "to": "1002"}),
        ev("call_answered", T0 + 2_500, account_id="acc_1"),
        ev("call_ended", T0 + 62_100, account_id="acc_1", cause="callee_bye", code=200),
    ]
    start = build.fold_cdr({}, events[:1])["c1"]
    assert start["disposition"] == "in_progress" and start["end_ts"] is None  # the start row
    row = build.fold_cdr({"c1": start}, events[1:])["c1"]
    assert row == build.fold_cdr({}, events)["c1"]  # folding in pieces = folding at once
    assert row["account_id"] == "acc_1" and row["direction"] == "internal"
    assert (row["from_num"], row["to_num"]) == ("1001", "1002")
    assert (row["start_ts"], row["answer_ts"], row["end_ts"]) == (T0, T0 + 2_500, T0 + 62_100)
    assert (row["duration_sec"], row["billsec"], row["answered"]) == (63, 60, 1)
    assert (row["disposition"], row["hangup_cause"], row["sip_code"]) == (
        "answered",
        "callee_bye",
        200,
    )


def test_reject_at_routing_is_a_complete_cdr() -> None:
    busy = {"kind": "reject", "account_id": "acc_1", "code": 486, "reason": "Busy Here"}
    row = build.fold_cdr({}, [ev("route", T0, decision=busy, device_id="dev_1")])["c1"]
    assert (row["disposition"], row["end_ts"], row["duration_sec"], row["billsec"]) == (
        "busy",
        T0,
        0,
        0,
    )
    assert row["hangup_cause"] == "Busy Here" and row["sip_code"] == 486


def test_a_failure_without_a_readable_code_keeps_what_the_fallback_said() -> None:
    gone = {"kind": "reject", "code": 480, "reason": "Temporarily Unavailable"}
    events = [
        ev("route", T0, decision=RING, device_id="dev_1", **{"from": "1001", "to": "1002"}),
        ev("fallback", T0 + 2_000, reason="no_answer(408)", decision=gone),
        ev("call_failed", T0 + 2_001, account_id="acc_1", code=0, reason=""),
    ]
    row = build.fold_cdr({}, events)["c1"]
    assert (row["disposition"], row["sip_code"], row["hangup_cause"]) == (
        "no_answer", 480, "Temporarily Unavailable",
    )  # fmt: skip
    assert (row["end_ts"], row["duration_sec"], row["billsec"]) == (T0 + 2_001, 3, 0)
    later = build.fold_cdr({"c1": row}, [ev("call_failed", T0 + 2_002, code=487, reason="x")])
    assert later["c1"]["sip_code"] == 487  # a real code still counts


def test_ended_unpriced_is_each_call_once_at_its_end() -> None:
    start = build.fold_cdr({}, [ev("route", T0, decision=RING, device_id="d")])
    assert build.ended_unpriced({}, start) == []  # still in progress
    ended = build.fold_cdr(start, [ev("call_ended", T0 + 9, cause="caller_bye")])
    assert build.ended_unpriced(start, ended) == ["c1"]
    late = build.fold_cdr(ended, [ev("queue_abandon", T0 + 20, queue_id="q")])
    assert build.ended_unpriced(ended, late) == []  # ended before: priced then, not again
    given = build.fold_cdr(start, [ev("call_ended", T0 + 9, cost_micros=7)])
    assert build.ended_unpriced(start, given) == []  # the emitter priced it


def test_failures_and_directions() -> None:
    assert build.failure_disposition(503, "rejected_by_cac") == "rejected"
    assert build.failure_disposition(487, None) == "cancelled"
    assert build.failure_disposition(480, None) == "no_answer"
    assert build.failure_disposition(404, "Not Found") == "failed"
    trunk = build.fold_cdr(
        {}, [ev("route", T0, decision={"kind": "media", "account_id": "a"}, trunk_id="tr_1")]
    )
    assert trunk["c1"]["direction"] == "inbound"
    out = build.fold_cdr(
        {}, [ev("route", T0, decision={"kind": "outbound", "account_id": "a"}, device_id="d")]
    )
    assert out["c1"]["direction"] == "outbound"
    told = build.fold_cdr({}, [ev("route", T0, decision=RING, device_id="d", direction="outbound")])
    assert told["c1"]["direction"] == "outbound"  # the emitter's word wins once it sends one


def test_fallback_reject_ends_the_call_and_events_without_cdr_types_create_none() -> None:
    gone = {"kind": "reject", "code": 480, "reason": "Temporarily Unavailable"}
    rows = build.fold_cdr({}, [ev("route", T0, decision=RING), ev("unreachable", T0 + 1),
                               ev("fallback", T0 + 2, reason="unreachable", decision=gone)])  # fmt: skip
    assert rows["c1"]["disposition"] == "no_answer" and rows["c1"]["end_ts"] == T0 + 2
    assert build.fold_cdr({}, [ev("register", T0), ev("auth", T0), ev("fallback", T0)]) == {}


def test_queue_rows_follow_spec_lifecycle() -> None:
    events = [
        ev("route", T0, decision={"kind": "media", "account_id": "acc_1"}, trunk_id="tr"),
        ev("queue_join", T0 + 100, account_id="acc_1", queue_id="q_1"),
        ev("queue_answer", T0 + 9_000, account_id="acc_1", queue_id="q_1", agent_id="us_a"),
        ev("call_answered", T0 + 9_010, account_id="acc_1"),
        ev("call_ended", T0 + 60_000, account_id="acc_1", cause="caller_bye", code=200),
    ]
    cdr = build.fold_cdr({}, events)
    queues = build.fold_queues({}, events, {"c1": "acc_1"})
    assert queues == {("c1", "q_1"): {
        "call_id": "c1", "queue_id": "q_1", "account_id": "acc_1", "agent_id": "us_a",
        "enqueued_at": T0 + 100, "connected_at": T0 + 9_000, "ended_at": T0 + 60_000,
        "disposition": "answered"}}  # fmt: skip
    assert (cdr["c1"]["queue_id"], cdr["c1"]["agent_id"]) == ("q_1", "us_a")
    abandoned = build.fold_queues(
        {}, [ev("queue_join", T0, queue_id="q_1"), ev("queue_abandon", T0 + 5, queue_id="q_1")], {}
    )
    assert abandoned[("c1", "q_1")]["disposition"] == "abandoned"
    waiting = build.fold_queues(
        {}, [ev("queue_join", T0, queue_id="q"), ev("queue_timeout", T0 + 7, queue_id="q")], {}
    )
    assert (
        waiting[("c1", "q")]["disposition"] == "timeout"
        and waiting[("c1", "q")]["ended_at"] == T0 + 7
    )


def test_a_callback_queue_row_lives_past_the_callers_hang_up() -> None:
    """Asked at 5 s, the caller hangs up; the first try misses the caller (retry), the second
    reaches them: connected then, ended with the try's result."""
    q = {"queue_id": "q_1", "account_id": "acc_1"}
    events = [
        ev("queue_join", T0, **q),
        ev("queue_callback", T0 + 5_000, position=2, **q),
        ev("call_ended", T0 + 5_100, account_id="acc_1", cause="controller_hangup"),
        ev("queue_answer", T0 + 60_000, agent_id="us_a", callback=True, attempt=1, **q),
        ev("queue_callback_result", T0 + 90_000, outcome="caller_unreached", retry=True, **q),
        ev("queue_answer", T0 + 300_000, agent_id="us_b", callback=True, attempt=2, **q),
        ev("queue_callback_connected", T0 + 305_000, agent_id="us_b", **q),
        ev("queue_callback_result", T0 + 400_000, outcome="connected", retry=False, **q),
    ]
    rows = build.fold_queues({}, events, {})
    assert rows[("c1", "q_1")] == {
        "call_id": "c1", "queue_id": "q_1", "account_id": "acc_1", "agent_id": "us_b",
        "enqueued_at": T0, "connected_at": T0 + 305_000, "ended_at": T0 + 400_000,
        "disposition": "answered",
    }  # fmt: skip
    pending = build.fold_queues({}, events[:4], {})[("c1", "q_1")]
    assert (pending["disposition"], pending["ended_at"]) == ("callback", None)
    given_up = [*events[:4], ev("queue_callback_result", T0 + 90_000, outcome="caller_unreached",
                                retry=False, **q)]  # fmt: skip
    row = build.fold_queues({}, given_up, {})[("c1", "q_1")]
    assert (row["disposition"], row["connected_at"], row["ended_at"]) == (
        "callback_failed", None, T0 + 90_000)  # fmt: skip
    expired = [*events[:3], ev("queue_timeout", T0 + 3_600_000, reason="callback_expired", **q)]
    row = build.fold_queues({}, expired, {})[("c1", "q_1")]
    assert (row["disposition"], row["ended_at"]) == ("timeout", T0 + 3_600_000)


def test_every_event_is_a_row_unknown_types_included() -> None:
    events = [
        ev("route", T0, decision=RING, device_id="dev_1"),
        ev("media_unavailable", T0 + 1, target="q_1"),
        ev("flow_step", T0 + 2, account_id="acc_1", node_id="n1", outcome="next", data={"d": 1}),
        ev("brand_new_thing", T0 + 3, weird=[1, 2]),
    ]
    cdr = build.fold_cdr({}, events)
    rows = build.event_rows(events, {c: r["account_id"] for c, r in cdr.items()})
    assert [r["type"] for r in rows] == [
        "route",
        "media_unavailable",
        "flow_step",
        "brand_new_thing",
    ]
    assert all(r["account_id"] == "acc_1" for r in rows)  # filled from the call's route
    assert [r["emitter"] for r in rows] == ["sip", "sip", "flow", "sip"]
    assert (rows[2]["node_id"], rows[2]["outcome"]) == ("n1", "next")
    assert json.loads(rows[0]["data"])["decision"] == RING
    assert json.loads(rows[3]["data"]) == {"weird": [1, 2]}


def test_malformed_entries_are_dead_letters_with_a_reason() -> None:
    cases = {
        "no e": {b"x": b"1"},
        "bad json": {b"e": b"{nope"},
        "not object": {b"e": b"[1]"},
        "no type": {b"e": b'{"call_id": "c", "ts": 1}'},
        "empty call": {b"e": b'{"type": "route", "call_id": "", "ts": 1}'},
        "bool ts": {b"e": b'{"type": "route", "call_id": "c", "ts": true}'},
        "binary": {b"e": b"\xff\xfe"},
    }
    for name, fields in cases.items():
        entry = parse("s", "1-1", fields)
        assert isinstance(entry, DeadLetter), name
        assert entry.error and entry.raw, name
    assert (
        build.dead_rows([parse("s", "1700000000000-3", {b"e": b"{"})])[0]["received_ts"]
        == 1700000000000
    )


def test_stream_ids_order_numerically() -> None:
    assert id_key("10-0") > id_key("9-5")
    assert highest([("a", "9-1"), ("a", "10-0"), ("b", "3-0")]) == {"a": "10-0", "b": "3-0"}


def test_updates_for_calls_not_in_memory_need_a_lookup() -> None:
    events = [ev("route", T0, call="new"), ev("call_ended", T0 + 1, call="new"),
              ev("call_ended", T0, call="gone"), ev("flow_step", T0, call="other")]  # fmt: skip
    assert build.needs_lookup(events, {}) == {"gone"}
