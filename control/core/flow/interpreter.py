"""The flow interpreter: a pure step function driven by the media engine's results.

``start`` and ``step`` take the flow, the session state, the result of the last command, the
current time and a context, and return the next command with the new state. Nodes that need no
media (conditions, schedules, variables, jumps) run inside one call; the loop stops at the first
node that must wait for the engine or ends the call. Flow content never makes this module
raise: a broken reference, a missing edge or the step guard ends the call with a traced reason.
Contract violations by the caller (naive time, wrong pinned version) do raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from control.core.flow.actions import Action, Advance, Await, Finish, Frame, Jump, Result, hangup
from control.core.flow.actions import as_scalar as _scalar
from control.core.flow.commands import BRIDGES, CALLER_HANGUP, Command, CommandKind
from control.core.flow.document import FlowDocument
from control.core.flow.expressions import Scalar
from control.core.flow.handlers import ENTER, RESUME
from control.core.flow.nodes import EnqueueData, EntryData
from control.core.flow.state import FlowContext, SessionState
from control.core.flow.trace import TraceEvent, TraceType

MAX_VARIABLES = 100
TRACE_FLUSH_AT = 100  # flush early if a long IVR session buffers this many events


class VersionMismatch(RuntimeError):
    """The caller passed a flow version other than the one this call is pinned to."""


@dataclass(frozen=True)
class Step:
    command: Command
    state: SessionState

    @property
    def flush(self) -> bool:
        """Write the buffered trace now: the call ended, is bridged, or the buffer is full."""
        return (
            self.state.ended
            or self.command.kind in BRIDGES
            or len(self.state.trace) >= TRACE_FLUSH_AT
        )


def start(
    flow: FlowDocument,
    now: datetime,
    ctx: FlowContext,
    *,
    call_id: str,
    variables: Mapping[str, Any] | None = None,
    trigger: str | None = None,
) -> Step:
    """Begin a call at the entry node for ``trigger`` (else ``flow.start``)."""
    now_ms = _epoch_ms(now)
    pins = {doc_id: doc.version for doc_id, doc in ctx.flows.items()}
    pins[flow.id] = flow.version
    state = SessionState(
        call_id=call_id,
        flow_id=flow.id,
        pins=pins,
        current_flow=flow.id,
        language=ctx.language,
        voice_gender=ctx.voice_gender,
        started_ms=now_ms,
        variables={str(k): _scalar(v) for k, v in (variables or {}).items()},
    )
    run = _Run(flow, state, ctx, now)
    entry = next(
        (n.id for n in flow.nodes if isinstance(n.data, EntryData) and n.data.trigger == trigger),
        flow.start,
    )
    return run.enter(entry)


def step(
    flow: FlowDocument,
    state: SessionState,
    outcome: str,
    data: Mapping[str, Any] | None,
    now: datetime,
    ctx: FlowContext,
    *,
    seq: int | None = None,
) -> Step:
    """Feed the result of the last command; ``seq`` (echoed from it) drops stale repeats."""
    _epoch_ms(now)
    if state.ended:
        reason = {"cause": "normal_clearing", "reason": "ended"}
        return Step(Command(CommandKind.HANGUP, reason, state.seq, state.node_id), state)
    if (seq is not None and seq != state.seq) or state.node_id is None:
        return Step(Command(CommandKind.NOOP, {"reason": "stale"}, state.seq), state)
    run = _Run(flow, state.copy(), ctx, now)
    node_id = state.node_id
    node = run.doc.by_id.get(node_id)
    if node is None:
        return run.finish(node_id, hangup("normal_temporary_failure", "missing_node"))
    resume = RESUME.get(type(node.data))
    if resume is None:  # a state that never came from this flow version
        return run.finish(node_id, hangup("normal_temporary_failure", "not_waiting"))
    result = Result(outcome, data or {})
    if outcome == CALLER_HANGUP and not isinstance(node.data, EnqueueData):
        return run.finish(node_id, hangup("normal_clearing", "caller_hangup", CALLER_HANGUP))
    action = resume(node.data, run.frame(node_id), result)
    return run.act(node_id, action)


def _epoch_ms(now: datetime) -> int:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp() * 1000)


class _Run:
    """One call to start/step: owns the state copy being built."""

    def __init__(
        self, root: FlowDocument, state: SessionState, ctx: FlowContext, now: datetime
    ) -> None:
        self.docs = {**ctx.flows, root.id: root}
        self.state, self.ctx, self.now = state, ctx, now
        self.now_ms = _epoch_ms(now)
        self.doc = self._pinned(state.current_flow)

    def _pinned(self, flow_id: str) -> FlowDocument:
        doc = self.docs.get(flow_id)
        if doc is None:
            raise VersionMismatch(f"call needs flow {flow_id} v{self.state.pins.get(flow_id)}")
        pinned = self.state.pins.setdefault(flow_id, doc.version)
        if doc.version != pinned:
            raise VersionMismatch(f"call pinned {flow_id} v{pinned}, got v{doc.version}")
        return doc

    def frame(self, node_id: str) -> Frame:
        return Frame(self.state, self.ctx, self.now, self.doc, node_id)

    def enter(self, node_id: str) -> Step:
        """Walk from ``node_id`` until a node waits for the engine or the flow ends."""
        current: str | None = node_id
        while current is not None:
            state = self.state
            state.steps += 1
            if state.steps > self.ctx.max_steps:
                return self.finish(current, hangup("normal_temporary_failure", "max_steps"))
            node = self.doc.by_id.get(current)
            if node is None:
                return self.finish(current, hangup("normal_temporary_failure", "missing_node"))
            state.node_id, state.entered_ms, state.counters = current, self.now_ms, {}
            if state.caller_gone and node.data.NEEDS_CALLER:
                return self.finish(current, hangup("normal_clearing", "caller_gone"))
            outcome = self._apply(current, ENTER[type(node.data)](node.data, self.frame(current)))
            if isinstance(outcome, Step):
                return outcome
            current = outcome
        raise AssertionError("unreachable")  # pragma: no cover

    def act(self, node_id: str, action: Action) -> Step:
        outcome = self._apply(node_id, action)
        return outcome if isinstance(outcome, Step) else self.enter(outcome)

    def _apply(self, node_id: str, action: Action) -> Step | str:
        """Turn a handler's action into the next node id, or the step's answer."""
        if isinstance(action, Finish):
            return self.finish(node_id, action)
        if isinstance(action, Await):
            if action.retry is not None:
                self.record(node_id, action.retry, TraceType.RETRY)
                self.state.entered_ms = self.now_ms
                self.state.steps += 1
                if self.state.steps > self.ctx.max_steps:
                    return self.finish(node_id, hangup("normal_temporary_failure", "max_steps"))
            return self.wait(node_id, action)
        if isinstance(action, Jump):
            return self.jump(node_id, action)
        self.record(node_id, action, TraceType.NODE)
        target = self.doc.next_node(node_id, action.outcome)
        if target is None:
            return self.finish(node_id, hangup("normal_clearing", "end_of_flow"), traced=True)
        return target

    def jump(self, node_id: str, jump: Jump) -> Step | str:
        where = f"flow {jump.flow_id}" if jump.flow_id else f"node {jump.node_id}"
        self.record(node_id, Advance("goto", detail=f"to {where}"), TraceType.NODE)
        if not jump.flow_id or jump.flow_id == self.doc.id:
            return jump.node_id or self.doc.start
        if jump.flow_id not in self.docs:
            return self.finish(node_id, hangup("normal_temporary_failure", "flow_unavailable"))
        self.doc = self._pinned(jump.flow_id)
        self.state.current_flow = jump.flow_id
        return self.doc.start

    def wait(self, node_id: str, action: Await) -> Step:
        state = self.state
        state.awaiting = action.kind.value
        state.seq += 1
        return Step(Command(action.kind, dict(action.args), state.seq, node_id), state)

    def finish(self, node_id: str | None, action: Finish, traced: bool = False) -> Step:
        """End the flow with ``action``'s command; ``traced``: the node already has its event."""
        state = self.state
        kind = self._kind(node_id)
        event = Advance(action.outcome or "", detail=action.reason)
        self.record(node_id, event, TraceType.END, kind=kind, duration=not traced)
        state.ended, state.end_reason, state.awaiting = True, action.reason, None
        state.seq += 1
        return Step(Command(action.kind, dict(action.args), state.seq, node_id), state)

    def _kind(self, node_id: str | None) -> str | None:
        node = self.doc.by_id.get(node_id or "")
        return None if node is None else node.data.kind

    def record(
        self,
        node_id: str | None,
        advance: Advance,
        type_: TraceType,
        kind: str | None = None,
        duration: bool = True,
    ) -> None:
        state = self.state
        changed: dict[str, Scalar] = {}
        for name, value in advance.changed.items():
            if name in state.variables or len(state.variables) < MAX_VARIABLES:
                state.variables[name] = changed[name] = _scalar(value)
        event = TraceEvent(
            seq=state.trace_seq,
            ts=state.entered_ms if duration else self.now_ms,
            type=type_.value,
            flow_id=self.doc.id,
            version=state.pins[self.doc.id],
            node_id=node_id,
            kind=kind or self._kind(node_id),
            outcome=str(advance.outcome) if advance.outcome else None,
            duration_ms=self.now_ms - state.entered_ms if duration else 0,
            variables=changed,
            dtmf=advance.dtmf,
            detail=advance.detail,
        )
        state.trace_seq += 1
        state.trace.append(event)
