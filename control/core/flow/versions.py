"""Draft and published flow versions: the rules, not the storage.

A flow has at most one draft, which the editor may overwrite freely (it need not be valid yet).
Publishing validates the draft and freezes it; a published version is never changed again, so
a call pinned to it (``SessionState.pins``) keeps running the exact graph it started with. To
change a live flow, open a new draft from any version and publish it: the live version is the
highest published number, which also makes a rollback just another publish.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from control.core.flow.document import FlowError, FlowInvalid, parse_flow
from control.core.flow.validate import AccountRefs, load_flow


class VersionStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class VersionImmutable(ValueError):
    """A published version was asked to change."""


@dataclass(frozen=True)
class FlowVersion:
    flow_id: str
    version: int
    status: VersionStatus
    document: Mapping[str, Any]  # exactly as the editor saved it
    published_at: int | None = None  # epoch seconds


def save_draft(current: FlowVersion, document: Mapping[str, Any]) -> FlowVersion:
    """Overwrite a draft. Only the shape is checked: a draft may be half-built."""
    if current.status is not VersionStatus.DRAFT:
        raise VersionImmutable(f"{current.flow_id} v{current.version} is published")
    parsed = parse_flow(document)
    errors = []
    if parsed.id != current.flow_id:
        errors.append(FlowError("id", f"must stay {current.flow_id!r}"))
    if parsed.version != current.version:
        errors.append(FlowError("version", f"a draft keeps its number {current.version}"))
    if errors:
        raise FlowInvalid(errors)
    return replace(current, document=parsed.to_json())


def publish(draft: FlowVersion, now_s: int, refs: AccountRefs | None = None) -> FlowVersion:
    """Freeze a draft after full validation; raises :class:`FlowInvalid` with every error."""
    if draft.status is not VersionStatus.DRAFT:
        raise VersionImmutable(f"{draft.flow_id} v{draft.version} is already published")
    load_flow(draft.document, refs)
    return replace(draft, status=VersionStatus.PUBLISHED, published_at=now_s)


def new_draft(versions: Iterable[FlowVersion], base: FlowVersion) -> FlowVersion:
    """Open the next draft as a copy of ``base``; refused while another draft is open."""
    existing = list(versions)
    if any(v.status is VersionStatus.DRAFT for v in existing):
        raise VersionImmutable(f"{base.flow_id} already has an open draft")
    number = max((v.version for v in existing), default=0) + 1
    document = {**base.document, "version": number}
    return FlowVersion(base.flow_id, number, VersionStatus.DRAFT, document)


def live_version(versions: Iterable[FlowVersion]) -> FlowVersion | None:
    """The version a new call runs: the highest published one."""
    published = [v for v in versions if v.status is VersionStatus.PUBLISHED]
    return max(published, key=lambda v: v.version, default=None)
