"""Request bodies of the provisioning API, one model per object (SPEC sections 2-16).

Defaults are the spec's. Update (PATCH) and response models are derived from these in
``control.api.registry`` so that a field is declared exactly once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from control.api.fields import (
    E164,
    Cidr,
    Count,
    Date,
    DestKindName,
    DestXform,
    Digit,
    Digits,
    Domain,
    Email,
    Flag,
    HostPort,
    HttpsUrl,
    Id,
    Language,
    Name,
    Number,
    ObjectKey,
    Password,
    Period,
    RingSeconds,
    Scope,
    Seconds,
    SipUsername,
    Text16,
    Text100,
    Text128,
    Text200,
    Text255,
    Tier,
    TimeOfDay,
    TimeZone,
    VoiceGender,
)

Status = Literal["active", "disabled"]

# Write-only secrets: stored in the secret store, the row keeps a ``*_secret_ref`` (SPEC 22).
TrunkPassword = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]
Pin = Annotated[str, StringConstraints(pattern=r"^[0-9]{4,12}$")]
BearerToken = Annotated[
    str, StringConstraints(min_length=8, max_length=512, pattern=r"^[A-Za-z0-9._~+/-]+=*$")
]
RatePrefix = Annotated[str, StringConstraints(max_length=32, pattern=r"^[0-9]*$")]
RatePeriod = Annotated[int, Field(ge=1, le=3600)]
WRITE_ONLY: dict[str, Any] = {"writeOnly": True}


def write_only(description: str) -> Any:
    return Field(None, description=f"Write-only. {description}", json_schema_extra=WRITE_ONLY)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    # A reseller or platform credential may create rows in an account of its subtree.
    account_id: Id | None = Field(None, description="Defaults to the credential's account.")


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: Name
    parent_id: Id | None = Field(None, description="Defaults to the credential's account.")
    status: Literal["active", "suspended", "closed"] = "active"
    is_reseller: Flag = 0
    timezone: TimeZone | None = None
    language: Language | None = None
    voice_gender: VoiceGender | None = None
    brand_name: Text200 | None = None
    brand_domain: Domain | None = None
    max_in: Count | None = None
    max_out: Count | None = None
    max_dialer: Count | None = None
    default_cid_number: Number | None = None
    did_default_dest_kind: DestKindName | None = None
    did_default_dest_id: Id | None = None
    cac_redis_policy: Literal["open", "closed"] = Field(
        "open", description="While Redis is unreachable: admit (open) or refuse with 503."
    )


class SipDomainIn(Body):
    domain: Domain
    is_primary: Flag = 0


class SipUserIn(Body):
    username: SipUsername
    display_name: Text200 | None = None
    is_agent: Flag = 0
    out_cid_number: Number | None = None
    out_cid_name: Text100 | None = None
    max_simultaneous: Count | None = None
    ring_strategy: Literal["simultaneous", "sequential", "specific"] = "simultaneous"
    ring_timeout_sec: RingSeconds = 25
    voicemail_id: Id | None = None
    dnd: Flag = 0
    fwd_always_kind: DestKindName | None = None
    fwd_always_id: Id | None = None
    fwd_busy_kind: DestKindName | None = None
    fwd_busy_id: Id | None = None
    fwd_noanswer_kind: DestKindName | None = None
    fwd_noanswer_id: Id | None = None
    auto_ready_on_login: Flag = 0
    auto_queue_login: Flag = 0
    allow_pstn_blind_transfer: Flag = 0
    status: Status = "active"


class SipDeviceIn(Body):
    user_id: Id
    auth_username: SipUsername
    realm: Domain = Field(description="One of the account's SIP domains (the digest realm).")
    password: Password | None = Field(
        None, description="Write-only. Generated when omitted; returned once on create."
    )
    transport: Literal["udp", "tcp", "tls", "wss"] = "udp"
    is_webrtc: Flag = 0
    ring_order: Count = 0
    ring_on_fork: Flag = 1
    ring_specific: Flag = Field(1, description="Rings under ring_strategy 'specific'.")
    status: Status = "active"


class DidIn(Body):
    e164: E164
    label: Text200 | None = None
    status: Literal["active", "disabled", "virtual"] = "active"
    dest_kind: DestKindName | None = None
    dest_id: Id | None = None
    dest_xform: DestXform | None = None
    max_channels: Count | None = None
    fax_mode: Literal["voice", "t38", "passthrough"] = "voice"
    allow_anonymous: Flag = 1
    schedule_id: Id | None = None
    closed_dest_kind: DestKindName | None = None
    closed_dest_id: Id | None = None
    holiday_dest_kind: DestKindName | None = None
    holiday_dest_id: Id | None = None


class ExtensionIn(Body):
    digits: Digits
    dest_kind: DestKindName | None = None
    dest_id: Id | None = None
    dest_xform: DestXform | None = None
    status: Status = "active"
    schedule_id: Id | None = None
    closed_dest_kind: DestKindName | None = None
    closed_dest_id: Id | None = None
    holiday_dest_kind: DestKindName | None = None
    holiday_dest_id: Id | None = None


class QueueIn(Body):
    name: Name
    strategy: Literal[
        "longest_idle", "ring_all", "round_robin", "fewest_calls", "random", "sequential"
    ] = "longest_idle"
    agent_ring_timeout_sec: RingSeconds = 20
    max_wait_sec: Seconds = 600
    wrap_up_sec: Seconds = 10
    max_no_answer: Count = 3
    announce_position: Flag = 1
    announce_first_sec: Seconds = 15
    announce_interval_sec: Seconds = 30
    moh_mode: Literal["stream", "file"] = "stream"
    moh_media_id: Id | None = None
    language: Language | None = None
    timeout_dest_kind: DestKindName | None = None
    timeout_dest_id: Id | None = None
    abandon_dest_kind: DestKindName | None = None
    abandon_dest_id: Id | None = None
    no_agents_dest_kind: DestKindName | None = None
    no_agents_dest_id: Id | None = None
    queue_full_dest_kind: DestKindName | None = None
    queue_full_dest_id: Id | None = None
    ewt_dest_kind: DestKindName | None = None
    ewt_dest_id: Id | None = None
    max_queued: Count | None = None
    ewt_threshold_sec: Seconds | None = None
    ewt_aht_sec: Seconds | None = None
    schedule_id: Id | None = None
    closed_dest_kind: DestKindName | None = None
    closed_dest_id: Id | None = None
    holiday_dest_kind: DestKindName | None = None
    holiday_dest_id: Id | None = None
    agent_whisper: Flag = 0
    agent_confirm: Flag = 0


class AgentQueueAssignmentIn(Body):
    queue_id: Id
    user_id: Id
    tier_level: Tier = 1
    position: Count = 0
    mode: Literal["static", "mandatory", "optional"] = "static"


class InQueueOptionIn(Body):
    queue_id: Id
    digit: Digit
    action: Literal["route", "webhook", "deflect", "callback", "hangup"]
    dest_kind: DestKindName | None = None
    dest_id: Id | None = None
    webhook_url: HttpsUrl | None = None
    webhook_token: BearerToken | None = write_only(
        "Bearer token sent with the webhook; kept in the secret store (webhook_secret_ref)."
    )
    stay_in_queue: Flag = 0
    prompt_media_id: Id | None = None
    label: Text100 | None = None


class RingGroupIn(Body):
    name: Name
    strategy: Literal["ring_all", "sequential", "round_robin"] = "ring_all"
    ring_timeout_sec: RingSeconds = 25
    moh_media_id: Id | None = None
    exit_dest_kind: DestKindName | None = None
    exit_dest_id: Id | None = None
    schedule_id: Id | None = None
    closed_dest_kind: DestKindName | None = None
    closed_dest_id: Id | None = None
    holiday_dest_kind: DestKindName | None = None
    holiday_dest_id: Id | None = None


class RingGroupMemberIn(Body):
    ring_group_id: Id
    user_id: Id | None = Field(None, description="Exactly one of user_id and device_id.")
    device_id: Id | None = None
    position: Count = 0
    delay_sec: Seconds = 0
    timeout_sec: RingSeconds | None = None


class VoicemailBoxIn(Body):
    name: Name
    greeting_media_id: Id | None = None
    skip_instructions: Flag = 0
    quota_mb: Count = 200
    notify_email: Email | None = None
    pin: Pin | None = write_only("Mailbox PIN (4-12 digits); kept in the secret store.")


class ScheduleRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["weekly", "date", "date_range"]
    dow: int | None = Field(None, ge=0, le=6, description="0 = Sunday ... 6 = Saturday")
    start_time: TimeOfDay | None = None
    end_time: TimeOfDay | None = None
    start_date: Date | None = None
    end_date: Date | None = None
    is_closed: Flag = 0


class TimeScheduleIn(Body):
    name: Name
    timezone: TimeZone | None = Field(None, description="null: the account's time zone.")
    rules: list[ScheduleRuleIn] = Field(default_factory=list, max_length=500)


class CallLimitIn(Body):
    scope_kind: Literal["account", "user", "number", "trunk"]
    scope_id: Id | None = Field(None, description="null for scope_kind account.")
    direction: Literal["in", "out", "dialer"]
    period_sec: Period
    max_count: Count
    hard: Flag = 1


class SipTrunkIn(Body):
    name: Name
    role: Literal["carrier", "pbx"] = "carrier"
    direction: Literal["inbound", "outbound", "both"] = "both"
    provider: Literal["generic", "carrier"] = "generic"
    proxy: HostPort | None = None
    transport: Literal["udp", "tcp", "tls"] = "udp"
    do_register: Flag = 0
    auth_username: Text128 | None = None
    auth_password: TrunkPassword | None = write_only(
        "Digest password for the carrier; kept in the secret store (auth_secret_ref)."
    )
    realm: Text255 | None = None
    from_domain: Text255 | None = None
    from_user: Text128 | None = None
    expire_sec: Seconds = 3600
    cid_number: Number | None = None
    max_channels: Count | None = None
    inbound_auth: Literal["ip", "digest"] = "ip"
    inbound_ips: list[Cidr] = Field(
        default_factory=list, max_length=64, description="Source addresses or CIDRs (ip auth)."
    )
    status: Status = "active"


class MediaFileIn(Body):
    name: Name
    kind: Literal["prompt", "moh", "greeting", "announcement"]
    object_key: ObjectKey
    format: Text16 | None = None
    duration_ms: Count | None = None


class ForwardTargetIn(Body):
    name: Text200 | None = None
    number: Number
    trunk_id: Id | None = None
    status: Status = "active"


class RateIn(Body):
    """One line of a rate table (``control.core.rating``): the longest prefix of the dialled
    number among the lines of the call's direction prices an answered call."""

    name: Text200 | None = None
    direction: Literal["inbound", "outbound", "internal"] = "outbound"
    prefix: RatePrefix = Field("", description="Digits without '+'; '' matches every number.")
    per_minute_micros: Count
    connect_micros: Count = 0
    min_sec: Seconds = Field(0, description="Answered seconds are raised to this first ...")
    increment_sec: RatePeriod = Field(1, description="... then rounded up to a multiple of it.")


