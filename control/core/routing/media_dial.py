"""Bridges the media engine places back through the proxy (``X-Sipio-Dial``).

A flow's ``dial`` (or a ``transfer`` to a user, extension, ring group or forward) makes
FreeSWITCH send a new INVITE to Kamailio carrying ``X-Sipio-Account: <acc>`` and
``X-Sipio-Dial: <kind>:<value>``. Kamailio trusts these only from a media node of the
dispatcher set; this module turns them into the same directives a device's call gets, always
inside that account: a flow can never reach another tenant's users, extensions or trunks.
"""

from __future__ import annotations

import re

from control.core.numbers import to_e164
from control.core.routing import model as mdl
from control.core.routing import resolve as core
from control.core.routing.directives import CallerId, Directive, Outbound, Reject
from control.core.targets import DestKind, RouteTarget

DIAL = re.compile(r"^([a-z_]{1,20}):([A-Za-z0-9_+*#.-]{1,64})$")
# What a bridge may dial: people and routes. Media targets (flows, queues, voicemail,
# conferences) are run by the controller itself, never bridged back out.
DIALLABLE = frozenset(
    {DestKind.USER, DestKind.EXTENSION, DestKind.RING_GROUP, DestKind.FORWARD, DestKind.HANGUP}
)


def from_media(snap: mdl.Snapshot, account_id: str, dial: str, call: core.Call) -> Directive:
    """``dial`` is ``user:<user id or username>``, ``extension:<digits or id>``,
    ``number:<public number>`` (out through the account's trunk), ``ring_group:<id>`` or
    ``forward:<id>``. ``call.caller`` / ``call.caller_name`` present the bridged leg."""
    account = snap.accounts.get(account_id)
    if account is None or account.status != "active":
        return Reject(403, "Forbidden", f"bridge for unknown or inactive account {account_id!r}")
    match = DIAL.match(dial.strip())
    if match is None:
        return Reject(400, "Bad Request", f"malformed X-Sipio-Dial {dial!r}")
    kind, value = match.groups()
    ctx = core.Context(snap, account, call, CallerId(call.caller or None, call.caller_name))
    if kind == "number":
        return _number(ctx, value)
    try:
        dest = DestKind(kind)
    except ValueError:
        return Reject(400, "Bad Request", f"unknown dial kind {kind!r}")
    if dest not in DIALLABLE:
        return Reject(403, "Forbidden", f"{kind} is not diallable from the media engine")
    if dest is DestKind.USER:
        user = snap.users.get(value) or snap.users_by_name.get((account.id, value))
        if user is not None and user.account_id == account.id:
            value = user.id
    elif dest is DestKind.EXTENSION:
        extension = snap.extensions.get((account.id, value))
        if extension is not None:
            value = extension.id
    target = RouteTarget(dest, None if dest is DestKind.HANGUP else value)
    return core.resolve(ctx, target, 0)  # every object reached is checked against the account


def callback_dial(number: str) -> str | None:
    """What a courtesy callback dials to reach a caller: a public number out through the
    trunk, a short number as the account's extension; None for anything else (anonymous,
    a SIP URI, a malformed number), which cannot be called back."""
    e164 = to_e164(number)
    if e164 is not None:
        return f"number:+{e164}"
    if re.fullmatch(r"[0-9]{2,8}", number):
        return f"extension:{number}"
    return None


def _number(ctx: core.Context, value: str) -> Directive:
    number = to_e164(value)
    if number is None:
        return Reject(404, "Not Found", f"{value!r} is no public number")
    trunk = ctx.snap.outbound_trunk(ctx.account.id)
    if trunk is None:
        return Reject(503, "Service Unavailable", "no outbound trunk for this account")
    caller = ctx.call.caller
    # The flow's caller-id (or the original caller, like a forward) when it is a public
    # number; otherwise what the account presents.
    own = to_e164(caller) if caller else None
    presented = own or trunk.cid_number or ctx.account.default_cid_number
    return Outbound(
        account_id=ctx.account.id,
        trunk_id=trunk.id,
        proxy=trunk.proxy or "",
        transport=trunk.transport,
        number=number,
        caller_id=CallerId(presented, ctx.call.caller_name),
    )
