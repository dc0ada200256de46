"""The routing layer's view of the config: immutable, indexed, built once per config version
(by ``control.db.snapshot``) and shared by every request a Kamailio worker handles."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from control.core.admission import LimitBook
from control.core.schedule import Schedule
from control.core.targets import RouteTarget


@dataclass(frozen=True)
class Hours:
    """A schedule attached to an object, with the targets that replace its normal route."""

    schedule_id: str | None = None
    closed: RouteTarget | None = None
    holiday: RouteTarget | None = None


@dataclass(frozen=True)
class Account:
    id: str
    status: str
    timezone: str
    default_cid_number: str | None = None
    did_default: RouteTarget | None = None


@dataclass(frozen=True)
class Device:
    id: str
    account_id: str
    user_id: str
    auth_username: str
    realm: str
    ha1: str
    ha1b: str
    ha1_sha256: str
    status: str = "active"
    ring_order: int = 0
    ring_on_fork: int = 1
    ring_specific: int = 1
    is_webrtc: int = 0
    transport: str = "udp"

    @property
    def aor(self) -> str:
        return f"sip:{self.auth_username}@{self.realm}"


@dataclass(frozen=True)
class User:
    id: str
    account_id: str
    username: str
    display_name: str | None = None
    status: str = "active"
    dnd: int = 0
    fwd_always: RouteTarget | None = None
    fwd_busy: RouteTarget | None = None
    fwd_noanswer: RouteTarget | None = None
    ring_strategy: str = "simultaneous"
    ring_timeout_sec: int = 25
    voicemail_id: str | None = None
    out_cid_number: str | None = None
    out_cid_name: str | None = None


@dataclass(frozen=True)
class Extension:
    id: str
    account_id: str
    digits: str
    target: RouteTarget | None
    status: str = "active"
    hours: Hours = Hours()


@dataclass(frozen=True)
class Did:
    id: str
    account_id: str
    e164: str
    target: RouteTarget | None
    status: str = "active"
    allow_anonymous: int = 1
    hours: Hours = Hours()


@dataclass(frozen=True)
class Trunk:
    id: str
    account_id: str
    name: str
    proxy: str | None
    transport: str = "udp"
    direction: str = "both"
    status: str = "active"
    cid_number: str | None = None
    inbound_ips: tuple[str, ...] = ()
    # Digest credentials towards the carrier: the password stays in the secret store.
    auth_username: str | None = None
    auth_secret_ref: str | None = None
    # Registration with the carrier (kemi/trunk_registration.py).
    do_register: bool = False
    realm: str | None = None
    from_domain: str | None = None
    from_user: str | None = None
    expire_sec: int = 3600

    @cached_property
    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in self.inbound_ips)


@dataclass(frozen=True)
class RingMember:
    user_id: str | None
    device_id: str | None
    position: int = 0
    delay_sec: int = 0
    timeout_sec: int | None = None


@dataclass(frozen=True)
class RingGroup:
    id: str
    account_id: str
    strategy: str
    ring_timeout_sec: int
    members: tuple[RingMember, ...]
    exit: RouteTarget | None = None
    hours: Hours = Hours()


@dataclass(frozen=True)
class Forward:
    id: str
    account_id: str
    number: str
    trunk_id: str | None = None


@dataclass(frozen=True)
class Snapshot:
    version: int
    accounts: Mapping[str, Account] = field(default_factory=dict)
    domains: Mapping[str, str] = field(default_factory=dict)  # domain -> account id
    devices: Mapping[tuple[str, str], Device] = field(default_factory=dict)  # (user, realm)
    devices_by_id: Mapping[str, Device] = field(default_factory=dict)
    devices_by_user: Mapping[str, tuple[Device, ...]] = field(default_factory=dict)
    users: Mapping[str, User] = field(default_factory=dict)
    users_by_name: Mapping[tuple[str, str], User] = field(default_factory=dict)
    extensions: Mapping[tuple[str, str], Extension] = field(default_factory=dict)
    extensions_by_id: Mapping[str, Extension] = field(default_factory=dict)
    dids: Mapping[str, Did] = field(default_factory=dict)
    trunks: Mapping[str, Trunk] = field(default_factory=dict)
    ring_groups: Mapping[str, RingGroup] = field(default_factory=dict)
    forwards: Mapping[str, Forward] = field(default_factory=dict)
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    queue_hours: Mapping[str, Hours] = field(default_factory=dict)
    # (kind, id) of media-engine targets that exist: flows, queues, voicemail, conferences
    media_targets: frozenset[tuple[str, str]] = frozenset()
    # Admission limits of every account (control.core.admission.LimitBook)
    limits: LimitBook = field(default_factory=LimitBook)

    def trunk_for_source(self, address: str) -> Trunk | None:
        """The active trunk whose inbound_ips contain ``address`` (IP-authenticated peers)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for trunk in self.trunks.values():
            if trunk.status == "active" and any(ip in net for net in trunk.networks):
                return trunk
        return None

    def outbound_trunk(self, account_id: str) -> Trunk | None:
        """The account's trunk for outbound calls: the first active one that can send."""
        for trunk in sorted(self.trunks.values(), key=lambda t: t.id):
            if (
                trunk.account_id == account_id
                and trunk.status == "active"
                and trunk.direction in ("outbound", "both")
                and trunk.proxy
            ):
                return trunk
        return None
