"""The interpreter, node kind by node kind: commands sent, outcomes followed, variables set."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from control.core.flow import CommandKind, FlowContext
from control.core.schedule import Schedule, ScheduleRule
from tests.core.flowkit import NOW, Call, at, edge, flow, node

MENU = {"promptAudioId": "media_menu", "maxDigits": 1, "timeoutSec": 5}


def ends(call: Call) -> tuple[str, str | None]:
    assert call.ended and call.command.kind is CommandKind.HANGUP
    return call.command.args["reason"], call.command.args.get("cause")


def test_play_say_hangup() -> None:
    call = Call(
        flow(
            [
                node("p", "play", audioId="media_hi"),
                node("s", "say", text="Hello {{caller_name}}"),
                node("h", "hangup", cause="call_rejected"),
            ],
            [edge("p", "s"), edge("s", "h")],
        ),
        variables={"caller_name": "Ada"},
    )
    assert call.command.to_json() == {
        "command": "play", "seq": 1, "nodeId": "p", "prompts": [{"media": "media_hi"}],
        "language": "en-US", "voice": "en-US-neural-male",
    }  # fmt: skip
    say = call.send("done")
    assert (say.kind, say.args["text"], say.args["voice"]) == (
        "say",
        "Hello Ada",
        "en-US-neural-male",
    )
    call.send("done")
    assert ends(call) == ("hangup_node", "call_rejected")
    assert call.path() == ["entry:default", "p:default", "s:default"]
    assert call.flushes == 1 and call.state.trace == []


def test_menu_routes_a_mapped_key() -> None:
    call = Call(
        flow(
            [node("m", "menu", **MENU), node("q", "enqueue", queueId="q_1")],
            [edge("m", "q", "digit:1")],
        )
    )
    assert call.command.kind is CommandKind.GATHER
    assert call.command.args["prompts"] == [{"media": "media_menu"}]
    assert call.command.args["bargeIn"] is True
    assert call.send("digit:1").kind is CommandKind.ENQUEUE
    assert call.trace[-1].dtmf == "1" and call.trace[-1].outcome == "digit:1"


def test_menu_reprompts_on_invalid_then_gives_up() -> None:
    doc = flow(
        [node("m", "menu", **MENU, repromptAudioId="media_short", maxFailures=2),
         node("one", "play", audioId="media_1"), node("vm", "voicemail", mailboxId="vm_1")],
        [edge("m", "one", "digit:1"), edge("m", "vm", "invalid")],
    )  # fmt: skip
    call = Call(doc)
    again = call.send("digits", {"digits": "7"})
    assert again.kind is CommandKind.GATHER
    assert again.args["prompts"] == [{"system": "invalid"}, {"media": "media_short"}]
    assert call.trace[-1].type == "retry" and call.trace[-1].dtmf == "7"
    assert call.send("digits", {"digits": "8"}).kind is CommandKind.VOICEMAIL
    assert call.path()[-1] == "m:invalid"


def test_menu_timeouts_and_unmapped_keys_count_separately() -> None:
    doc = flow(
        [node("m", "menu", **MENU, invalidAudioId="media_bad", maxFailures=3, maxTimeouts=2), node("bye", "hangup")],
        [edge("m", "bye", "timeout"), edge("m", "bye", "default")],
    )  # fmt: skip
    call = Call(doc)
    assert call.send("timeout").args["prompts"] == [{"media": "media_menu"}]  # no reprompt audio
    # An unmapped key re-prompts even though a catch-all edge exists.
    assert call.send("digits", {"digits": "5"}).args["prompts"][0] == {"media": "media_bad"}
    call.send("timeout")
    assert ends(call)[0] == "hangup_node"
    assert [e.outcome for e in call.trace if e.node_id == "m"] == ["timeout", "invalid", "timeout"]


def test_menu_exhausted_without_an_edge_ends_the_call() -> None:
    call = Call(
        flow(
            [node("m", "menu", **MENU, maxTimeouts=1), node("p", "play", audioId="a")],
            [edge("m", "p", "digit:1")],
        )
    )
    call.send("timeout")
    assert ends(call) == ("end_of_flow", "normal_clearing")
    assert call.trace[-1].type == "end" and call.trace[-1].node_id == "m"


def test_menu_multi_digit_with_terminator() -> None:
    doc = flow(
        [node("m", "menu", promptText="Extension?", maxDigits=3, minDigits=3, terminators="#", timeoutSec=5),
         node("d", "dial", targetKind="extension", target="{{ext}}")],
        [edge("m", "d", "digit:101")],
    )  # fmt: skip
    call = Call(doc)
    assert call.command.args["prompts"] == [{"text": "Extension?"}]
    assert call.send("digits", {"digits": "101#"}).kind is CommandKind.DIAL


def test_collect_validates_and_stores_digits() -> None:
    doc = flow(
        [node("c", "collect", variable="account", promptAudioId="media_acc", minDigits=6, maxDigits=8,
              regex="^[0-9]{6,8}$", maxTries=2),
         node("s", "say", text="Account {{account}}"), node("vm", "voicemail", mailboxId="vm_1")],
        [edge("c", "s"), edge("c", "vm", "invalid")],
    )  # fmt: skip
    call = Call(doc)
    assert call.command.args["terminators"] == "#"
    retry = call.send("digits", {"digits": "12*4567"})
    assert retry.args["prompts"] == [{"system": "invalid"}, {"media": "media_acc"}]
    say = call.send("digits", {"digits": "1234567#"})
    assert say.args["text"] == "Account 1234567"
    assert call.state.variables["account"] == "1234567"
    assert call.trace[-1].variables == {"account": "1234567"}


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([("timeout", None), ("timeout", None)], "c:timeout"),
        ([("timeout", None), ("digits", {"digits": "12"})], "c:invalid"),
        ([("digits", {"digits": ""}), ("digits", {"digits": "99"})], "c:invalid"),
    ],
)
def test_collect_gives_up_with_the_last_failure(
    results: list[tuple[str, Any]], expected: str
) -> None:
    doc = flow(
        [node("c", "collect", variable="pin", minDigits=4, maxDigits=4, maxTries=2), node("bye", "hangup")],
        [edge("c", "bye", "invalid"), edge("c", "bye", "timeout"), edge("c", "bye")],
    )  # fmt: skip
    call = Call(doc)
    for outcome, data in results:
        call.send(outcome, data)
    assert call.path()[-1] == expected and "pin" not in call.state.variables


OFFICE = Schedule(
    "sch_1",
    "Europe/Berlin",
    (
        *(ScheduleRule("weekly", dow=d, start_time="09:00", end_time="17:00") for d in range(1, 6)),
        ScheduleRule("date", start_date="2025-12-25", is_closed=1),
    ),
)


def _hours_flow(*, holiday_edge: bool) -> dict[str, Any]:
    nodes = [node("h", "timeCondition", scheduleId="sch_1"), node("open", "play", audioId="o"),
             node("closed", "play", audioId="c"), node("xmas", "play", audioId="x")]  # fmt: skip
    edges = [edge("h", "open", "in_hours"), edge("h", "closed", "out_of_hours")]
    if holiday_edge:
        edges.append(edge("h", "xmas", "holiday"))
    else:
        nodes.pop()
    return flow(nodes, edges)


@pytest.mark.parametrize(
    ("when", "holiday_edge", "node_id", "outcome"),
    [
        (at(8), True, "open", "in_hours"),  # 10:00 CEST
        (at(16), True, "closed", "out_of_hours"),  # 18:00 CEST
        (at(10, day=25).replace(month=12), True, "xmas", "holiday"),
        (at(10, day=25).replace(month=12), False, "closed", "holiday"),  # falls back
    ],
)
def test_time_condition(when: Any, holiday_edge: bool, node_id: str, outcome: str) -> None:
    ctx = FlowContext(schedules={"sch_1": OFFICE})
    call = Call(_hours_flow(holiday_edge=holiday_edge), ctx, now=when)
    assert call.command.node_id == node_id
    assert call.path()[-1] == f"h:{outcome}"


@pytest.mark.parametrize(
    "ctx",
    [
        FlowContext(),  # schedule not found
        FlowContext(schedules={"sch_1": Schedule("sch_1", "Bad/Zone", OFFICE.rules)}),
        FlowContext(
            schedules={"sch_1": Schedule("sch_1", None, OFFICE.rules)}, account_timezone="Bad/Zone"
        ),
    ],
)
def test_time_condition_fails_open(ctx: FlowContext) -> None:
    call = Call(_hours_flow(holiday_edge=True), ctx, now=at(2, day=1))  # a Sunday night
    assert call.command.node_id == "open"
    assert call.trace[-1].detail == "schedule unusable: fail open"


def test_time_condition_uses_the_account_timezone_when_the_schedule_has_none() -> None:
    schedule = Schedule("sch_1", None, OFFICE.rules)
    ny = FlowContext(schedules={"sch_1": schedule}, account_timezone="America/New_York")
    hours = _hours_flow(holiday_edge=True)
    assert Call(hours, ny, now=at(14)).command.node_id == "open"  # 10:00 EDT
    assert Call(hours, ny, now=at(8)).command.node_id == "closed"  # 04:00 EDT


def _branch(expression: str) -> dict[str, Any]:
    return flow(
        [node("c", "condition", expression=expression), node("yes", "play", audioId="y"), node("no", "play", audioId="n")],
        [edge("c", "yes", "true"), edge("c", "no", "false")],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "variables", "target", "detail"),
    [
        ('tier == "gold" and tries < 3', {"tier": "gold", "tries": 1}, "yes", None),
        ('tier == "gold"', {}, "no", None),
        ("int(tier) > 1", {"tier": "gold"}, "no", "expression error: ValueError: invalid literal for int() with base 10: 'gold'"),
    ],
)  # fmt: skip
def test_condition(
    expression: str, variables: dict[str, Any], target: str, detail: str | None
) -> None:
    call = Call(_branch(expression), variables=variables)
    assert call.command.node_id == target
    assert call.trace[-1].detail == detail


def test_set_variable_literal_template_and_expression() -> None:
    doc = flow(
        [node("a", "setVariable", variable="greeting", value="Hi {{name}}"),
         node("b", "setVariable", variable="count", value=3),
         node("c", "setVariable", variable="count", expression="count * 2 + 1"),
         node("d", "setVariable", variable="flag", value=True),
         node("p", "play", audioId="x")],
        [edge("a", "b"), edge("b", "c"), edge("c", "d"), edge("d", "p")],
    )  # fmt: skip
    call = Call(doc, variables={"name": "Bo"})
    assert call.state.variables == {"name": "Bo", "greeting": "Hi Bo", "count": 7, "flag": True}
    assert [e.variables for e in call.trace[1:5]] == [
        {"greeting": "Hi Bo"},
        {"count": 3},
        {"count": 7},
        {"flag": True},
    ]


def _http_flow() -> dict[str, Any]:
    return flow(
        [node("h", "httpRequest", method="POST", url="https://crm.example.com/v1/lookup?n={{caller_number}}",
              headers={"Authorization": "Bearer {{token}}"}, body={"from": "{{caller_number}}", "n": 1},
              timeoutSec=3, responseVariables={"tier": "body.customer.tier", "first": "body.orders.0.id",
                                               "status": "status", "rid": "headers.X-Request-Id", "raw": "body.customer"}),
         node("ok", "play", audioId="ok"), node("bad", "play", audioId="bad"), node("slow", "play", audioId="slow")],
        [edge("h", "ok", "success"), edge("h", "bad", "error"), edge("h", "slow", "timeout")],
    )  # fmt: skip


def test_http_request_is_described_for_the_caller_and_maps_the_response() -> None:
    call = Call(_http_flow(), variables={"caller_number": "+49 30/1", "token": "t\r\nX-Evil: 1"})
    assert call.command.to_json() == {
        "command": "http", "seq": 1, "nodeId": "h", "method": "POST",
        "url": "https://crm.example.com/v1/lookup?n=%2B49%2030%2F1",
        "headers": {"Authorization": "Bearer t  X-Evil: 1"},
        "body": {"from": "+49 30/1", "n": 1}, "timeoutSec": 3,
    }  # fmt: skip
    body = {"customer": {"tier": "gold", "since": 2019}, "orders": [{"id": 41}]}
    response = {"status": 200, "headers": {"x-request-id": "r-9"}, "body": body}
    assert call.send("response", response).node_id == "ok"
    assert call.trace[-1].variables == {
        "tier": "gold", "first": 41, "status": 200, "rid": "r-9", "raw": '{"tier":"gold","since":2019}',
    }  # fmt: skip


@pytest.mark.parametrize(
    ("outcome", "data", "target"),
    [
        ("response", {"status": 503, "body": "busy"}, "bad"),
        ("response", {"status": "200"}, "bad"),
        ("timeout", None, "slow"),
        ("error", {"reason": "connection refused"}, "bad"),
        ("weird", None, "bad"),
    ],
)
def test_http_request_failures(outcome: str, data: Any, target: str) -> None:
    call = Call(_http_flow())
    assert call.send(outcome, data).node_id == target


def _dial_flow(**edges_for: str) -> dict[str, Any]:
    nodes = [node("d", "dial", targetKind="number", target="{{dest}}", timeoutSec=30, callerIdNumber="4930999"),
             node("after", "say", text="Call ended"), node("vm", "voicemail", mailboxId="vm_1"),
             node("busy", "play", audioId="busy")]  # fmt: skip
    edges = [edge("d", target, handle) for handle, target in edges_for.items()]
    used = {"d", *edges_for.values()}
    return flow([n for n in nodes if n["id"] in used], edges)


def test_dial_command_and_flush_at_the_bridge() -> None:
    call = Call(
        _dial_flow(answered="after", default="vm", busy="busy"), variables={"dest": "4989123"}
    )
    assert call.command.args == {
        "target": {"kind": "number", "number": "4989123"},
        "timeoutSec": 30,
        "callerIdNumber": "4930999",
    }
    assert call.flushes == 1 and [e.node_id for e in call.events] == ["entry"]
    assert call.send("answered").node_id == "after"


@pytest.mark.parametrize(
    ("outcome", "target"),
    [("no_answer", "vm"), ("busy", "busy"), ("failed", "vm"), ("exploded", "vm")],
)
def test_dial_failures(outcome: str, target: str) -> None:
    call = Call(_dial_flow(answered="after", default="vm", busy="busy"), variables={"dest": "1"})
    assert call.send(outcome).node_id == target


def test_answered_never_takes_the_catch_all_edge() -> None:
    call = Call(_dial_flow(default="vm"), variables={"dest": "1"})
    call.send("answered")
    assert ends(call) == ("end_of_flow", "normal_clearing")


@pytest.mark.parametrize(
    ("outcome", "label", "target"),
    [
        ("answered", "answered", "after"),
        ("busy", "no_answer", "vm"),
        ("no_answer", "no_answer", "vm"),
    ],
)
def test_ring_group(outcome: str, label: str, target: str) -> None:
    doc = flow(
        [node("r", "ringGroup", ringGroupId="rg_1"), node("after", "hangup"), node("vm", "voicemail", mailboxId="vm_1")],
        [edge("r", "after", "answered"), edge("r", "vm", "no_answer")],
    )  # fmt: skip
    call = Call(doc)
    assert call.command.args == {"target": {"kind": "ring_group", "id": "rg_1"}}
    assert call.send(outcome).node_id == target
    assert call.path()[-1] == f"r:{label}" and call.ended


def _queue_flow() -> dict[str, Any]:
    return flow(
        [node("q", "enqueue", queueId="q_sales"), node("over", "enqueue", queueId="q_overflow"),
         node("vm", "voicemail", mailboxId="vm_1"),
         node("log", "httpRequest", url="https://hooks.example.com/abandon?c={{call_id}}"),
         node("mark", "setVariable", variable="abandoned", value=True), node("sorry", "play", audioId="sorry")],
        [edge("q", "over", "timeout"), edge("q", "vm", "queue_full"), edge("q", "log", "abandon"),
         edge("log", "mark"), edge("mark", "sorry"), edge("over", "vm")],
    )  # fmt: skip


def test_enqueue_lists_the_exits_the_flow_handles() -> None:
    call = Call(_queue_flow())
    assert call.command.args == {
        "queueId": "q_sales",
        "exits": ["timeout", "abandon", "queue_full"],
    }
    assert call.send("timeout").args == {
        "queueId": "q_overflow", "exits": ["timeout", "abandon", "no_agents", "queue_full", "ewt"],
    }  # fmt: skip
    assert call.send("no_agents").kind is CommandKind.VOICEMAIL


def test_enqueue_answered_ends_the_flow() -> None:
    call = Call(_queue_flow())
    call.send("answered")
    assert ends(call)[0] == "queue_answered"
    assert call.trace[-1].outcome == "answered"


@pytest.mark.parametrize("outcome", ["abandon", "hangup"])
def test_abandon_runs_logic_nodes_then_stops_at_the_first_media_node(outcome: str) -> None:
    call = Call(_queue_flow(), variables={"call_id": "c-7"})
    http = call.send(outcome)
    assert http.kind is CommandKind.HTTP and http.args["url"].endswith("?c=c-7")
    call.send("response", {"status": 204})
    assert ends(call)[0] == "caller_gone"
    assert call.state.variables["abandoned"] is True
    assert call.path()[-3:] == ["q:abandon", "log:success", "mark:default"]


def test_unknown_queue_result_is_treated_as_no_agents() -> None:
    call = Call(_queue_flow())
    call.send("kaboom")
    assert ends(call)[0] == "end_of_flow"
    assert call.trace[-2].outcome == "no_agents"


def test_record_then_voicemail_and_conference() -> None:
    doc = flow(
        [node("r", "record", variable="msg", maxDurationSec=60), node("c", "conference", conferenceId="conf_1", muted=True),
         node("vm", "voicemail", mailboxId="vm_9")],
        [edge("r", "c"), edge("c", "vm")],
    )  # fmt: skip
    call = Call(doc)
    assert call.command.args == {
        "maxDurationSec": 60,
        "beep": True,
        "terminators": "#",
        "silenceTimeoutSec": None,
    }
    conference = call.send("done", {"recording": "acc_1/rec/c1.wav", "durationSec": 12})
    assert conference.args == {"conferenceId": "conf_1", "muted": True, "moderator": False}
    assert call.state.variables["msg"] == "acc_1/rec/c1.wav"
    assert call.flushes == 1
    vm = call.send("done")
    assert (
        vm.args == {"mailboxId": "vm_9", "language": "en-US"} and call.ended and call.flushes == 2
    )


@pytest.mark.parametrize(
    ("dest_kind", "dest_id", "command", "args"),
    [
        ("queue", "q_1", "enqueue", {"queueId": "q_1", "exits": []}),
        ("voicemail", "vm_1", "voicemail", {"mailboxId": "vm_1", "language": "en-US"}),
        ("user", "us_1", "dial", {"target": {"kind": "user", "id": "us_1"}, "transfer": True}),
        (
            "forward",
            "fwd_1",
            "dial",
            {"target": {"kind": "forward", "id": "fwd_1"}, "transfer": True},
        ),
        (
            "conference",
            "conf_1",
            "conference",
            {"conferenceId": "conf_1", "muted": False, "moderator": False},
        ),
        ("hangup", None, "hangup", {"cause": "normal_clearing", "reason": "transfer"}),
    ],
)
def test_transfer_hands_the_call_off(
    dest_kind: str, dest_id: str | None, command: str, args: dict[str, Any]
) -> None:
    call = Call(flow([node("t", "transfer", destKind=dest_kind, destId=dest_id)], []))
    assert (call.command.kind.value, dict(call.command.args)) == (command, args)
    assert call.ended and call.state.end_reason == "transfer"


def test_language_switch_changes_prompts() -> None:
    doc = flow(
        [node("l", "language", language="de-DE", voiceGender="female"), node("s", "say", text="Hallo"),
         node("m", "menu", promptText="Taste eins", maxDigits=1, timeoutSec=5)],
        [edge("l", "s"), edge("s", "m")],
    )  # fmt: skip
    call = Call(doc, FlowContext(language="fr-FR"))
    assert call.command.args == {
        "text": "Hallo",
        "language": "de-DE",
        "voice": "de-DE-neural-female",
    }
    gather = call.send("done")
    assert (gather.args["language"], gather.args["voice"]) == ("de-DE", "de-DE-neural-female")


def test_say_voice_override() -> None:
    call = Call(flow([node("s", "say", text="Hi", voice="en-US-neural-female")], []))
    assert call.command.args["voice"] == "en-US-neural-female"


def test_trace_timing_dtmf_and_rows() -> None:
    call = Call(
        flow(
            [node("m", "menu", **MENU), node("p", "play", audioId="x")], [edge("m", "p", "digit:2")]
        )
    )
    call.send("digits", {"digits": "2"}, now=NOW + timedelta(seconds=4, milliseconds=250))
    event = call.trace[-1]
    assert (event.node_id, event.duration_ms, event.dtmf) == ("m", 4250, "2")
    assert [e.seq for e in call.trace] == list(range(len(call.trace)))
    row = event.to_row("c-1", "acc_1")
    assert row["call_id"] == "c-1" and row["account_id"] == "acc_1" and row["source"] == "flow"
    assert row["ts"] == int(NOW.timestamp() * 1000) and row["data"]["dtmf"] == "2"
