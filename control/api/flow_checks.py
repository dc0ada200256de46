"""Bridge between the API and the flow core: located flow errors as API field errors, the ids
a flow may point at, and the objects a published document references."""

from __future__ import annotations

from typing import Any

from control.api.errors import field_error, located_error
from control.core.flow import AccountRefs, FlowInvalid, Ref, parse_flow, validate_flow

# The table behind each kind of reference a node can hold.
REF_TABLE: dict[Ref, str] = {
    Ref.MEDIA: "media_files",
    Ref.QUEUE: "queues",
    Ref.MAILBOX: "voicemail_boxes",
    Ref.SCHEDULE: "time_schedules",
    Ref.USER: "sip_users",
    Ref.RING_GROUP: "ring_groups",
    Ref.FLOW: "call_flows",
    Ref.CONFERENCE: "conferences",
    Ref.EXTENSION: "extensions",
    Ref.FORWARD: "forward_targets",
}


def document_errors(document: Any, refs: dict[str, set[str]] | None) -> list[dict[str, Any]]:
    """Without ``refs``: the document must be a well-formed flow (drafts). With ``refs`` (ids
    per table in the account): everything publishing needs, dangling references included."""
    if not isinstance(document, dict):
        return [field_error("document", "must be an object")]
    if refs is None:
        shape = [
            field_error(f"document.{key}", f"required ({kind.__name__})")
            for key, kind in (("nodes", list), ("edges", list), ("start", str))
            if not isinstance(document.get(key), kind)
        ]
        return shape
    known = AccountRefs(
        **{ref.value: frozenset(refs.get(table, ())) for ref, table in REF_TABLE.items()}
    )
    return [
        located_error(e.path, e.message, "flow", under="document")
        for e in validate_flow(document, known)
    ]


def draft_issues(document: dict[str, Any]) -> list[str]:
    """What would stop a publish today, shown with a saved draft (drafts may be incomplete)."""
    return [str(e) for e in validate_flow(document)]


def document_references(document: dict[str, Any]) -> set[tuple[str, str]]:
    try:
        parsed = parse_flow(document)
    except FlowInvalid:
        return set()
    return {
        (REF_TABLE[ref], value)
        for node in parsed.nodes
        for _field, ref, value in node.data.references()
    }
