"""Flow validation with located errors, run before a version is published.

Checks, in order: shape and node fields (pydantic), node cross-field rules, ids and the start
node, edges (endpoints, outcome labels the source can produce, ambiguity), references to
account objects (against id sets the caller passes; no lookups here), nodes unreachable from an
entry node, and loops with no way out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from control.core.flow.document import FlowDocument, FlowError, FlowInvalid, parse_flow
from control.core.flow.nodes import (
    DIGIT_PREFIX,
    DialData,
    EnqueueData,
    EntryData,
    GotoData,
    MenuData,
    NodeData,
    Outcome,
    Ref,
    RingGroupData,
)


@dataclass(frozen=True)
class AccountRefs:
    """Ids that exist in the flow's account, per kind; None means "not checked"."""

    media: frozenset[str] | None = None
    queue: frozenset[str] | None = None
    mailbox: frozenset[str] | None = None
    schedule: frozenset[str] | None = None
    user: frozenset[str] | None = None
    ring_group: frozenset[str] | None = None
    flow: frozenset[str] | None = None
    conference: frozenset[str] | None = None
    extension: frozenset[str] | None = None
    forward: frozenset[str] | None = None

    def known(self, ref: Ref) -> frozenset[str] | None:
        value: frozenset[str] | None = getattr(self, ref.value)
        return value


_NOUNS = {Ref.MEDIA: "media file", Ref.MAILBOX: "voicemail box", Ref.RING_GROUP: "ring group"}


def validate_flow(raw: Mapping[str, Any], refs: AccountRefs | None = None) -> list[FlowError]:
    """Every problem found, located; empty when the flow can be published."""
    try:
        document = parse_flow(raw)
    except FlowInvalid as exc:
        return exc.errors
    return check_flow(document, refs)


def load_flow(raw: Mapping[str, Any], refs: AccountRefs | None = None) -> FlowDocument:
    """Parse and fully validate; raises :class:`FlowInvalid` with every error."""
    document = parse_flow(raw)
    errors = check_flow(document, refs)
    if errors:
        raise FlowInvalid(errors)
    return document


def check_flow(document: FlowDocument, refs: AccountRefs | None = None) -> list[FlowError]:
    errors = [*_node_errors(document, refs or AccountRefs()), *_edge_errors(document)]
    if errors:
        return errors  # graph checks on a broken graph only repeat the same faults
    return [*_unreachable(document), *_closed_loops(document)]


def _node_errors(document: FlowDocument, refs: AccountRefs) -> Iterator[FlowError]:
    seen: dict[str, int] = {}
    triggers: dict[str, str] = {}
    for i, node in enumerate(document.nodes):
        where = f"nodes[{i}]"
        if node.id in seen:
            message = f"duplicate id {node.id!r} (also nodes[{seen[node.id]}])"
            yield FlowError(f"{where}.id", message)
        seen.setdefault(node.id, i)
        if node.type != node.data.kind:
            yield FlowError(f"{where}.type", f"must equal data.kind {node.data.kind!r}")
        for field, message in node.data.problems():
            yield FlowError(f"{where}.data.{field}", message)
        for field, ref, value in node.data.references():
            known = refs.known(ref)
            if known is not None and value not in known:
                noun = _NOUNS.get(ref, ref.value.replace("_", " "))
                yield FlowError(f"{where}.data.{field}", f"no {noun} {value!r} in this account")
        data = node.data
        if isinstance(data, EntryData):
            if data.trigger in triggers:
                yield FlowError(
                    f"{where}.data.trigger",
                    f"entry node {triggers[data.trigger]!r} already handles {data.trigger!r}",
                )
            triggers.setdefault(data.trigger, node.id)
        if isinstance(data, GotoData) and data.node_id and data.node_id not in document.by_id:
            yield FlowError(f"{where}.data.nodeId", f"no node {data.node_id!r} in this flow")
    start = document.by_id.get(document.start)
    if start is None:
        yield FlowError("start", f"no node {document.start!r}")
    elif not isinstance(start.data, EntryData):
        yield FlowError("start", f"node {document.start!r} is a {start.data.kind}, not an entry")


