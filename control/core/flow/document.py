"""Flow documents: the versioned node graph shared by the React Flow editor and the interpreter.

The editor saves whatever React Flow gives it (``width``, ``selected``, ``viewport``, edge
``style``…). Those keys are kept as extras and written back untouched, so a document
survives load → save unchanged; only the fields the runtime needs are typed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import Field, ValidationError

from control.core.flow.nodes import KINDS, AnyNodeData, GotoData, NodeData, Open, Outcome, Ref


@dataclass(frozen=True)
class FlowError:
    """A located problem, e.g. ``nodes[3].data.maxDigits: required``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class FlowInvalid(ValueError):
    def __init__(self, errors: Sequence[FlowError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


class FlowEdge(Open):
    id: str
    source: str
    target: str
    source_handle: str | None = None

    @property
    def label(self) -> str:
        """The outcome this edge represents; no handle means the node's ``default``."""
        return self.source_handle or Outcome.DEFAULT


class FlowNode(Open):
    id: str = Field(min_length=1)
    type: str
    position: dict[str, Any] | None = None
    data: AnyNodeData


class FlowDocument(Open):
    id: str = Field(min_length=1)
    name: str
    version: int = Field(ge=1)
    start: str
    nodes: list[FlowNode]
    edges: list[FlowEdge]

    def to_json(self) -> dict[str, Any]:
        """The document as saved, editor extras included."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    @cached_property
    def by_id(self) -> dict[str, FlowNode]:
        return {node.id: node for node in self.nodes}

    @cached_property
    def index(self) -> dict[str, int]:
        return {node.id: i for i, node in reversed(list(enumerate(self.nodes)))}

    @cached_property
    def exits(self) -> dict[tuple[str, str], str]:
        """(source node, outcome label) → target node; the first edge wins."""
        table: dict[tuple[str, str], str] = {}
        for edge in self.edges:
            table.setdefault((edge.source, edge.label), edge.target)
        return table

    def data(self, node_id: str) -> NodeData:
        return self.by_id[node_id].data

    def next_node(self, node_id: str, outcome: str) -> str | None:
        """Where ``outcome`` leads: its own edge, else the documented fall-backs.

        ``answered`` (a bridge that ended with the caller still there) only follows its own
        edge: a catch-all ``default`` edge is meant for failures, not for a finished call.
        """
        exits = self.exits
        target = exits.get((node_id, outcome))
        if target is None and outcome == Outcome.ANSWERED:
            return None
        if target is None and outcome == Outcome.HOLIDAY:
            target = exits.get((node_id, Outcome.OUT_OF_HOURS))
        if target is None:
            target = exits.get((node_id, Outcome.DEFAULT))
        return target

    def has_edge(self, node_id: str, label: str) -> bool:
        return (node_id, label) in self.exits

    def successors(self, node_id: str) -> list[str]:
        """Edge targets plus a same-flow ``goto`` jump: the graph validation walks."""
        found = [edge.target for edge in self.edges if edge.source == node_id]
        data = self.by_id[node_id].data
        if isinstance(data, GotoData) and data.node_id and not data.flow_id:
            found.append(data.node_id)
        return found


def referenced_flows(document: FlowDocument) -> set[str]:
    """Other flows a call may enter from this one (``goto`` / ``transfer`` to a flow)."""
    found: set[str] = set()
    for node in document.nodes:
        for _, ref, value in node.data.references():
            if ref is Ref.FLOW:
                found.add(value)
    return found


def parse_flow(raw: Mapping[str, Any]) -> FlowDocument:
    """Check the shape and each node's fields; raises :class:`FlowInvalid`."""
    try:
        return FlowDocument.model_validate(raw)
    except ValidationError as exc:
        raise FlowInvalid([_located(error) for error in exc.errors()]) from None


def _located(error: Any) -> FlowError:
    loc = list(error["loc"])
    kind = error["type"]
    if loc[-1:] == ["data"] and kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = error.get("ctx", {}).get("tag")
        message = "required" if tag is None else f"unknown node kind {tag!r}"
        return FlowError(_path([*loc, "kind"]), message)
    if len(loc) > 3 and loc[2] == "data" and loc[3] in KINDS:
        del loc[3]  # the union's tag, not a key of the document
    if kind == "missing":
        return FlowError(_path(loc), "required")
    return FlowError(_path(loc), str(error["msg"]))


def _path(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "document"
