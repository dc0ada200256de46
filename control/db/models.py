"""Config tables (SQLAlchemy 2). The schema of record is the Alembic history in ``sql/``.

Conventions from the spec: booleans are 0/1 integers, config timestamps are epoch seconds,
every tenant-owned row carries an indexed ``account_id``, ids are prefixed ULIDs, secrets are
never stored (only ``*_secret_ref`` references), route targets are ``*_dest_kind`` /
``*_dest_id`` pairs (plus ``dest_xform`` JSON on DIDs and extensions).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column


def now_s() -> int:
    return int(time.time())


class Base(DeclarativeBase):
    pass


class ConfigMeta(Base):
    """Platform-wide key/value facts, e.g. ``config_version``: bumped on every provisioning
    change so that caches in Kamailio workers know when to reload."""

    __tablename__ = "config_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class Stamped:
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[int] = mapped_column(Integer, default=now_s, nullable=False)
    updated_at: Mapped[int] = mapped_column(Integer, default=now_s, onupdate=now_s, nullable=False)


class Owned(Stamped):
    """A tenant-owned row."""

    @declared_attr
    def account_id(cls) -> Mapped[str]:
        return mapped_column(
            String(40), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, nullable=False
        )


class Account(Stamped, Base):
    __tablename__ = "accounts"

    parent_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)
    is_reseller: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    is_platform: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # Inheritable: NULL means "as my parent" (root defaults: UTC, en-US, male).
    timezone: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16))
    voice_gender: Mapped[str | None] = mapped_column(String(8))
    brand_name: Mapped[str | None] = mapped_column(String(200))
    brand_domain: Mapped[str | None] = mapped_column(String(255), unique=True)
    max_in: Mapped[int | None] = mapped_column(Integer)
    max_out: Mapped[int | None] = mapped_column(Integer)
    max_dialer: Mapped[int | None] = mapped_column(Integer)
    default_cid_number: Mapped[str | None] = mapped_column(String(32))
    did_default_dest_kind: Mapped[str | None] = mapped_column(String(16))
    did_default_dest_id: Mapped[str | None] = mapped_column(String(40))
    # Admission when Redis is unreachable: "open" admits (and reconciles later), "closed" 503s.
    cac_redis_policy: Mapped[str] = mapped_column(
        String(8), default="open", server_default="open", nullable=False
    )


class SipDomain(Owned, Base):
    __tablename__ = "sip_domains"

    domain: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    is_primary: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


class VoicemailBox(Owned, Base):
    __tablename__ = "voicemail_boxes"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    greeting_media_id: Mapped[str | None] = mapped_column(String(40))
    skip_instructions: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    quota_mb: Mapped[int] = mapped_column(Integer, default=200, nullable=False)
    notify_email: Mapped[str | None] = mapped_column(String(320))
    pin_secret_ref: Mapped[str | None] = mapped_column(String(200))


class VoicemailMessage(Owned, Base):
    """A message left in a box (SPEC 10): the audio lives in the media store, never here."""

    __tablename__ = "voicemail_messages"

    box_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("voicemail_boxes.id", ondelete="CASCADE"), index=True,
        nullable=False,
    )  # fmt: skip
    call_id: Mapped[str] = mapped_column(String(255), nullable=False)
    caller_number: Mapped[str | None] = mapped_column(String(64))
    caller_name: Mapped[str | None] = mapped_column(String(128))
    duration_sec: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    media_key: Mapped[str] = mapped_column(String(500), nullable=False)  # <account>/vm/<file>
    size_bytes: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    folder: Mapped[str] = mapped_column(String(8), default="new", nullable=False)  # new|saved
    heard_at: Mapped[int | None] = mapped_column(Integer)


class SipUser(Owned, Base):
    __tablename__ = "sip_users"
    __table_args__ = (UniqueConstraint("account_id", "username"),)

    username: Mapped[str] = mapped_column(String(64), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(200))
    is_agent: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    out_cid_number: Mapped[str | None] = mapped_column(String(32))
    out_cid_name: Mapped[str | None] = mapped_column(String(100))
    max_simultaneous: Mapped[int | None] = mapped_column(Integer)
    ring_strategy: Mapped[str] = mapped_column(String(16), default="simultaneous", nullable=False)
    ring_timeout_sec: Mapped[int] = mapped_column(Integer, default=25, nullable=False)
    voicemail_id: Mapped[str | None] = mapped_column(String(40))
    dnd: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    fwd_always_kind: Mapped[str | None] = mapped_column(String(16))
    fwd_always_id: Mapped[str | None] = mapped_column(String(40))
    fwd_busy_kind: Mapped[str | None] = mapped_column(String(16))
    fwd_busy_id: Mapped[str | None] = mapped_column(String(40))
    fwd_noanswer_kind: Mapped[str | None] = mapped_column(String(16))
    fwd_noanswer_id: Mapped[str | None] = mapped_column(String(40))
    auto_ready_on_login: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    auto_queue_login: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    allow_pstn_blind_transfer: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)


class SipDevice(Owned, Base):
    __tablename__ = "sip_devices"
    __table_args__ = (UniqueConstraint("auth_username", "realm"),)

    user_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("sip_users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    auth_username: Mapped[str] = mapped_column(String(64), nullable=False)
    realm: Mapped[str] = mapped_column(String(255), nullable=False)
    # Digest hashes only: MD5(user:realm:pw), MD5(user@realm:realm:pw), SHA-256(user:realm:pw).
    ha1: Mapped[str] = mapped_column(String(32), nullable=False)
    ha1b: Mapped[str] = mapped_column(String(32), nullable=False)
    ha1_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    transport: Mapped[str] = mapped_column(String(8), default="udp", nullable=False)
    is_webrtc: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    ring_order: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    ring_on_fork: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    ring_specific: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)


class Did(Owned, Base):
    __tablename__ = "dids"

    e164: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    label: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)
    dest_kind: Mapped[str | None] = mapped_column(String(16))
    dest_id: Mapped[str | None] = mapped_column(String(40))
    dest_xform: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    max_channels: Mapped[int | None] = mapped_column(Integer)
    fax_mode: Mapped[str] = mapped_column(String(16), default="voice", nullable=False)
    allow_anonymous: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    schedule_id: Mapped[str | None] = mapped_column(String(40))
    closed_dest_kind: Mapped[str | None] = mapped_column(String(16))
    closed_dest_id: Mapped[str | None] = mapped_column(String(40))
    holiday_dest_kind: Mapped[str | None] = mapped_column(String(16))
    holiday_dest_id: Mapped[str | None] = mapped_column(String(40))


class Extension(Owned, Base):
    __tablename__ = "extensions"
    __table_args__ = (UniqueConstraint("account_id", "digits"),)

    digits: Mapped[str] = mapped_column(String(32), nullable=False)
    dest_kind: Mapped[str | None] = mapped_column(String(16))
    dest_id: Mapped[str | None] = mapped_column(String(40))
    dest_xform: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)
    schedule_id: Mapped[str | None] = mapped_column(String(40))
    closed_dest_kind: Mapped[str | None] = mapped_column(String(16))
    closed_dest_id: Mapped[str | None] = mapped_column(String(40))
    holiday_dest_kind: Mapped[str | None] = mapped_column(String(16))
    holiday_dest_id: Mapped[str | None] = mapped_column(String(40))


class CallFlow(Owned, Base):
    __tablename__ = "call_flows"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    published_version: Mapped[int | None] = mapped_column(Integer)


class CallFlowVersion(Owned, Base):
    """One row per version; a published row is never modified again."""

    __tablename__ = "call_flow_versions"
    __table_args__ = (UniqueConstraint("flow_id", "version"),)

    flow_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("call_flows.id", ondelete="CASCADE"), index=True, nullable=False
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="draft", nullable=False)
    document: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    published_at: Mapped[int | None] = mapped_column(Integer)


class FlowReference(Base):
    """Objects a flow version points at (media, queue, mailbox, schedule, user...), derived
    from its document so deleting a referenced object can name the flow."""

    __tablename__ = "flow_references"
    __table_args__ = (Index("ix_flow_references_target", "ref_table", "ref_id"),)

    version_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("call_flow_versions.id", ondelete="CASCADE"), primary_key=True
    )
    ref_table: Mapped[str] = mapped_column(String(32), primary_key=True)
    ref_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), index=True, nullable=False)


class Queue(Owned, Base):
    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    strategy: Mapped[str] = mapped_column(String(16), default="longest_idle", nullable=False)
    agent_ring_timeout_sec: Mapped[int] = mapped_column(Integer, default=20, nullable=False)
    max_wait_sec: Mapped[int] = mapped_column(Integer, default=600, nullable=False)
    wrap_up_sec: Mapped[int] = mapped_column(Integer, default=10, nullable=False)
    max_no_answer: Mapped[int] = mapped_column(Integer, default=3, nullable=False)
    announce_position: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    announce_first_sec: Mapped[int] = mapped_column(Integer, default=15, nullable=False)
    announce_interval_sec: Mapped[int] = mapped_column(Integer, default=30, nullable=False)
    moh_mode: Mapped[str] = mapped_column(String(8), default="stream", nullable=False)
    moh_media_id: Mapped[str | None] = mapped_column(String(40))
    language: Mapped[str | None] = mapped_column(String(16))
    timeout_dest_kind: Mapped[str | None] = mapped_column(String(16))
    timeout_dest_id: Mapped[str | None] = mapped_column(String(40))
    abandon_dest_kind: Mapped[str | None] = mapped_column(String(16))
    abandon_dest_id: Mapped[str | None] = mapped_column(String(40))
    no_agents_dest_kind: Mapped[str | None] = mapped_column(String(16))
    no_agents_dest_id: Mapped[str | None] = mapped_column(String(40))
    queue_full_dest_kind: Mapped[str | None] = mapped_column(String(16))
    queue_full_dest_id: Mapped[str | None] = mapped_column(String(40))
    ewt_dest_kind: Mapped[str | None] = mapped_column(String(16))
    ewt_dest_id: Mapped[str | None] = mapped_column(String(40))
    max_queued: Mapped[int | None] = mapped_column(Integer)
    ewt_threshold_sec: Mapped[int | None] = mapped_column(Integer)
    ewt_aht_sec: Mapped[int | None] = mapped_column(Integer)
    schedule_id: Mapped[str | None] = mapped_column(String(40))
    closed_dest_kind: Mapped[str | None] = mapped_column(String(16))
    closed_dest_id: Mapped[str | None] = mapped_column(String(40))
    holiday_dest_kind: Mapped[str | None] = mapped_column(String(16))
    holiday_dest_id: Mapped[str | None] = mapped_column(String(40))
    agent_whisper: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    agent_confirm: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


class AgentQueueAssignment(Owned, Base):
    __tablename__ = "agent_queue_assignments"
    __table_args__ = (UniqueConstraint("queue_id", "user_id"),)

    queue_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("queues.id", ondelete="CASCADE"), index=True, nullable=False
    )
    user_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("sip_users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    tier_level: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    position: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    mode: Mapped[str] = mapped_column(String(16), default="static", nullable=False)


class InQueueOption(Owned, Base):
    __tablename__ = "in_queue_options"
    __table_args__ = (UniqueConstraint("queue_id", "digit"),)

    queue_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("queues.id", ondelete="CASCADE"), index=True, nullable=False
    )
    digit: Mapped[str] = mapped_column(String(1), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    dest_kind: Mapped[str | None] = mapped_column(String(16))
    dest_id: Mapped[str | None] = mapped_column(String(40))
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_secret_ref: Mapped[str | None] = mapped_column(String(200))
    stay_in_queue: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    prompt_media_id: Mapped[str | None] = mapped_column(String(40))
    label: Mapped[str | None] = mapped_column(String(100))


class RingGroup(Owned, Base):
    __tablename__ = "ring_groups"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    strategy: Mapped[str] = mapped_column(String(16), default="ring_all", nullable=False)
    ring_timeout_sec: Mapped[int] = mapped_column(Integer, default=25, nullable=False)
    moh_media_id: Mapped[str | None] = mapped_column(String(40))
    exit_dest_kind: Mapped[str | None] = mapped_column(String(16))
    exit_dest_id: Mapped[str | None] = mapped_column(String(40))
    schedule_id: Mapped[str | None] = mapped_column(String(40))
    closed_dest_kind: Mapped[str | None] = mapped_column(String(16))
    closed_dest_id: Mapped[str | None] = mapped_column(String(40))
    holiday_dest_kind: Mapped[str | None] = mapped_column(String(16))
    holiday_dest_id: Mapped[str | None] = mapped_column(String(40))


class RingGroupMember(Owned, Base):
    __tablename__ = "ring_group_members"

    ring_group_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("ring_groups.id", ondelete="CASCADE"), index=True, nullable=False
    )
    user_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("sip_users.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("sip_devices.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    delay_sec: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    timeout_sec: Mapped[int | None] = mapped_column(Integer)


class TimeSchedule(Owned, Base):
    __tablename__ = "time_schedules"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Rules are owned by the schedule and always written as a whole set.
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, nullable=False)


class CallLimit(Owned, Base):
    __tablename__ = "call_limits"

    scope_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    scope_id: Mapped[str | None] = mapped_column(String(40))
    direction: Mapped[str] = mapped_column(String(8), nullable=False)
    period_sec: Mapped[int] = mapped_column(Integer, nullable=False)
    max_count: Mapped[int] = mapped_column(Integer, nullable=False)
    hard: Mapped[int] = mapped_column(Integer, default=1, nullable=False)


class SipTrunk(Owned, Base):
    __tablename__ = "sip_trunks"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(16), default="carrier", nullable=False)
    direction: Mapped[str] = mapped_column(String(16), default="both", nullable=False)
    provider: Mapped[str] = mapped_column(String(32), default="generic", nullable=False)
    proxy: Mapped[str | None] = mapped_column(String(255))
    transport: Mapped[str] = mapped_column(String(8), default="udp", nullable=False)
    do_register: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    auth_username: Mapped[str | None] = mapped_column(String(128))
    auth_secret_ref: Mapped[str | None] = mapped_column(String(200))
    realm: Mapped[str | None] = mapped_column(String(255))
    from_domain: Mapped[str | None] = mapped_column(String(255))
    from_user: Mapped[str | None] = mapped_column(String(128))
    expire_sec: Mapped[int] = mapped_column(Integer, default=3600, nullable=False)
    cid_number: Mapped[str | None] = mapped_column(String(32))
    max_channels: Mapped[int | None] = mapped_column(Integer)
    inbound_auth: Mapped[str] = mapped_column(String(16), default="ip", nullable=False)
    inbound_ips: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)


class MediaFile(Owned, Base):
    __tablename__ = "media_files"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    object_key: Mapped[str] = mapped_column(String(1024), nullable=False)
    format: Mapped[str | None] = mapped_column(String(16))
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class ForwardTarget(Owned, Base):
    """``dest_kind: forward``: an external number a call is sent to (through a trunk)."""

    __tablename__ = "forward_targets"

    name: Mapped[str | None] = mapped_column(String(200))
    number: Mapped[str] = mapped_column(String(32), nullable=False)
    trunk_id: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)


class Conference(Owned, Base):
    """``dest_kind: conference``: a room mixed by the media engine."""

    __tablename__ = "conferences"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    max_members: Mapped[int | None] = mapped_column(Integer)
    pin_secret_ref: Mapped[str | None] = mapped_column(String(200))
    record: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)


class Rate(Owned, Base):
    """One line of an account's rate table: the longest matching ``prefix`` of the dialled
    E.164 number (without ``+``; ``""`` matches everything) prices a call of ``direction``."""

    __tablename__ = "rates"
    __table_args__ = (UniqueConstraint("account_id", "direction", "prefix"),)

    name: Mapped[str | None] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(16), default="outbound", nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), default="", nullable=False)
    per_minute_micros: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    connect_micros: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    min_sec: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    increment_sec: Mapped[int] = mapped_column(Integer, default=1, nullable=False)


class ApiKey(Owned, Base):
    """Only a SHA-256 of the key is stored (keys are 256-bit random, so no slow hash is needed);
    ``prefix`` is the public part shown in listings and used for lookup."""

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(String(24), unique=True, nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    last_used_at: Mapped[int | None] = mapped_column(Integer)
    revoked_at: Mapped[int | None] = mapped_column(Integer)
