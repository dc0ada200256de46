"""Flow validation: every semantic check, with its exact located message."""

from __future__ import annotations

from typing import Any

import pytest

from control.core.flow import AccountRefs, FlowInvalid, load_flow, validate_flow
from tests.core.flowkit import edge, flow, node

MENU = {"promptAudioId": "media_menu", "maxDigits": 1, "timeoutSec": 5}
BYE = node("bye", "hangup")

CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("menu without prompt",
     flow([node("m", "menu", maxDigits=1, timeoutSec=5)], []),
     ["nodes[1].data.promptAudioId: required (or promptText)"]),
    ("min above max",
     flow([node("m", "menu", **MENU, minDigits=3)], []),
     ["nodes[1].data.minDigits: greater than maxDigits"]),
    ("collect regex",
     flow([node("c", "collect", variable="pin", minDigits=4, maxDigits=4, maxTries=3, regex="([0-9]")], []),
     ["nodes[1].data.regex: invalid regular expression: missing ), unterminated subpattern at position 0"]),
    ("collect slow regex",
     flow([node("c", "collect", variable="pin", minDigits=4, maxDigits=4, maxTries=3, regex="^(\\d+)*$")], []),
     ["nodes[1].data.regex: a repeated group may not contain a repeat (slow to match)"]),
    ("bad variable name",
     flow([node("v", "setVariable", variable="2fast", value="x")], []),
     ["nodes[1].data.variable: must be a variable name: letters, digits, _ (not starting with a digit)"]),
    ("value and expression",
     flow([node("v", "setVariable", variable="x", value="1", expression="2")], []),
     ["nodes[1].data.value: required: exactly one of value or expression"]),
    ("unsafe expression",
     flow([node("c", "condition", expression="caller.__class__")], []),
     ["nodes[1].data.expression: Attribute is not allowed"]),
    ("template with code",
     flow([node("s", "say", text="Hello {{ name.upper() }}")], []),
     ["nodes[1].data.text: '{{ name.upper() }}' must name a variable, e.g. {{caller_number}}"]),
    ("http url",
     flow([node("h", "httpRequest", url="ftp://x/{{a}}")], []),
     ["nodes[1].data.url: must start with http:// or https:// and a host (no placeholder there)"]),
    ("http host from a variable",
     flow([node("h", "httpRequest", url="https://{{host}}/x")], []),
     ["nodes[1].data.url: must start with http:// or https:// and a host (no placeholder there)"]),
    ("http response path",
     flow([node("h", "httpRequest", url="https://x.example/", responseVariables={"t": "cookies.a"})], []),
     ["nodes[1].data.responseVariables.t: path must start with status, body or headers"]),
    ("transfer needs an id",
     flow([node("t", "transfer", destKind="queue")], []),
     ["nodes[1].data.destId: dest_kind 'queue' needs a dest_id"]),
    ("goto needs a target",
     flow([node("g", "goto")], []),
     ["nodes[1].data.nodeId: required (or flowId)"]),
    ("goto to a missing node",
     flow([node("g", "goto", nodeId="nowhere")], []),
     ["nodes[1].data.nodeId: no node 'nowhere' in this flow"]),
    ("type differs from kind",
     flow([{**node("p", "play", audioId="a"), "type": "custom"}], []),
     ["nodes[1].type: must equal data.kind 'play'"]),
    ("duplicate node id",
     flow([node("p", "play", audioId="a"), node("p", "hangup")], []),
     ["nodes[2].id: duplicate id 'p' (also nodes[1])"]),
    ("two inbound entries",
     flow([node("e2", "entry", trigger="inbound")], []),
     ["nodes[1].data.trigger: entry node 'entry' already handles 'inbound'"]),
    ("start is not an entry",
     {**flow([BYE], []), "start": "bye"},
     ["start: node 'bye' is a hangup, not an entry"]),
    ("start missing",
     {**flow([BYE], []), "start": "zz"},
     ["start: no node 'zz'"]),
    ("edge to nowhere",
     flow([BYE], [edge("entry", "ghost", "x")]),
     ["edges[1].target: no node 'ghost'", "edges[1].sourceHandle: entry node 'entry' cannot produce 'x'; it produces default"]),
    ("edge from nowhere",
     flow([BYE], [edge("ghost", "bye")]),
     ["edges[1].source: no node 'ghost'"]),
    ("outcome the node cannot produce",
     flow([node("p", "play", audioId="a"), BYE], [edge("p", "bye", "busy")]),
     ["edges[1].sourceHandle: play node 'p' cannot produce 'busy'; it produces default"]),
    ("dial outcome on a menu",
     flow([node("m", "menu", **MENU), BYE], [edge("m", "bye", "no_answer")]),
     ["edges[1].sourceHandle: menu node 'm' cannot produce 'no_answer'; it produces timeout, invalid"]),
    ("too many digits",
     flow([node("m", "menu", **MENU), BYE], [edge("m", "bye", "digit:12")]),
     ["edges[1].sourceHandle: menu node 'm' cannot produce 'digit:12' (keys 0-9 * #, 1-1 of them)"]),
    ("not a key",
     flow([node("m", "menu", **MENU), BYE], [edge("m", "bye", "digit:A")]),
     ["edges[1].sourceHandle: menu node 'm' cannot produce 'digit:A' (keys 0-9 * #, 1-1 of them)"]),
    ("terminator as a choice",
     flow([node("m", "menu", **MENU, terminators="#"), BYE], [edge("m", "bye", "digit:#")]),
     ["edges[1].sourceHandle: 'digit:#' uses a terminator key"]),
    ("answered queue ends the flow",
     flow([node("q", "enqueue", queueId="q_1"), BYE], [edge("q", "bye", "answered")]),
     ["edges[1].sourceHandle: enqueue node 'q' cannot produce 'answered' (an answered queue call ends the flow)"]),
    ("edge out of a terminal node",
     flow([node("v", "voicemail", mailboxId="vm_1"), BYE], [edge("v", "bye")]),
     ["edges[1].source: voicemail node 'v' ends the flow: no edges out"]),
    ("ambiguous edges",
     flow([node("p", "play", audioId="a"), BYE, node("b2", "hangup")], [edge("p", "bye"), edge("p", "b2", "default")]),
     ["edges[2].sourceHandle: node 'p' already has an edge for 'default' (edges[1])"]),
    ("unreachable node",
     flow([BYE, node("lost", "play", audioId="a")], []),
     ["nodes[2]: node 'lost' is unreachable from the entry node"]),
    ("loop without a way out",
     flow([node("a", "play", audioId="a"), node("b", "say", text="again")], [edge("a", "b"), edge("b", "a")]),
     ["nodes[1]: loop without a way out: a -> b -> a"]),
    ("self loop",
     flow([node("s", "setVariable", variable="x", value=1)], [edge("s", "s")]),
     ["nodes[1]: loop without a way out: s -> s"]),
    ("menu whose every outcome loops",
     flow([node("m", "menu", **MENU), node("p", "play", audioId="a")],
          [edge("m", "p", "digit:1"), edge("m", "m", "timeout"), edge("m", "p", "invalid"), edge("p", "m")]),
     ["nodes[1]: loop without a way out: m -> p -> m"]),
    ("goto loop",
     flow([node("p", "play", audioId="a"), node("g", "goto", nodeId="p")], [edge("p", "g")]),
     ["nodes[1]: loop without a way out: p -> g -> p"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "raw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_semantic_errors(name: str, raw: dict[str, Any], expected: list[str]) -> None:
    assert [str(e) for e in validate_flow(raw)] == expected


LOOPS_WITH_A_WAY_OUT = [
    ("menu repeat key with a timeout exit",
     flow([node("m", "menu", **MENU), BYE], [edge("m", "m", "digit:9"), edge("m", "bye", "timeout")])),
    ("menu loop whose invalid outcome has no edge (the call ends there)",
     flow([node("m", "menu", **MENU)], [edge("m", "m", "timeout")])),
    ("counter loop: a condition leaves it",
     flow([node("n", "setVariable", variable="n", expression="(n or 0) + 1"),
           node("c", "condition", expression="n < 3"), node("p", "play", audioId="a"), BYE],
          [edge("n", "c"), edge("c", "p", "true"), edge("p", "n"), edge("c", "bye", "false")])),
    ("dial loop: answered without an edge ends the call",
     flow([node("d", "dial", targetKind="number", target="4930123")], [edge("d", "d")])),
    ("queue loop: an answered queue call ends the flow",
     flow([node("q", "enqueue", queueId="q_1")], [edge("q", "q")])),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "raw"), LOOPS_WITH_A_WAY_OUT, ids=[c[0] for c in LOOPS_WITH_A_WAY_OUT]
)
def test_loops_with_a_way_out_are_accepted(name: str, raw: dict[str, Any]) -> None:
    assert validate_flow(raw) == []


FULL = flow(
    [
        node("h", "timeCondition", scheduleId="sch_1"),
        node("m", "menu", promptAudioId="media_1", invalidAudioId="media_x", maxDigits=1, timeoutSec=5),
        node("q", "enqueue", queueId="q_1"),
        node("d", "dial", targetKind="user", target="us_1"),
        node("r", "ringGroup", ringGroupId="rg_1"),
        node("v", "voicemail", mailboxId="vm_1"),
        node("t", "transfer", destKind="forward", destId="fwd_1"),
        node("g", "goto", flowId="flow_other"),
    ],
    [edge("h", "m", "in_hours"), edge("h", "v", "out_of_hours"), edge("m", "q", "digit:1"),
     edge("m", "d", "digit:2"), edge("m", "r", "digit:3"), edge("m", "t", "digit:4"),
     edge("m", "g", "digit:5"), edge("q", "v")],
)  # fmt: skip


def test_references_are_checked_against_the_account() -> None:
    refs = AccountRefs(
        media=frozenset({"media_1"}),
        queue=frozenset({"q_2"}),
        mailbox=frozenset({"vm_1"}),
        schedule=frozenset(),
        user=frozenset({"us_1"}),
        ring_group=frozenset({"rg_9"}),
        flow=frozenset({"flow_main"}),
        forward=frozenset({"fwd_1"}),
    )
    assert [str(e) for e in validate_flow(FULL, refs)] == [
        "nodes[1].data.scheduleId: no schedule 'sch_1' in this account",
        "nodes[2].data.invalidAudioId: no media file 'media_x' in this account",
        "nodes[3].data.queueId: no queue 'q_1' in this account",
        "nodes[5].data.ringGroupId: no ring group 'rg_1' in this account",
        "nodes[8].data.flowId: no flow 'flow_other' in this account",
    ]
    assert validate_flow(FULL) == []  # without id sets nothing is looked up


def test_load_flow_raises_with_every_error() -> None:
    raw = flow([node("m", "menu", maxDigits=1, timeoutSec=5, minDigits=2)], [])
    with pytest.raises(FlowInvalid) as caught:
        load_flow(raw)
    assert [str(e) for e in caught.value.errors] == [
        "nodes[1].data.promptAudioId: required (or promptText)",
        "nodes[1].data.minDigits: greater than maxDigits",
    ]
    assert "nodes[1].data.minDigits: greater than maxDigits" in str(caught.value)
