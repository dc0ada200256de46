"""Per-call session state (JSON, kept in Redis by the caller) and the interpreter's context.

The state pins the flow version(s) the call started with: the caller loads exactly those
documents on every step, so publishing a new version never changes a call in progress.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import TypeAdapter

from control.core.flow.document import FlowDocument
from control.core.flow.expressions import Scalar
from control.core.flow.trace import TraceEvent
from control.core.schedule import Schedule

DEFAULT_MAX_STEPS = 200


@dataclass(frozen=True)
class FlowContext:
    """Everything a step may consult besides the flow and the state; no lookups happen here."""

    account_timezone: str = "UTC"
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    flows: Mapping[str, FlowDocument] = field(default_factory=dict)  # pinned sub-flows
    max_steps: int = DEFAULT_MAX_STEPS
    language: str = "en-US"
    voice_gender: str = "male"


@dataclass
class SessionState:
    call_id: str
    flow_id: str  # the flow the call started in
    pins: dict[str, int]  # flow id → version this call runs
    current_flow: str
    language: str
    voice_gender: str
    started_ms: int
    entered_ms: int = 0
    node_id: str | None = None  # node waiting for a result, or where the flow ended
    awaiting: str | None = None  # command kind sent for node_id
    seq: int = 0
    steps: int = 0
    variables: dict[str, Scalar] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)  # retries of the current node
    caller_gone: bool = False
    ended: bool = False
    end_reason: str | None = None
    trace_seq: int = 0
    trace: list[TraceEvent] = field(default_factory=list)

    @property
    def version(self) -> int:
        return self.pins[self.flow_id]

    def copy(self) -> SessionState:
        return replace(
            self,
            pins=dict(self.pins),
            variables=dict(self.variables),
            counters=dict(self.counters),
            trace=list(self.trace),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = _ADAPTER.dump_python(self, mode="json")
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionState:
        return _ADAPTER.validate_python(data)


_ADAPTER = TypeAdapter(SessionState)


def drain_trace(state: SessionState) -> tuple[list[TraceEvent], SessionState]:
    """The buffered events to write, and the state with an empty buffer."""
    emptied = state.copy()
    emptied.trace = []
    return list(state.trace), emptied
