"""The interpreter's control rules: loop guard, jumps and sub-flows, version pinning, stale and
late results, caller hang-up, trace batching."""

from __future__ import annotations

from datetime import datetime

import pytest

from control.core.flow import (
    CommandKind,
    FlowContext,
    SessionState,
    VersionMismatch,
    check_flow,
    load_flow,
    start,
    step,
)
from control.core.flow.interpreter import TRACE_FLUSH_AT
from tests.core.flowkit import NOW, Call, edge, flow, node

MENU = {"promptAudioId": "media_menu", "maxDigits": 1, "timeoutSec": 5}


def test_loop_guard_ends_a_caller_driven_loop() -> None:
    doc = flow(
        [node("m", "menu", **MENU), node("p", "play", audioId="again"), node("bye", "hangup")],
        [edge("m", "p", "digit:9"), edge("p", "m"), edge("m", "bye", "timeout")],
    )  # fmt: skip
    call = Call(doc, FlowContext(max_steps=12))
    while not call.ended:
        call.send("done" if call.command.kind is CommandKind.PLAY else "digit:9")
    assert call.command.args == {"cause": "normal_temporary_failure", "reason": "max_steps"}
    assert call.state.steps == 13 and call.trace[-1].type == "end"
    assert call.trace[-1].detail == "max_steps"


def test_loop_guard_ends_a_logic_loop_inside_one_step() -> None:
    raw = flow(
        [node("inc", "setVariable", variable="n", expression="(n or 0) + 1"),
         node("check", "condition", expression="n > 0"), node("bye", "hangup")],
        [edge("inc", "check"), edge("check", "inc", "true"), edge("check", "bye", "false")],
    )  # fmt: skip
    assert check_flow(load_flow(raw)) == []  # it has a way out, it just never takes it
    call = Call(raw, FlowContext(max_steps=50))
    assert call.ended and call.command.args["reason"] == "max_steps"
    assert call.state.variables["n"] == 25


def test_goto_a_node_of_the_same_flow() -> None:
    doc = flow(
        [node("m", "menu", **MENU), node("p", "play", audioId="info"), node("back", "goto", nodeId="m")],
        [edge("m", "p", "digit:1"), edge("p", "back")],
    )  # fmt: skip
    call = Call(doc)
    call.send("digit:1")
    assert call.send("done").node_id == "m"
    assert call.path()[-2:] == ["p:default", "back:goto"]
    assert call.trace[-1].detail == "to node m"


def _main(version: int = 1) -> dict[str, object]:
    return flow(
        [node("m", "menu", **MENU), node("sub", "goto", flowId="flow_sales"),
         node("t", "transfer", destKind="flow", destId="flow_sales")],
        [edge("m", "sub", "digit:1"), edge("m", "t", "digit:2")],
        flow_id="flow_main", version=version,
    )  # fmt: skip


def _sales(version: int, prompt: str) -> dict[str, object]:
    return flow([node("p", "play", audioId=prompt)], [], flow_id="flow_sales", version=version)


@pytest.mark.parametrize("key", ["digit:1", "digit:2"])
def test_goto_and_transfer_enter_another_flow_at_its_pinned_version(key: str) -> None:
    main = load_flow(_main())
    ctx = FlowContext(flows={"flow_sales": load_flow(_sales(3, "sales_v3"))})
    call = Call(main, ctx)
    assert call.state.pins == {"flow_main": 1, "flow_sales": 3}
    play = call.send(key)
    assert play.args["prompts"] == [{"media": "sales_v3"}]
    assert call.state.current_flow == "flow_sales"
    assert (call.trace[-1].flow_id, call.trace[-1].version) == ("flow_sales", 3)
    # v4 of the sub-flow is published mid-call: this call must still get v3.
    newer = FlowContext(flows={"flow_sales": load_flow(_sales(4, "sales_v4"))})
    with pytest.raises(VersionMismatch, match="flow_sales v3, got v4"):
        call.send("done", ctx=newer)
    call.send("done")
    assert call.command.args["reason"] == "end_of_flow"


def test_a_call_keeps_its_version_when_a_new_one_is_published() -> None:
    v1, v2 = load_flow(_main(1)), load_flow(_main(2))
    call = Call(v1, FlowContext(flows={"flow_sales": load_flow(_sales(1, "s"))}))
    assert call.state.version == 1
    with pytest.raises(VersionMismatch, match="flow_main v1, got v2"):
        call.send("digit:1", doc=v2)
    assert call.send("digit:1", doc=v1).kind is CommandKind.PLAY
    fresh = Call(v2, FlowContext(flows={"flow_sales": load_flow(_sales(1, "s"))}))
    assert fresh.state.version == 2


