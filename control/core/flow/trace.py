"""Per-call flow trace: one event per node visit, buffered in the session state.

The buffer is flushed by the caller in one batch at a terminal or bridge step (spec 19.1), so
queue holds and menus never cost a write per poll.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from control.core.flow.expressions import Scalar


class TraceType(StrEnum):
    NODE = "node"  # a node finished with an outcome
    RETRY = "retry"  # a menu/collect attempt failed and the caller is prompted again
    END = "end"  # the flow ended here (hang-up, hand-off, guard, caller gone)


@dataclass(frozen=True)
class TraceEvent:
    seq: int
    ts: int  # epoch ms when the node was entered
    type: str
    flow_id: str
    version: int
    node_id: str | None
    kind: str | None
    outcome: str | None = None
    duration_ms: int = 0
    variables: dict[str, Scalar] = field(default_factory=dict)  # only those changed here
    dtmf: str | None = None
    detail: str | None = None

    def to_row(self, call_id: str, account_id: str) -> dict[str, Any]:
        """A ``call_events`` row: the columns the lake partitions and filters on, rest in data."""
        return {
            "call_id": call_id,
            "account_id": account_id,
            "ts": self.ts,
            "source": "flow",
            "type": self.type,
            "node_id": self.node_id,
            "outcome": self.outcome,
            "data": {
                "seq": self.seq,
                "flow_id": self.flow_id,
                "version": self.version,
                "kind": self.kind,
                "duration_ms": self.duration_ms,
                "variables": dict(self.variables),
                "dtmf": self.dtmf,
                "detail": self.detail,
            },
        }
