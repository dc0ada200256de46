"""Routing decisions (SPEC 3, 4, 9, 12, 17): who is calling, what was dialled, and where the
call goes. Pure: the snapshot, the request's facts and ``now`` in; a directive out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from control.core.numbers import to_e164
from control.core.routing import model as mdl
from control.core.routing.directives import (
    CallerId,
    Directive,
    Leg,
    Media,
    Outbound,
    Reject,
    Ring,
    Step,
)
from control.core.schedule import evaluate, override_target
from control.core.targets import DestKind, RouteTarget

MAX_DEPTH = 8  # route targets chaining into each other (extension -> extension -> ...)
ANONYMOUS = ("anonymous", "restricted", "unknown", "")


@dataclass(frozen=True)
class Call:
    call_id: str
    dialled: str  # R-URI user part
    caller: str  # From user part
    caller_name: str | None
    now: datetime
    # Round-robin counter per key, shared by every worker (Kamailio's htable in production).
    rotate: Callable[[str], int] | None = None


@dataclass(frozen=True)
class Context:
    snap: mdl.Snapshot
    account: mdl.Account
    call: Call
    caller_id: CallerId | None


def from_device(snap: mdl.Snapshot, device: mdl.Device, call: Call) -> Directive:
    """An authenticated device dialled something: extension, own user, else the PSTN."""
    account = snap.accounts.get(device.account_id)
    user = snap.users.get(device.user_id)
    if account is None or user is None or account.status != "active":
        return Reject(403, "Forbidden", "account not active")
    if device.status != "active" or user.status != "active":
        return Reject(403, "Forbidden", "device or user disabled")
    internal = CallerId(user.username, user.display_name)
    ctx = Context(snap, account, call, internal)
    extension = snap.extensions.get((account.id, call.dialled))
    if extension is not None and extension.status == "active":
        return _extension(ctx, extension, 0)
    callee = snap.users_by_name.get((account.id, call.dialled))
    if callee is not None:
        return _user(ctx, callee, 0)
    number = to_e164(call.dialled)
    if number is None:
        return Reject(404, "Not Found", f"{call.dialled!r} is no extension or user here")
    trunk = snap.outbound_trunk(account.id)
    if trunk is None:
        return Reject(503, "Service Unavailable", "no outbound trunk for this account")
    presented = user.out_cid_number or trunk.cid_number or account.default_cid_number
    return _outbound(account, trunk, number, CallerId(presented, user.out_cid_name))


def did_for(snap: mdl.Snapshot, dialled: str) -> mdl.Did | None:
    """The DID a carrier dialled (platform-wide, E.164 without "+")."""
    return snap.dids.get(to_e164(dialled) or dialled)


def from_trunk(snap: mdl.Snapshot, trunk: mdl.Trunk, call: Call) -> Directive:
    """A carrier or PBX (IP-authenticated) delivered a call: DID -> hours -> route target."""
    did = did_for(snap, call.dialled)
    number = did.e164 if did is not None else call.dialled
    if did is None or did.status == "disabled":
        return Reject(404, "Not Found", f"no DID {number}")
    account = snap.accounts.get(did.account_id)
    if account is None or account.status != "active":
        return Reject(480, "Temporarily Unavailable", "DID account not active")
    if not did.allow_anonymous and call.caller.lower() in ANONYMOUS:
        return Reject(433, "Anonymity Disallowed", f"DID {number} refuses anonymous callers")
    ctx = Context(snap, account, call, CallerId(call.caller, call.caller_name))
    target = _hours(ctx, did.hours) or did.target or account.did_default
    if target is None:
        return Reject(404, "Not Found", f"DID {number} has no route")
    return resolve(ctx, target, 0)


def resolve(ctx: Context, target: RouteTarget, depth: int) -> Directive:
    """Where a route target leads, following chains up to MAX_DEPTH."""
    if depth > MAX_DEPTH:
        return Reject(482, "Loop Detected", f"route targets chain deeper than {MAX_DEPTH}")
    snap, account = ctx.snap, ctx.account
    kind, target_id = target.kind, target.id or ""
    if kind is DestKind.HANGUP:
        return Reject(480, "Temporarily Unavailable", "hangup target")
    if kind is DestKind.USER:
        user = snap.users.get(target_id)
        if user is None or user.account_id != account.id:
            return _missing(target)
        return _user(ctx, user, depth)
    if kind is DestKind.EXTENSION:
        extension = snap.extensions_by_id.get(target_id)
        if extension is None or extension.account_id != account.id:
            return _missing(target)
        return _extension(ctx, extension, depth)
    if kind is DestKind.RING_GROUP:
        group = snap.ring_groups.get(target_id)
        if group is None or group.account_id != account.id:
            return _missing(target)
        return _ring_group(ctx, group, depth)
    if kind is DestKind.FORWARD:
        forward = snap.forwards.get(target_id)
        if forward is None or forward.account_id != account.id:
            return _missing(target)
        trunk = snap.trunks.get(forward.trunk_id or "") or snap.outbound_trunk(account.id)
        number = to_e164(forward.number)
        if trunk is None or trunk.account_id != account.id or number is None:
            return Reject(503, "Service Unavailable", f"forward {target_id}: no usable trunk")
        return _outbound(account, trunk, number, ctx.caller_id)
    if (kind.value, target_id) not in snap.media_targets:
        return _missing(target)
    if kind is DestKind.QUEUE:
        override = _hours(ctx, snap.queue_hours.get(target_id, mdl.Hours()))
        if override is not None:
            return resolve(ctx, override, depth + 1)
    variables = dict(target.xform)
    if ctx.caller_id is not None:
        variables.setdefault("caller_cid", ctx.caller_id.number)
    return Media(account.id, target, variables)


def _missing(target: RouteTarget) -> Reject:
    return Reject(404, "Not Found", f"{target.kind.value} {target.id} not in this account")


def _hours(ctx: Context, hours: mdl.Hours) -> RouteTarget | None:
    if hours.schedule_id is None:
        return None
    schedule = ctx.snap.schedules.get(hours.schedule_id)
    state = evaluate(schedule, ctx.call.now, ctx.account.timezone)
    return override_target(state, hours.closed, hours.holiday)


def _extension(ctx: Context, extension: mdl.Extension, depth: int) -> Directive:
    target = _hours(ctx, extension.hours) or extension.target
    if target is None:
        return Reject(404, "Not Found", f"extension {extension.digits} has no route")
    if extension.target is not None and target is extension.target and extension.target.xform:
        target = replace(target, xform=dict(extension.target.xform))
    return resolve(ctx, target, depth + 1)


def _voicemail_of(user: mdl.User) -> RouteTarget | None:
    return RouteTarget(DestKind.VOICEMAIL, user.voicemail_id) if user.voicemail_id else None


def _user(ctx: Context, user: mdl.User, depth: int) -> Directive:
    """SPEC 4: forward-always, then DND, then ring by strategy with no-answer fallback."""
    if user.status != "active":
        return Reject(480, "Temporarily Unavailable", f"user {user.id} disabled")
    if user.fwd_always is not None:
        return resolve(ctx, user.fwd_always, depth + 1)
    voicemail = _voicemail_of(user)
    if user.dnd:
        fallback = user.fwd_busy or voicemail
        if fallback is None:
            return Reject(486, "Busy Here", f"user {user.id} on DND")
        return resolve(ctx, fallback, depth + 1)
    devices = [d for d in ctx.snap.devices_by_user.get(user.id, ()) if d.status == "active"]
    timeout = user.ring_timeout_sec
    steps: tuple[Step, ...]
    if user.ring_strategy == "sequential":
        ordered = sorted((d for d in devices if d.ring_on_fork), key=lambda d: (d.ring_order, d.id))
        steps = tuple(Step((Leg(d.aor, d.id),), timeout) for d in ordered)
    else:
        chosen = [
            d
            for d in devices
            if d.ring_on_fork and (user.ring_strategy != "specific" or d.ring_specific)
        ]
        chosen.sort(key=lambda d: (d.ring_order, d.id))
        steps = (Step(tuple(Leg(d.aor, d.id) for d in chosen), timeout),) if chosen else ()
    return Ring(
        account_id=ctx.account.id,
        target=RouteTarget(DestKind.USER, user.id),
        steps=steps,
        no_answer=user.fwd_noanswer or voicemail,
        busy=user.fwd_busy or voicemail,
        caller_id=ctx.caller_id,
        depth=depth,
    )


def _member_legs(snap: mdl.Snapshot, member: mdl.RingMember) -> tuple[Leg, ...]:
    if member.device_id:
        device = snap.devices_by_id.get(member.device_id)
        devices = [device] if device is not None else []
    else:
        user = snap.users.get(member.user_id or "")
        if user is None or user.status != "active" or user.dnd:
            return ()
        devices = [d for d in snap.devices_by_user.get(user.id, ()) if d.ring_on_fork]
    return tuple(
        Leg(d.aor, d.id, member.delay_sec)
        for d in sorted(devices, key=lambda d: (d.ring_order, d.id))
        if d.status == "active"
    )


def _ring_group(ctx: Context, group: mdl.RingGroup, depth: int) -> Directive:
    override = _hours(ctx, group.hours)
    if override is not None:
        return resolve(ctx, override, depth + 1)
    members = sorted(group.members, key=lambda m: (m.position, m.user_id or m.device_id or ""))
    steps: tuple[Step, ...]
    if group.strategy == "ring_all":
        legs = tuple(leg for m in members for leg in _member_legs(ctx.snap, m))
        steps = (Step(legs, group.ring_timeout_sec),) if legs else ()
    else:
        if group.strategy == "round_robin" and members and ctx.call.rotate is not None:
            start = ctx.call.rotate(group.id) % len(members)
            members = members[start:] + members[:start]
        steps = tuple(
            Step(legs, m.timeout_sec or group.ring_timeout_sec)
            for m in members
            if (legs := tuple(replace(leg, delay_sec=0) for leg in _member_legs(ctx.snap, m)))
        )
    return Ring(
        account_id=ctx.account.id,
        target=RouteTarget(DestKind.RING_GROUP, group.id),
        steps=steps,
        overall_sec=group.ring_timeout_sec,
        no_answer=group.exit,
        busy=group.exit,
        caller_id=ctx.caller_id,
        depth=depth,
    )


def _outbound(
    account: mdl.Account, trunk: mdl.Trunk, number: str, caller_id: CallerId | None
) -> Outbound:
    return Outbound(
        account_id=account.id,
        trunk_id=trunk.id,
        proxy=trunk.proxy or "",
        transport=trunk.transport,
        number=number,
        caller_id=caller_id,
    )


def fallback(ctx: Context, ring: Ring, busy: bool) -> Directive:
    """Where a Ring goes when nobody answered (or everyone was busy)."""
    target = ring.busy if busy else ring.no_answer
    if target is None:
        return Reject(486, "Busy Here") if busy else Reject(480, "Temporarily Unavailable")
    return resolve(ctx, target, ring.depth + 1)


def step_timeout(ring: Ring, index: int, elapsed_sec: float) -> int | None:
    """Ring time of step ``index`` when the plan started ``elapsed_sec`` ago: the step's own
    timeout, cut to what is left of the group's overall time; None when nothing is left."""
    timeout = ring.steps[index].timeout_sec
    if ring.overall_sec is None:
        return timeout
    left = ring.overall_sec - elapsed_sec
    return min(timeout, max(1, round(left))) if left >= 0.5 else None
