"""Every provisioned object declared once: table, id prefix, scope, body model, references.

The generic CRUD views (``control.api.crud``) and the OpenAPI document
(``control.api.openapi``) are both driven by this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from control.api import schemas as s
from control.core.targets import DEST_TABLE, DestKind
from control.db import models as m

Hook = Callable[..., dict[str, Any] | None]


@dataclass
class Resource:
    name: str  # URL segment and table name
    model: type[Any]  # an m.Owned table
    prefix: str
    scope: str
    body: type[BaseModel]
    # (kind column, id column) pairs that hold a route target
    dests: tuple[tuple[str, str], ...] = ()
    # column -> resource that column must point to, in the same account
    refs: dict[str, str] = field(default_factory=dict)
    # columns unique within an account / across the platform
    unique_in_account: tuple[str, ...] = ()
    unique_global: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    write_only: tuple[str, ...] = ()
    read_only: dict[str, Any] = field(default_factory=dict)  # extra response fields + types
    hidden: tuple[str, ...] = ()  # columns never returned
    # before_write(session, resource, values, row_or_None) -> extra response fields or None
    before_write: Hook | None = None
    patch_model: type[BaseModel] = field(init=False)
    read_model: type[BaseModel] = field(init=False)

    def __post_init__(self) -> None:
        self.patch_model = patch_model_of(self.body)
        self.read_model = _read_model(self)


def patch_model_of(body: type[BaseModel]) -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (info.annotation | None, None)  # type: ignore[operator]
        for name, info in body.model_fields.items()
        if name != "account_id"
    }
    return create_model(
        body.__name__.removesuffix("In") + "Patch",
        __config__=ConfigDict(extra="forbid", str_strip_whitespace=True),
        **fields,
    )


def _read_model(resource: Resource) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "id": (str, ...),
        "account_id": (str, ...),
        "created_at": (int, ...),
        "updated_at": (int, ...),
    }
    for name, info in resource.body.model_fields.items():
        if name in resource.write_only or name == "account_id":
            continue
        fields[name] = (info.annotation | None, None)  # type: ignore[operator]
    for name, annotation in resource.read_only.items():
        fields[name] = (annotation, None)
    return create_model(resource.body.__name__.removesuffix("In"), **fields)


SCHEDULED = (("closed_dest_kind", "closed_dest_id"), ("holiday_dest_kind", "holiday_dest_id"))

RESOURCES: list[Resource] = [
    Resource(
        "sip_domains", m.SipDomain, "dom", "users", s.SipDomainIn,
        unique_global=("domain",), filters=("domain", "is_primary"),
    ),
    Resource(
        "sip_users", m.SipUser, "us", "users", s.SipUserIn,
        dests=(
            ("fwd_always_kind", "fwd_always_id"),
            ("fwd_busy_kind", "fwd_busy_id"),
            ("fwd_noanswer_kind", "fwd_noanswer_id"),
        ),
        refs={"voicemail_id": "voicemail_boxes"},
        unique_in_account=("username",), filters=("username", "is_agent", "status"),
    ),
    Resource(
        "sip_devices", m.SipDevice, "dev", "users", s.SipDeviceIn,
        refs={"user_id": "sip_users"},
        filters=("user_id", "auth_username", "realm", "status"),
        write_only=("password",),
        read_only={"password": str | None},
        hidden=("ha1", "ha1b", "ha1_sha256"),
    ),
    Resource(
        "dids", m.Did, "did", "numbers", s.DidIn,
        dests=(("dest_kind", "dest_id"), *SCHEDULED),
        refs={"schedule_id": "time_schedules"},
        unique_global=("e164",), filters=("e164", "status"),
    ),
    Resource(
        "extensions", m.Extension, "ext", "numbers", s.ExtensionIn,
        dests=(("dest_kind", "dest_id"), *SCHEDULED),
        refs={"schedule_id": "time_schedules"},
        unique_in_account=("digits",), filters=("digits", "status"),
    ),
    Resource(
        "forward_targets", m.ForwardTarget, "fwd", "numbers", s.ForwardTargetIn,
        refs={"trunk_id": "sip_trunks"}, filters=("number", "status"),
    ),
    Resource(
        "queues", m.Queue, "q", "queues", s.QueueIn,
        dests=(
            ("timeout_dest_kind", "timeout_dest_id"),
            ("abandon_dest_kind", "abandon_dest_id"),
            ("no_agents_dest_kind", "no_agents_dest_id"),
            ("queue_full_dest_kind", "queue_full_dest_id"),
            ("ewt_dest_kind", "ewt_dest_id"),
            *SCHEDULED,
        ),
        refs={"moh_media_id": "media_files", "schedule_id": "time_schedules"},
        filters=("name",),
    ),
    Resource(
        "agent_queue_assignments", m.AgentQueueAssignment, "qa", "queues",
        s.AgentQueueAssignmentIn,
        refs={"queue_id": "queues", "user_id": "sip_users"},
        filters=("queue_id", "user_id", "mode"),
    ),
    Resource(
        "in_queue_options", m.InQueueOption, "qopt", "queues", s.InQueueOptionIn,
        dests=(("dest_kind", "dest_id"),),
        refs={"queue_id": "queues", "prompt_media_id": "media_files"},
        filters=("queue_id", "digit", "action"),
        write_only=("webhook_token",),
        read_only={"webhook_secret_ref": str | None},
    ),
    Resource(
        "ring_groups", m.RingGroup, "rg", "ring_groups", s.RingGroupIn,
        dests=(("exit_dest_kind", "exit_dest_id"), *SCHEDULED),
        refs={"moh_media_id": "media_files", "schedule_id": "time_schedules"},
        filters=("name", "strategy"),
    ),
    Resource(
        "ring_group_members", m.RingGroupMember, "rgm", "ring_groups", s.RingGroupMemberIn,
        refs={"ring_group_id": "ring_groups", "user_id": "sip_users", "device_id": "sip_devices"},
        filters=("ring_group_id", "user_id", "device_id"),
    ),
    Resource(
        "voicemail_boxes", m.VoicemailBox, "vm", "voicemail", s.VoicemailBoxIn,
        refs={"greeting_media_id": "media_files"}, filters=("name",),
        write_only=("pin",), read_only={"pin_secret_ref": str | None},
    ),
    Resource(
        "conferences", m.Conference, "conf", "conferences", s.ConferenceIn,
        filters=("name", "status"),
        write_only=("pin",), read_only={"pin_secret_ref": str | None},
    ),
    Resource(
        "time_schedules", m.TimeSchedule, "sch", "schedules", s.TimeScheduleIn,
        filters=("name",),
    ),
    Resource(
        "call_limits", m.CallLimit, "lim", "limits", s.CallLimitIn,
        filters=("scope_kind", "scope_id", "direction"),
    ),
    Resource(
        "sip_trunks", m.SipTrunk, "tr", "trunks", s.SipTrunkIn,
        filters=("name", "role", "direction", "status"),
        write_only=("auth_password",), read_only={"auth_secret_ref": str | None},
    ),
    Resource(
        "media_files", m.MediaFile, "media", "media", s.MediaFileIn, filters=("kind", "name"),
    ),
    Resource(
        "rates", m.Rate, "rate", "cdr", s.RateIn, filters=("direction", "prefix", "name"),
    ),
]  # fmt: skip

BY_NAME: dict[str, Resource] = {r.name: r for r in RESOURCES}

# dest_kind -> resource its dest_id points into (None for hangup)
DEST_RESOURCE: dict[DestKind, str | None] = dict(DEST_TABLE)
# resource name -> the dest_kind that names it in a route target
KIND_OF: dict[str, DestKind] = {
    table: kind for kind, table in DEST_TABLE.items() if table is not None
}
# call_limit.scope_kind -> resource its scope_id points into
LIMIT_SCOPE: dict[str, str | None] = {
    "account": None,
    "user": "sip_users",
    "number": "dids",
    "trunk": "sip_trunks",
}
