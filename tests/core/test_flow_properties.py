"""Property-based checks over random flow graphs driven by random media-engine results."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control.core.flow import (
    KINDS,
    CommandKind,
    FlowContext,
    SessionState,
    parse_flow,
    start,
    step,
    validate_flow,
)
from control.core.schedule import Schedule, ScheduleRule
from tests.core.flowkit import NOW, edge, node

MENU = {"promptAudioId": "media_menu", "maxDigits": 1, "timeoutSec": 5}
SAMPLES: dict[str, list[dict[str, Any]]] = {
    "play": [{"audioId": "media_1"}],
    "say": [{"text": "Hello {{caller_number}}"}],
    "menu": [MENU, {**MENU, "maxFailures": 1, "maxTimeouts": 1}],
    "collect": [
        {"variable": "pin", "minDigits": 1, "maxDigits": 4, "maxTries": 2, "regex": "^[0-9]+$"}
    ],
    "timeCondition": [{"scheduleId": "sch_1"}, {"scheduleId": "sch_missing"}],
    "condition": [{"expression": 'pin == "1"'}, {"expression": "int(caller_number) > 5"}],
    "setVariable": [
        {"variable": "pin", "value": "{{pin}}1"},
        {"variable": "n", "expression": "(n or 0) + 1"},
    ],
    "httpRequest": [{"url": "https://x.example/{{pin}}", "responseVariables": {"pin": "body.pin"}}],
    "dial": [{"targetKind": "number", "target": "4930{{pin}}"}],
    "ringGroup": [{"ringGroupId": "rg_1"}],
    "enqueue": [{"queueId": "q_1"}],
    "voicemail": [{"mailboxId": "vm_1"}],
    "record": [{}],
    "conference": [{"conferenceId": "conf_1"}],
    "transfer": [
        {"destKind": "queue", "destId": "q_2"},
        {"destKind": "flow", "destId": "flow_other"},
    ],
    "goto": [{"nodeId": "n0"}, {"flowId": "flow_other"}],
    "language": [{"language": "es-ES"}],
    "hangup": [{}, {"cause": "user_busy"}],
}
LABELS: dict[str, list[str]] = {
    kind: [*model.OUTCOMES, "default"] + (["digit:1", "digit:2"] if kind == "menu" else [])
    for kind, model in KINDS.items()
}


@st.composite
def flows(draw: st.DrawFn) -> dict[str, Any]:
    size = draw(st.integers(1, 9))
    ids = [f"n{i}" for i in range(size)]
    nodes = [node("entry", "entry", trigger="inbound")]
    edges = [edge("entry", "n0")]
    for node_id in ids:
        kind = draw(st.sampled_from(sorted(SAMPLES)))
        nodes.append(node(node_id, kind, **draw(st.sampled_from(SAMPLES[kind]))))
        for label in draw(st.lists(st.sampled_from(LABELS[kind]), unique=True, max_size=4)):
            edges.append(edge(node_id, draw(st.sampled_from(ids)), label))
    return {
        "id": "flow_p",
        "name": "p",
        "version": 1,
        "start": "entry",
        "nodes": nodes,
        "edges": edges,
    }


RESULTS: dict[CommandKind, Any] = {
    CommandKind.PLAY: st.sampled_from([("done", None)] * 6 + [("hangup", None), ("error", None)]),
    CommandKind.SAY: st.just(("done", None)),
    CommandKind.GATHER: st.one_of(
        st.tuples(
            st.just("digits"), st.fixed_dictionaries({"digits": st.text("0123#*9", max_size=5)})
        ),
        st.sampled_from(
            [("digit:1", None), ("digit:2", None), ("timeout", None), ("hangup", None)]
        ),
    ),
    CommandKind.RECORD: st.just(("done", {"recording": "acc/rec.wav"})),
    CommandKind.DIAL: st.sampled_from(["answered", "no_answer", "busy", "failed", "zzz"]).map(
        lambda o: (o, None)
    ),
    CommandKind.ENQUEUE: st.sampled_from(
        ["timeout", "abandon", "no_agents", "queue_full", "ewt", "answered", "hangup"]
    ).map(lambda o: (o, None)),
    CommandKind.CONFERENCE: st.just(("done", None)),
    CommandKind.HTTP: st.one_of(
        st.tuples(
            st.just("response"),
            st.fixed_dictionaries(
                {
                    "status": st.sampled_from([200, 204, 404, 500]),
                    "body": st.sampled_from([None, {"pin": "1"}, "text"]),
                }
            ),
        ),
        st.sampled_from([("timeout", None), ("error", {"reason": "refused"})]),
    ),
}
SCHEDULE = Schedule(
    "sch_1", "Europe/Berlin", (ScheduleRule("weekly", dow=1, start_time="09:00", end_time="17:00"),)
)
MAX_STEPS = 40
HANDOFF_KINDS = {
    CommandKind.HANGUP,
    CommandKind.VOICEMAIL,
    CommandKind.DIAL,
    CommandKind.ENQUEUE,
    CommandKind.CONFERENCE,
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows(), st.data())
def test_any_parsed_flow_runs_to_an_end_within_the_guard(
    raw: dict[str, Any], data: st.DataObject
) -> None:
    document = parse_flow(raw)
    assert document.to_json() == raw
    valid = validate_flow(raw) == []  # never raises, whatever the graph
    ctx = FlowContext(schedules={"sch_1": SCHEDULE}, max_steps=MAX_STEPS)
    result = start(document, NOW, ctx, call_id="c", variables={"caller_number": "4930"})
    calls = 0
    while not result.state.ended:
        calls += 1
        assert calls <= MAX_STEPS + 1
        command, state = result.command, result.state
        assert (
            command.kind in RESULTS
            and command.seq == state.seq
            and command.node_id == state.node_id
        )
        outcome, payload = data.draw(RESULTS[command.kind])
        wire = SessionState.from_json(json.loads(json.dumps(state.to_json())))
        result = step(document, wire, outcome, payload, NOW, ctx, seq=command.seq)
        assert result.command.seq == command.seq + 1
        assert result.state.trace_seq > state.trace_seq  # every step is traced
    assert result.flush and result.command.kind in HANDOFF_KINDS
    assert result.state.trace[-1].type == "end"
    assert result.state.steps <= MAX_STEPS + 1
    if valid:
        assert result.state.end_reason != "missing_node"
    seqs = [event.seq for event in result.state.trace]
    assert seqs == list(range(len(seqs)))


@settings(max_examples=200, deadline=None)
@given(flows())
def test_validation_errors_are_always_located(raw: dict[str, Any]) -> None:
    for error in validate_flow(raw):
        assert error.path.split("[")[0].split(".")[0] in {"nodes", "edges", "start"}
        assert error.message
