"""Route targets: the ``dest_kind`` / ``dest_id`` / ``dest_xform`` triple used wherever a call
can go next (DIDs, extensions, forwards, exits, schedule overrides, flow nodes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class DestKind(StrEnum):
    FLOW = "flow"
    USER = "user"
    EXTENSION = "extension"
    RING_GROUP = "ring_group"
    QUEUE = "queue"
    VOICEMAIL = "voicemail"
    CONFERENCE = "conference"
    FORWARD = "forward"
    HANGUP = "hangup"


# The table (and id prefix) each kind's dest_id points into. `hangup` points nowhere.
DEST_TABLE: dict[DestKind, str | None] = {
    DestKind.FLOW: "call_flows",
    DestKind.USER: "sip_users",
    DestKind.EXTENSION: "extensions",
    DestKind.RING_GROUP: "ring_groups",
    DestKind.QUEUE: "queues",
    DestKind.VOICEMAIL: "voicemail_boxes",
    DestKind.CONFERENCE: "conferences",
    DestKind.FORWARD: "forward_targets",
    DestKind.HANGUP: None,
}

# Kinds whose calls the media engine (FreeSWITCH) must answer; the rest are proxied.
MEDIA_KINDS = frozenset({DestKind.FLOW, DestKind.QUEUE, DestKind.VOICEMAIL, DestKind.CONFERENCE})


@dataclass(frozen=True)
class RouteTarget:
    kind: DestKind
    id: str | None = None
    xform: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        needs_id = DEST_TABLE[self.kind] is not None
        if needs_id and not self.id:
            raise ValueError(f"dest_kind {self.kind.value!r} needs a dest_id")
        if not needs_id and self.id:
            raise ValueError(f"dest_kind {self.kind.value!r} takes no dest_id")

    @property
    def needs_media(self) -> bool:
        return self.kind in MEDIA_KINDS

    @classmethod
    def of(
        cls, kind: str | None, dest_id: str | None, xform: Mapping[str, Any] | None = None
    ) -> RouteTarget | None:
        """Build from a row's ``*_dest_kind`` / ``*_dest_id`` pair; None when the pair is unset."""
        if not kind:
            return None
        return cls(DestKind(kind), dest_id or None, dict(xform or {}))
