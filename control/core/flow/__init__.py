"""Call flows: documents, validation, versions and the pure interpreter.

Typical use by the callers (API, ESL controller)::

    doc = load_flow(raw, refs)                      # publish time: located errors or a document
    s = start(doc, now, ctx, call_id=cid, variables=call_vars)
    s = step(doc, s.state, outcome, data, now, ctx, seq=seq)
    if s.flush:
        events, state = drain_trace(s.state)
"""

from control.core.flow.commands import Command, CommandKind
from control.core.flow.document import (
    FlowDocument,
    FlowEdge,
    FlowError,
    FlowInvalid,
    FlowNode,
    parse_flow,
    referenced_flows,
)
from control.core.flow.interpreter import Step, VersionMismatch, start, step
from control.core.flow.nodes import KINDS, Outcome, Ref
from control.core.flow.state import DEFAULT_MAX_STEPS, FlowContext, SessionState, drain_trace
from control.core.flow.trace import TraceEvent, TraceType
from control.core.flow.validate import AccountRefs, check_flow, load_flow, validate_flow
from control.core.flow.versions import (
    FlowVersion,
    VersionImmutable,
    VersionStatus,
    live_version,
    new_draft,
    publish,
    save_draft,
)

__all__ = [
    "DEFAULT_MAX_STEPS",
    "KINDS",
    "AccountRefs",
    "Command",
    "CommandKind",
    "FlowContext",
    "FlowDocument",
    "FlowEdge",
    "FlowError",
    "FlowInvalid",
    "FlowNode",
    "FlowVersion",
    "Outcome",
    "Ref",
    "SessionState",
    "Step",
    "TraceEvent",
    "TraceType",
    "VersionImmutable",
    "VersionMismatch",
    "VersionStatus",
    "check_flow",
    "drain_trace",
    "live_version",
    "load_flow",
    "new_draft",
    "parse_flow",
    "publish",
    "referenced_flows",
    "save_draft",
    "start",
    "step",
    "validate_flow",
]