def test_jump_to_an_unavailable_flow_ends_the_call() -> None:
    call = Call(load_flow(_main()))
    call.send("digit:1")
    assert call.ended and call.command.args["reason"] == "flow_unavailable"


def test_stale_and_repeated_results_are_ignored() -> None:
    doc = load_flow(
        flow(
            [node("m", "menu", **MENU), node("p", "play", audioId="x")], [edge("m", "p", "digit:1")]
        )
    )
    first = start(doc, NOW, FlowContext(), call_id="c")
    moved = step(doc, first.state, "digit:1", None, NOW, FlowContext(), seq=first.command.seq)
    assert moved.command.kind is CommandKind.PLAY
    repeat = step(doc, moved.state, "digit:1", None, NOW, FlowContext(), seq=first.command.seq)
    assert repeat.command.kind is CommandKind.NOOP and repeat.state is moved.state
    assert step(doc, moved.state, "done", None, NOW, FlowContext()).state.ended  # seq is optional


def test_results_after_the_end_only_repeat_the_hangup() -> None:
    call = Call(flow([node("v", "voicemail", mailboxId="vm_1")], []))
    assert call.ended and call.command.kind is CommandKind.VOICEMAIL
    late = step(call.doc, call.state, "done", None, NOW, call.ctx)
    assert late.command.kind is CommandKind.HANGUP and late.command.args["reason"] == "ended"
    assert late.state is call.state


def test_caller_hangup_ends_the_flow_and_is_traced() -> None:
    call = Call(
        flow(
            [node("m", "menu", **MENU), node("p", "play", audioId="x")], [edge("m", "p", "digit:1")]
        )
    )
    call.send("hangup")
    assert call.command.args["reason"] == "caller_hangup"
    assert (call.trace[-1].node_id, call.trace[-1].outcome, call.trace[-1].type) == (
        "m",
        "hangup",
        "end",
    )


def test_inputs_are_never_modified() -> None:
    doc = load_flow(
        flow([node("c", "collect", variable="pin", minDigits=4, maxDigits=4, maxTries=3)], [])
    )
    first = start(doc, NOW, FlowContext(), call_id="c")
    before = first.state.to_json()
    step(doc, first.state, "digits", {"digits": "12"}, NOW, FlowContext(), seq=1)
    assert first.state.to_json() == before


def test_naive_time_is_refused() -> None:
    doc = load_flow(flow([node("p", "play", audioId="x")], []))
    with pytest.raises(ValueError, match="timezone-aware"):
        start(doc, datetime(2025, 1, 1), FlowContext(), call_id="c")
    ok = start(doc, NOW, FlowContext(), call_id="c")
    with pytest.raises(ValueError, match="timezone-aware"):
        step(doc, ok.state, "done", None, datetime(2025, 1, 1), FlowContext())


def test_entry_is_chosen_by_trigger() -> None:
    raw = flow(
        [node("p", "play", audioId="inbound"), node("api", "entry", trigger="api"), node("s", "say", text="api call")],
        [edge("api", "s")],
    )  # fmt: skip
    assert Call(raw, trigger="api").command.node_id == "s"
    assert Call(raw, trigger="internal").command.node_id == "p"  # no such entry: the start node
    assert Call(raw).command.node_id == "p"


def test_long_sessions_flush_before_the_buffer_grows_large() -> None:
    doc = flow(
        [node("m", "menu", **MENU, maxFailures=10), node("p", "play", audioId="x")],
        [edge("m", "p", "digit:1"), edge("p", "m")],
    )  # fmt: skip
    call = Call(doc, FlowContext(max_steps=1000))
    for _ in range(TRACE_FLUSH_AT):
        call.send("done" if call.command.kind is CommandKind.PLAY else "digit:1")
    assert call.flushes >= 1 and not call.ended
    assert len(call.state.trace) < TRACE_FLUSH_AT
    assert [e.seq for e in call.trace] == list(range(len(call.trace)))


def test_session_state_json_is_plain() -> None:
    call = Call(flow([node("m", "menu", **MENU)], []), variables={"caller_number": "4930", "n": 2})
    wire = call.state.to_json()
    assert wire["pins"] == {"flow_t": 1} and wire["awaiting"] == "gather"
    assert wire["variables"] == {"caller_number": "4930", "n": 2}
    assert SessionState.from_json(wire).node_id == "m"
