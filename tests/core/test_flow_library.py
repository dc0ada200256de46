"""The example flows in docs/flows validate against an account and run end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from control.core.flow import AccountRefs, CommandKind, FlowContext, validate_flow
from control.core.schedule import Schedule, ScheduleRule
from tests.core.flowkit import Call, at

LIBRARY = Path(__file__).parents[2] / "docs" / "flows"
ACCOUNT = AccountRefs(
    media=frozenset({
        "media_main_menu", "media_main_menu_short", "media_invalid_option", "media_enter_account",
        "media_invalid_account", "media_after_hours", "media_holiday", "media_alice_unavailable",
        "media_alice_busy", "media_please_hold",
    }),
    queue=frozenset({"q_sales", "q_support", "q_priority", "q_overflow"}),
    mailbox=frozenset({"vm_sales", "vm_general", "vm_alice", "vm_support"}),
    schedule=frozenset({"sch_office"}),
    user=frozenset({"us_reception", "us_alice"}),
    ring_group=frozenset(),
    flow=frozenset(),
)  # fmt: skip
OFFICE = Schedule(
    "sch_office",
    None,  # inherits the account's Europe/Berlin
    (
        *(ScheduleRule("weekly", dow=d, start_time="09:00", end_time="17:00") for d in range(1, 6)),
        ScheduleRule("date", start_date="2025-12-25", is_closed=1),
    ),
)
CTX = FlowContext(account_timezone="Europe/Berlin", schedules={"sch_office": OFFICE})
OPEN, CLOSED, CHRISTMAS = at(8), at(19), at(10).replace(month=12, day=25)
CALLER = {"caller_number": "4930123456", "call_id": "c-1"}


def load(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((LIBRARY / name).read_text())
    return raw


def test_the_library_has_the_three_examples_and_all_are_valid() -> None:
    names = sorted(p.name for p in LIBRARY.glob("*.json"))
    assert names == ["main-ivr.json", "queue-overflow.json", "voicemail-fallback.json"]
    for name in names:
        assert validate_flow(load(name), ACCOUNT) == [], name


# Each script: the engine results fed in turn, then the commands expected (kind, node).
MAIN_IVR = [
    ("sales queue overflows to voicemail", OPEN,
     [("digit:1", None), ("timeout", None)],
     [("gather", "menu"), ("enqueue", "sales"), ("voicemail", "sales_vm")]),
    ("vip caller reaches the priority queue", OPEN,
     [("digit:3", None), ("digits", {"digits": "1234567"}), ("response", {"status": 200, "body": {"tier": "gold"}}), ("answered", None)],
     [("gather", "menu"), ("gather", "account"), ("http", "crm"), ("enqueue", "priority"), ("hangup", "priority")]),
    ("crm failure falls back to support", OPEN,
     [("digit:3", None), ("digits", {"digits": "1234567"}), ("response", {"status": 404})],
     [("gather", "menu"), ("gather", "account"), ("http", "crm"), ("enqueue", "support")]),
    ("bad account number goes to support after three tries", OPEN,
     [("digit:3", None), ("digits", {"digits": "12"}), ("timeout", None), ("digits", {"digits": "1"})],
     [("gather", "menu"), ("gather", "account"), ("gather", "account"), ("gather", "account"), ("enqueue", "support")]),
    ("operator does not answer", OPEN,
     [("digit:0", None), ("no_answer", None)],
     [("gather", "menu"), ("dial", "operator"), ("voicemail", "general_vm")]),
    ("repeat key and silence", OPEN,
     [("digit:9", None), ("timeout", None), ("timeout", None), ("done", None)],
     [("gather", "menu"), ("gather", "menu"), ("gather", "menu"), ("say", "goodbye"), ("hangup", "bye")]),
    ("after hours", CLOSED,
     [("done", None)],
     [("play", "closed"), ("voicemail", "general_vm")]),
    ("christmas", CHRISTMAS,
     [("done", None)],
     [("play", "holiday"), ("hangup", "bye")]),
]  # fmt: skip

VOICEMAIL_FALLBACK = [
    ("no answer", [("no_answer", None), ("done", None)], [("dial", "ring"), ("play", "unavailable"), ("voicemail", "mailbox")]),
    ("busy", [("busy", None), ("done", None)], [("dial", "ring"), ("play", "busy"), ("voicemail", "mailbox")]),
    ("failed", [("failed", None)], [("dial", "ring"), ("voicemail", "mailbox")]),
    ("answered", [("answered", None)], [("dial", "ring"), ("hangup", "ring")]),
]  # fmt: skip

QUEUE_OVERFLOW = [
    ("timeout then no agents in overflow", [("done", None), ("timeout", None), ("no_agents", None)],
     [("play", "hold"), ("enqueue", "support"), ("enqueue", "overflow"), ("voicemail", "mailbox")]),
    ("long wait: keep holding", [("done", None), ("ewt", None), ("digit:2", None)],
     [("play", "hold"), ("enqueue", "support"), ("gather", "offer"), ("enqueue", "overflow")]),
    ("long wait: leave a message", [("done", None), ("ewt", None), ("digit:1", None)],
     [("play", "hold"), ("enqueue", "support"), ("gather", "offer"), ("voicemail", "mailbox")]),
    ("full queue", [("done", None), ("queue_full", None)],
     [("play", "hold"), ("enqueue", "support"), ("voicemail", "mailbox")]),
    ("caller gives up: logged", [("done", None), ("abandon", None), ("response", {"status": 202})],
     [("play", "hold"), ("enqueue", "support"), ("http", "log"), ("hangup", "done")]),
]  # fmt: skip


def run(name: str, now: Any, results: list[tuple[str, Any]]) -> Call:
    call = Call(load(name), CTX, now=now, variables=CALLER)
    for outcome, data in results:
        assert not call.ended
        call.send(outcome, data)
    return call


def commands(call: Call) -> list[tuple[str, str | None]]:
    return [(c.kind.value, c.node_id) for c in call.commands]


@pytest.mark.parametrize(
    ("name", "now", "results", "expected"), MAIN_IVR, ids=[c[0] for c in MAIN_IVR]
)
def test_main_ivr(
    name: str, now: Any, results: list[tuple[str, Any]], expected: list[tuple[str, str]]
) -> None:
    call = run("main-ivr.json", now, results)
    assert commands(call) == expected
    assert call.ended is (call.command.kind is not CommandKind.ENQUEUE)


@pytest.mark.parametrize(
    ("name", "results", "expected"), VOICEMAIL_FALLBACK, ids=[c[0] for c in VOICEMAIL_FALLBACK]
)
def test_voicemail_fallback(
    name: str, results: list[tuple[str, Any]], expected: list[tuple[str, str]]
) -> None:
    call = run("voicemail-fallback.json", OPEN, results)
    assert commands(call) == expected and call.ended


@pytest.mark.parametrize(
    ("name", "results", "expected"), QUEUE_OVERFLOW, ids=[c[0] for c in QUEUE_OVERFLOW]
)
def test_queue_overflow(
    name: str, results: list[tuple[str, Any]], expected: list[tuple[str, str]]
) -> None:
    call = run("queue-overflow.json", OPEN, results)
    assert commands(call) == expected
    assert call.ended is (call.command.kind is not CommandKind.ENQUEUE)


def test_abandon_hook_gets_the_call_data() -> None:
    call = run("queue-overflow.json", OPEN, [("done", None), ("abandon", None)])
    assert call.command.args["body"] == {"call": "c-1", "from": "4930123456", "queue": "q_support"}
    assert call.command.args["url"] == "https://hooks.example.com/abandoned"


def test_main_ivr_trace_is_flushed_at_the_bridge_and_the_end() -> None:
    call = run("main-ivr.json", OPEN, [("digit:1", None), ("timeout", None)])
    assert call.flushes == 2 and call.state.trace == []
    assert [(e.node_id, e.outcome) for e in call.events] == [
        ("entry", "default"), ("hours", "in_hours"), ("menu", "digit:1"),
        ("sales", "timeout"), ("sales_vm", None),
    ]  # fmt: skip
