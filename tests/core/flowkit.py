"""Helpers for flow tests: compact document builders and a call driver that behaves like the
ESL controller (state through JSON between steps, seq echoed, trace flushed when asked)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from control.core.flow import (
    Command,
    CommandKind,
    FlowContext,
    FlowDocument,
    SessionState,
    Step,
    TraceEvent,
    drain_trace,
    load_flow,
    start,
    step,
)

NOW = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)  # a Monday
VOCABULARY = {kind.value for kind in CommandKind}


def node(node_id: str, kind: str, **data: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": kind,
        "position": {"x": 0, "y": 0},
        "data": {"kind": kind, **data},
    }


def edge(source: str, target: str, handle: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": f"{source}>{handle}>{target}",
        "source": source,
        "target": target,
    }
    if handle is not None:
        found["sourceHandle"] = handle
    return found


def flow(
    nodes: list[dict[str, Any]],
    edges: list[dict[str, Any]],
    *,
    flow_id: str = "flow_t",
    version: int = 1,
    entry: bool = True,
) -> dict[str, Any]:
    """A document; with ``entry`` an inbound entry node is prepended and wired to nodes[0]."""
    if entry:
        first = nodes[0]["id"]
        nodes = [node("entry", "entry", trigger="inbound"), *nodes]
        edges = [edge("entry", first), *edges]
    return {
        "id": flow_id,
        "name": "test",
        "version": version,
        "start": "entry",
        "nodes": nodes,
        "edges": edges,
    }


class Call:
    """Drives one call through start/step the way the media-engine controller does."""

    def __init__(
        self,
        document: FlowDocument | Mapping[str, Any],
        ctx: FlowContext | None = None,
        now: datetime = NOW,
        **start_args: Any,
    ) -> None:
        self.doc = document if isinstance(document, FlowDocument) else load_flow(document)
        self.ctx = ctx or FlowContext()
        self.now = now
        self.events: list[TraceEvent] = []
        self.flushes = 0
        self.commands: list[Command] = []
        start_args.setdefault("call_id", "call-1")
        self._take(start(self.doc, now, self.ctx, **start_args))

    def _take(self, result: Step) -> None:
        assert result.command.kind.value in VOCABULARY
        wire = json.loads(json.dumps(result.state.to_json()))  # as Redis would keep it
        state = SessionState.from_json(wire)
        assert state == result.state
        if result.flush:
            events, state = drain_trace(state)
            self.events += events
            self.flushes += 1
        self.state = state
        self.command = result.command
        self.commands.append(result.command)

    def send(self, outcome: str, data: Mapping[str, Any] | None = None, **kw: Any) -> Command:
        now = kw.pop("now", self.now)
        doc = kw.pop("doc", self.doc)
        ctx = kw.pop("ctx", self.ctx)
        result = step(doc, self.state, outcome, data, now, ctx, seq=self.command.seq)
        self._take(result)
        return self.command

    @property
    def trace(self) -> list[TraceEvent]:
        """Every event so far: flushed ones plus the buffer."""
        return self.events + list(self.state.trace)

    def path(self) -> list[str]:
        return [f"{e.node_id}:{e.outcome}" for e in self.trace if e.type == "node"]

    @property
    def ended(self) -> bool:
        return self.state.ended


def at(hour: int, minute: int = 0, day: int = 2) -> datetime:
    return datetime(2025, 6, day, hour, minute, tzinfo=UTC)
