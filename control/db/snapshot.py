"""Read the whole routing config in one pass into an immutable ``Snapshot``.

A Kamailio worker builds one per config version and answers every request from memory: no
SQL on the call path. A few dozen queries per reload, whatever the traffic.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Engine, select

from control.core.admission import LimitBook
from control.core.routing import model as mdl
from control.core.schedule import Schedule, ScheduleRule
from control.core.targets import RouteTarget
from control.core.tenancy import ancestors, effective_settings
from control.db import models as m


def _pair(kind: str | None, dest_id: str | None) -> RouteTarget | None:
    return RouteTarget.of(kind, dest_id)


def _hours(row: Any) -> mdl.Hours:
    return mdl.Hours(
        schedule_id=row.schedule_id,
        closed=_pair(row.closed_dest_kind, row.closed_dest_id),
        holiday=_pair(row.holiday_dest_kind, row.holiday_dest_id),
    )


def schedule_of(row: Any) -> Schedule:
    """A ``time_schedules`` row as the core's Schedule (routing snapshot and flow profiles)."""
    return Schedule(
        id=row.id,
        timezone=row.timezone,
        rules=tuple(ScheduleRule.from_mapping(rule) for rule in row.rules or ()),
        name=row.name,
        account_id=row.account_id,
    )


def config_version(connection: Connection) -> int:
    value = connection.scalar(
        select(m.ConfigMeta.value).where(m.ConfigMeta.key == "config_version")
    )
    return int(value or 0)


def load(engine: Engine) -> mdl.Snapshot:
    with engine.connect() as c:
        version = config_version(c)
        rows = {model: list(c.execute(select(model))) for model in _MODELS}
    return build(version, rows)


_MODELS: tuple[type[Any], ...] = (
    m.Account,
    m.SipDomain,
    m.SipDevice,
    m.SipUser,
    m.Extension,
    m.Did,
    m.SipTrunk,
    m.RingGroup,
    m.RingGroupMember,
    m.ForwardTarget,
    m.TimeSchedule,
    m.Queue,
    m.CallFlow,
    m.VoicemailBox,
    m.Conference,
    m.CallLimit,
)


def build(version: int, rows: dict[type[Any], list[Any]]) -> mdl.Snapshot:
    accounts_raw = rows[m.Account]
    parents = {a.id: a.parent_id for a in accounts_raw}
    by_id = {a.id: a for a in accounts_raw}
    accounts = {}
    for a in accounts_raw:
        chain = [by_id[i]._mapping for i in ancestors(a.id, parents) if i in by_id]
        accounts[a.id] = mdl.Account(
            id=a.id,
            status=a.status,
            timezone=effective_settings(chain)["timezone"],
            default_cid_number=a.default_cid_number,
            did_default=_pair(a.did_default_dest_kind, a.did_default_dest_id),
        )
    devices = [
        mdl.Device(
            d.id,
            d.account_id,
            d.user_id,
            d.auth_username,
            d.realm,
            d.ha1,
            d.ha1b,
            d.ha1_sha256,
            d.status,
            d.ring_order,
            d.ring_on_fork,
            d.ring_specific,
            d.is_webrtc,
            d.transport,
        )
        for d in rows[m.SipDevice]
    ]
    by_user: dict[str, list[mdl.Device]] = defaultdict(list)
    for device in devices:
        by_user[device.user_id].append(device)
    users = [
        mdl.User(
            u.id,
            u.account_id,
            u.username,
            u.display_name,
            u.status,
            u.dnd,
            _pair(u.fwd_always_kind, u.fwd_always_id),
            _pair(u.fwd_busy_kind, u.fwd_busy_id),
            _pair(u.fwd_noanswer_kind, u.fwd_noanswer_id),
            u.ring_strategy,
            u.ring_timeout_sec,
            u.voicemail_id,
            u.out_cid_number,
            u.out_cid_name,
        )
        for u in rows[m.SipUser]
    ]
    extensions = [
        mdl.Extension(
            e.id,
            e.account_id,
            e.digits,
            RouteTarget.of(e.dest_kind, e.dest_id, e.dest_xform),
            e.status,
            _hours(e),
        )
        for e in rows[m.Extension]
    ]
    members: dict[str, list[mdl.RingMember]] = defaultdict(list)
    for r in rows[m.RingGroupMember]:
        members[r.ring_group_id].append(
            mdl.RingMember(r.user_id, r.device_id, r.position, r.delay_sec, r.timeout_sec)
        )
    schedules = {s.id: schedule_of(s) for s in rows[m.TimeSchedule]}
    media: set[tuple[str, str]] = set()
    for model, kind in (
        (m.CallFlow, "flow"),
        (m.Queue, "queue"),
        (m.VoicemailBox, "voicemail"),
        (m.Conference, "conference"),
    ):
        media.update((kind, r.id) for r in rows[model])
    return mdl.Snapshot(
        version=version,
        accounts=accounts,
        domains={d.domain: d.account_id for d in rows[m.SipDomain]},
        devices={(d.auth_username, d.realm): d for d in devices},
        devices_by_id={d.id: d for d in devices},
        devices_by_user={k: tuple(v) for k, v in by_user.items()},
        users={u.id: u for u in users},
        users_by_name={(u.account_id, u.username): u for u in users},
        extensions={(e.account_id, e.digits): e for e in extensions},
        extensions_by_id={e.id: e for e in extensions},
        dids={
            d.e164: mdl.Did(
                d.id,
                d.account_id,
                d.e164,
                RouteTarget.of(d.dest_kind, d.dest_id, d.dest_xform),
                d.status,
                d.allow_anonymous,
                _hours(d),
            )
            for d in rows[m.Did]
        },
        trunks={
            t.id: mdl.Trunk(
                t.id,
                t.account_id,
                t.name,
                t.proxy,
                t.transport,
                t.direction,
                t.status,
                t.cid_number,
                tuple(t.inbound_ips or ()),
                t.auth_username,
                t.auth_secret_ref,
                bool(t.do_register),
                t.realm,
                t.from_domain,
                t.from_user,
                t.expire_sec,
            )
            for t in rows[m.SipTrunk]
        },
        ring_groups={
            g.id: mdl.RingGroup(
                g.id,
                g.account_id,
                g.strategy,
                g.ring_timeout_sec,
                tuple(members[g.id]),
                _pair(g.exit_dest_kind, g.exit_dest_id),
                _hours(g),
            )
            for g in rows[m.RingGroup]
        },
        forwards={
            f.id: mdl.Forward(f.id, f.account_id, f.number, f.trunk_id)
            for f in rows[m.ForwardTarget]
            if f.status == "active"
        },
        schedules=schedules,
        queue_hours={q.id: _hours(q) for q in rows[m.Queue]},
        media_targets=frozenset(media),
        limits=LimitBook.from_rows(
            accounts_raw, rows[m.SipUser], rows[m.Did], rows[m.SipTrunk], rows[m.CallLimit]
        ),
    )