class ConferenceIn(Body):
    name: Name
    max_members: Count | None = None
    pin: Pin | None = write_only("Entry PIN (4-12 digits); kept in the secret store.")
    record: Flag = 0
    status: Status = "active"


class CallFlowIn(Body):
    name: Name
    document: dict[str, object] = Field(description="React-Flow-compatible flow document.")


class CallFlowRename(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: Name


class ApiKeyIn(Body):
    name: Name
    scopes: list[Scope] = Field(min_length=1, max_length=32)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scopes: list[Scope] | None = Field(None, description="Subset of the key's scopes.")
    ttl_sec: int = Field(3600, ge=60, le=43200)


class Rotation(BaseModel):
    """``POST /v1/{resource}/{id}/rotate_secret``: a new version of the row's secret."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    expected_version: int | None = Field(
        None, ge=0, le=2**31 - 1,
        description="Check-and-set: the version you believe is current (0: none yet).",
    )  # fmt: skip


class TrunkPasswordRotation(Rotation):
    auth_password: TrunkPassword = Field(json_schema_extra=WRITE_ONLY)


class PinRotation(Rotation):
    pin: Pin | None = write_only("Omitted: a random 6-digit PIN, returned once.")


class WebhookTokenRotation(Rotation):
    webhook_token: BearerToken | None = write_only("Omitted: a random token, returned once.")