def _edge_errors(document: FlowDocument) -> Iterator[FlowError]:
    seen_ids: set[str] = set()
    first: dict[tuple[str, str], int] = {}
    for i, edge in enumerate(document.edges):
        where = f"edges[{i}]"
        if edge.id in seen_ids:
            yield FlowError(f"{where}.id", f"duplicate id {edge.id!r}")
        seen_ids.add(edge.id)
        source = document.by_id.get(edge.source)
        if source is None:
            yield FlowError(f"{where}.source", f"no node {edge.source!r}")
        if edge.target not in document.by_id:
            yield FlowError(f"{where}.target", f"no node {edge.target!r}")
        if source is None:
            continue
        data, label = source.data, edge.label
        if data.ENDS_CALL:
            yield FlowError(
                f"{where}.source", f"{data.kind} node {source.id!r} ends the flow: no edges out"
            )
        elif not data.produces(label):
            yield FlowError(
                f"{where}.sourceHandle",
                f"{data.kind} node {source.id!r} cannot produce {label!r}{_hint(data, label)}",
            )
        elif isinstance(data, MenuData) and set(data.terminators or "") & set(_keys(label)):
            yield FlowError(f"{where}.sourceHandle", f"{label!r} uses a terminator key")
        key = (edge.source, label)
        if key in first:
            yield FlowError(
                f"{where}.sourceHandle",
                f"node {edge.source!r} already has an edge for {label!r} (edges[{first[key]}])",
            )
        first.setdefault(key, i)


def _keys(label: str) -> str:
    return label.removeprefix(DIGIT_PREFIX) if label.startswith(DIGIT_PREFIX) else ""


def _hint(data: NodeData, label: str) -> str:
    if isinstance(data, MenuData) and label.startswith(DIGIT_PREFIX):
        return f" (keys 0-9 * #, {data.min_digits}-{data.max_digits} of them)"
    if isinstance(data, EnqueueData) and label == Outcome.ANSWERED:
        return " (an answered queue call ends the flow)"
    return f"; it produces {', '.join(data.OUTCOMES)}" if data.OUTCOMES else ""


def _entries(document: FlowDocument) -> list[str]:
    return [n.id for n in document.nodes if isinstance(n.data, EntryData)]


def _unreachable(document: FlowDocument) -> Iterator[FlowError]:
    reached = _walk(_entries(document), document.successors)
    for i, node in enumerate(document.nodes):
        if node.id not in reached:
            yield FlowError(f"nodes[{i}]", f"node {node.id!r} is unreachable from the entry node")


def _walk(roots: list[str], step: Callable[[str], list[str]]) -> set[str]:
    seen, todo = set(roots), list(roots)
    while todo:
        for nxt in step(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def ends_here(document: FlowDocument, node_id: str) -> bool:
    """Can the call leave the graph at this node: a hand-off, or an outcome with no edge?"""
    data = document.data(node_id)
    if data.ENDS_CALL and not (isinstance(data, GotoData) and not data.flow_id):
        return True
    if isinstance(data, EnqueueData):
        return True  # an answered queue call ends the flow
    outcomes = list(data.OUTCOMES)
    if isinstance(data, DialData | RingGroupData):
        return not document.has_edge(node_id, Outcome.ANSWERED) or any(
            document.next_node(node_id, o) is None for o in outcomes
        )
    return any(document.next_node(node_id, o) is None for o in outcomes)


def _closed_loops(document: FlowDocument) -> Iterator[FlowError]:
    """Cycles from which no node can end the call: only the loop guard would stop them."""
    predecessors: dict[str, list[str]] = {n.id: [] for n in document.nodes}
    for node in document.nodes:
        for nxt in document.successors(node.id):
            predecessors[nxt].append(node.id)
    exits = [n.id for n in document.nodes if ends_here(document, n.id)]
    can_leave = _walk(exits, predecessors.__getitem__)
    trapped = [n.id for n in document.nodes if n.id not in can_leave]
    for component in _cycles(document, set(trapped)):
        first = min(component, key=document.index.__getitem__)
        path = " -> ".join(sorted(component, key=document.index.__getitem__))
        yield FlowError(
            f"nodes[{document.index[first]}]", f"loop without a way out: {path} -> {first}"
        )


def _cycles(document: FlowDocument, nodes: set[str]) -> list[list[str]]:
    """Strongly connected components of ``nodes`` that contain a cycle (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def succ(node_id: str) -> list[str]:
        return [n for n in document.successors(node_id) if n in nodes]

    for root in sorted(nodes, key=document.index.__getitem__):
        if root in index:
            continue
        work = [(root, iter(succ(root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node_id, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node_id])
                if low[node_id] == index[node_id]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node_id:
                            break
                    if len(component) > 1 or node_id in succ(node_id):
                        found.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(succ(child))))
            elif child in on_stack:
                low[node_id] = min(low[node_id], index[child])
    return found
