"""Flow documents: React Flow exports load and save back unchanged; shape errors are located."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.core.flow import (
    KINDS,
    FlowInvalid,
    load_flow,
    parse_flow,
    referenced_flows,
    validate_flow,
)
from control.core.flow.nodes import MenuData
from tests.core.flowkit import edge, flow, node

FIXTURE = Path(__file__).parent / "fixtures" / "reactflow_export.json"

SPEC_KINDS = {
    "entry", "play", "say", "menu", "collect", "timeCondition", "condition", "setVariable",
    "httpRequest", "dial", "ringGroup", "enqueue", "voicemail", "record", "conference",
    "transfer", "goto", "language", "hangup",
}  # fmt: skip


def test_all_nineteen_node_kinds_are_known() -> None:
    assert set(KINDS) == SPEC_KINDS


def test_react_flow_export_round_trips_untouched() -> None:
    raw = json.loads(FIXTURE.read_text())
    document = load_flow(copy.deepcopy(raw))  # full validation, graph indexes built
    assert document.next_node("hours_1", "holiday") == "closed_1"  # no holiday edge drawn
    saved = document.to_json()
    assert saved == raw
    assert json.dumps(saved, sort_keys=True) == json.dumps(raw, sort_keys=True)
    menu = document.by_id["menu_1"]
    assert isinstance(menu.data, MenuData) and menu.data.max_digits == 1
    assert saved["viewport"] == {"x": 112.5, "y": 38.75, "zoom": 0.85}
    assert saved["nodes"][2]["positionAbsolute"] == {"x": 40, "y": 300}
    assert saved["edges"][1]["style"] == {"stroke": "#16a34a"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
# Editor keys never collide with the typed ones.
extra_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyzXYZ_", min_size=1, max_size=10).filter(
    lambda k: k
    not in {"id", "type", "position", "data", "source", "target", "sourceHandle", "kind", "name",
            "version", "start", "nodes", "edges", "audioId", "trigger", "maxDigits", "timeoutSec",
            "promptText", "minDigits", "terminators"}
)  # fmt: skip
extras = st.dictionaries(extra_keys, json_values, max_size=4)


@settings(max_examples=150, deadline=None)
@given(extras, extras, extras, extras, extras)
def test_unknown_keys_anywhere_survive_a_round_trip(
    top: dict[str, Any],
    on_node: dict[str, Any],
    in_data: dict[str, Any],
    on_edge: dict[str, Any],
    pos: dict[str, Any],
) -> None:
    raw = flow(
        [
            node("menu", "menu", promptText="Hi", maxDigits=1, timeoutSec=5, **in_data),
            node("bye", "hangup"),
        ],
        [edge("menu", "bye", "timeout")],
    )
    raw.update(top)
    raw["nodes"][1].update(on_node)
    raw["nodes"][1]["position"].update(pos)
    raw["edges"][0].update(on_edge)
    expected = json.dumps(raw, sort_keys=True)
    assert json.dumps(parse_flow(raw).to_json(), sort_keys=True) == expected


SHAPE_ERRORS = [
    ("missing required field", [node("m", "menu", promptText="Hi", timeoutSec=5)], "nodes[1].data.maxDigits: required"),
    ("unknown kind", [node("x", "teleport")], "nodes[1].data.kind: unknown node kind 'teleport'"),
    ("no kind", [{"id": "x", "type": "play", "data": {"audioId": "a"}}], "nodes[1].data.kind: required"),
    ("wrong type", [node("p", "play", audioId=7)], "nodes[1].data.audioId: Input should be a valid string"),
    ("bad literal", [node("d", "dial", targetKind="fax", target="1")], "nodes[1].data.targetKind: Input should be 'user', 'extension' or 'number'"),
    ("out of range", [node("m", "menu", promptText="Hi", maxDigits=0, timeoutSec=5)], "nodes[1].data.maxDigits: Input should be greater than or equal to 1"),
    ("string for an int", [node("m", "menu", promptText="Hi", maxDigits="1", timeoutSec=5)], "nodes[1].data.maxDigits: Input should be a valid integer"),
    ("bad language", [node("l", "language", language="xx-XX")], "nodes[1].data.language: Input should be 'en-US', 'es-ES', 'fr-FR', 'de-DE', 'it-IT', 'pt-BR', 'nl-NL', 'pl-PL', 'ru-RU', 'tr-TR', 'ar-XA', 'he-IL', 'hi-IN', 'ja-JP', 'ko-KR' or 'cmn-CN'"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "nodes", "expected"), SHAPE_ERRORS)
def test_shape_errors_are_located(name: str, nodes: list[dict[str, Any]], expected: str) -> None:
    raw = flow(nodes, [])
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(raw)
    assert [str(e) for e in caught.value.errors] == [expected], name
    assert [str(e) for e in validate_flow(raw)] == [expected]


def test_document_fields_are_required() -> None:
    errors = [str(e) for e in validate_flow({"nodes": [], "edges": "x", "version": 0})]
    assert errors == [
        "id: required",
        "name: required",
        "version: Input should be greater than or equal to 1",
        "start: required",
        "edges: Input should be a valid list",
    ]


def test_referenced_flows_lists_goto_and_transfer_targets() -> None:
    document = parse_flow(
        flow(
            [
                node("g", "goto", flowId="flow_a"),
                node("t", "transfer", destKind="flow", destId="flow_b"),
                node("q", "transfer", destKind="queue", destId="q_1"),
            ],
            [],
        )
    )
    assert referenced_flows(document) == {"flow_a", "flow_b"}
