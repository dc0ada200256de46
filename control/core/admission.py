"""Admission control (SPEC 15), the pure half: which limits a call meets, what a rejection
sounds like in SIP, and the decision record a trace keeps. No I/O; ``control.live.admission``
runs the plan atomically in Redis.

A call is described by the facts routing already knows (``CallFacts``); ``plan`` turns them,
with the limits of the config (``LimitBook``), into counters and sliding windows grouped by
the account whose Redis slot holds them. Nearly always that is one group, the call's account;
a call carried by a trunk of another account (a platform carrier, say) adds a second group so
that the trunk's channels are counted where every account using it sees them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from control.core.routing.directives import Directive, Outbound, Reject, Ring
from control.core.targets import DestKind

Direction = Literal["in", "out", "dialer", "internal"]
Policy = Literal["open", "closed"]  # what to do while Redis cannot answer
POLICIES: tuple[Policy, ...] = ("open", "closed")
RATE_DIRECTIONS = ("in", "out", "dialer")  # call_limit.direction values

CONCURRENCY_RETRY_SEC = 10  # Retry-After hint when a ceiling, not a rate, is full
OUTAGE_RETRY_SEC = 5


@dataclass(frozen=True)
class Rule:
    """A ``call_limit`` row: at most ``max_count`` admitted calls per ``period_sec``."""

    id: str
    account_id: str
    scope_kind: str  # account | user | number | trunk
    scope_id: str | None  # None on a non-account scope: every user / number / trunk alone
    direction: str  # in | out | dialer
    period_sec: int
    max_count: int
    hard: bool = True


@dataclass(frozen=True)
class AccountLimits:
    max_in: int | None = None
    max_out: int | None = None
    max_dialer: int | None = None
    policy: Policy = "open"

    def ceiling(self, direction: Direction) -> int | None:
        if direction == "internal":
            return None
        limit: int | None = getattr(self, f"max_{direction}")
        return limit


@dataclass(frozen=True)
class TrunkLimits:
    account_id: str  # the trunk's owner: its channel counter lives in that account's slot
    max_channels: int | None = None


class _AccountRow(Protocol):
    id: str
    max_in: int | None
    max_out: int | None
    max_dialer: int | None


class _Limited(Protocol):
    id: str


@dataclass(frozen=True)
class LimitBook:
    """Every limit admission needs, indexed; built once per config version. NULL = no limit,
    0 = nothing allowed."""

    accounts: Mapping[str, AccountLimits] = field(default_factory=dict)
    users: Mapping[str, int | None] = field(default_factory=dict)  # max_simultaneous
    dids: Mapping[str, int | None] = field(default_factory=dict)  # max_channels
    trunks: Mapping[str, TrunkLimits] = field(default_factory=dict)
    rules: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)  # by account

    @classmethod
    def from_rows(
        cls,
        accounts: Iterable[Any],
        users: Iterable[Any],
        dids: Iterable[Any],
        trunks: Iterable[Any],
        rules: Iterable[Any],
    ) -> LimitBook:
        """From config rows (ORM objects or Row tuples with these attribute names).

        ``cac_redis_policy`` is read when the account row has it (proposed column)."""
        by_account: dict[str, list[Rule]] = {}
        for r in rules:
            rule = Rule(
                r.id,
                r.account_id,
                r.scope_kind,
                r.scope_id,
                r.direction,
                int(r.period_sec),
                int(r.max_count),
                bool(r.hard),
            )
            by_account.setdefault(rule.account_id, []).append(rule)
        return cls(
            accounts={
                a.id: AccountLimits(
                    a.max_in, a.max_out, a.max_dialer, _policy(getattr(a, "cac_redis_policy", None))
                )
                for a in accounts
            },
            users={u.id: u.max_simultaneous for u in users},
            dids={d.id: d.max_channels for d in dids},
            trunks={t.id: TrunkLimits(t.account_id, t.max_channels) for t in trunks},
            rules={k: tuple(sorted(v, key=lambda r: r.id)) for k, v in by_account.items()},
        )

    def policy(self, account_id: str) -> Policy:
        limits = self.accounts.get(account_id)
        return limits.policy if limits is not None else "open"


def _policy(value: str | None) -> Policy:
    return "closed" if value == "closed" else "open"


@dataclass(frozen=True)
class CallFacts:
    """What routing knows about a call when it decides to admit it.

    ``in_trunk_id``/``did_id`` make it inbound; ``out_trunk_id`` makes it outbound (``dialer``
    for campaign calls); neither makes it internal. A DID forwarded back out is both.
    ``did_id`` is the dialled DID inbound, or the account DID presented as caller ID outbound.
    """

    call_id: str
    account_id: str
    caller_user_id: str | None = None  # the calling device's user
    callee_user_id: str | None = None  # the user being rung
    did_id: str | None = None
    in_trunk_id: str | None = None
    out_trunk_id: str | None = None
    dialer: bool = False

    @property
    def directions(self) -> tuple[Direction, ...]:
        found: list[Direction] = []
        if self.in_trunk_id or (self.did_id and not self.out_trunk_id):
            found.append("in")
        if self.out_trunk_id:
            found.append("dialer" if self.dialer else "out")
        return tuple(found) or ("internal",)


Kind = Literal["account", "user", "did", "trunk", "rate", "outage"]


@dataclass(frozen=True)
class Dimension:
    """One thing a call counts against. ``field`` names the counter (or, for a rate, the
    window) inside its account's key space."""

    kind: Kind
    field: str
    limit: int | None  # concurrency ceiling or rate max_count; None = only counted
    label: str  # operator wording, e.g. "account max_in"
    object_id: str | None = None
    direction: str | None = None
    role: str | None = None  # users: caller | callee
    rule: Rule | None = None

    @property
    def period_ms(self) -> int:
        return self.rule.period_sec * 1000 if self.rule else 0

    @property
    def hard(self) -> bool:
        return self.rule.hard if self.rule else True


@dataclass(frozen=True)
class Group:
    """The dimensions kept in one account's slot, decided by one atomic script."""

    account_id: str
    counters: tuple[Dimension, ...]
    windows: tuple[Dimension, ...]

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        return self.counters + self.windows


@dataclass(frozen=True)
class Plan:
    facts: CallFacts
    groups: tuple[Group, ...]  # the call's own account first

    @property
    def call_id(self) -> str:
        return self.facts.call_id

    @property
    def account_id(self) -> str:
        return self.facts.account_id


def plan(facts: CallFacts, book: LimitBook) -> Plan:
    """Every counter and window the call takes, in the order a rejection is reported."""
    account = book.accounts.get(facts.account_id, AccountLimits())
    directions = facts.directions
    own: list[Dimension] = []
    for direction in directions:
        label = "account internal" if direction == "internal" else f"account max_{direction}"
        own.append(
            Dimension(
                "account", direction, account.ceiling(direction), label, facts.account_id, direction
            )
        )
    trunk_dims: dict[str, list[Dimension]] = {}
    for trunk_id, way in _trunks(facts):
        trunk = book.trunks.get(trunk_id, TrunkLimits(facts.account_id))
        dim = Dimension(
            "trunk", f"t:{trunk_id}", trunk.max_channels, "trunk max_channels", trunk_id, way
        )
        trunk_dims.setdefault(trunk.account_id, []).append(dim)
    own += trunk_dims.pop(facts.account_id, [])
    if facts.did_id:
        own.append(
            Dimension(
                "did",
                f"d:{facts.did_id}",
                book.dids.get(facts.did_id),
                "did max_channels",
                facts.did_id,
            )
        )
    for user_id, role in ((facts.callee_user_id, "callee"), (facts.caller_user_id, "caller")):
        if user_id and not any(d.kind == "user" and d.object_id == user_id for d in own):
            own.append(
                Dimension(
                    "user",
                    f"u:{user_id}",
                    book.users.get(user_id),
                    "user max_simultaneous",
                    user_id,
                    role=role,
                )
            )
    groups = [Group(facts.account_id, tuple(own), _windows(facts, book, facts.account_id))]
    for owner, dims in sorted(trunk_dims.items()):
        groups.append(Group(owner, tuple(dims), _windows(facts, book, owner, trunks_only=True)))
    return Plan(facts, tuple(groups))


def _trunks(facts: CallFacts) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if facts.in_trunk_id:
        found.append((facts.in_trunk_id, "in"))
    if facts.out_trunk_id and facts.out_trunk_id != facts.in_trunk_id:
        found.append((facts.out_trunk_id, "dialer" if facts.dialer else "out"))
    return found


def _scope_object(facts: CallFacts, rule: Rule) -> str | None:
    """The object of the call a rule's scope refers to, in the rule's direction."""
    inbound = rule.direction == "in"
    if rule.scope_kind == "account":
        return rule.account_id
    if rule.scope_kind == "user":
        return facts.callee_user_id if inbound else facts.caller_user_id
    if rule.scope_kind == "number":
        return facts.did_id
    if rule.scope_kind == "trunk":
        return facts.in_trunk_id if inbound else facts.out_trunk_id
    return None


def _windows(
    facts: CallFacts, book: LimitBook, owner: str, trunks_only: bool = False
) -> tuple[Dimension, ...]:
    found: list[Dimension] = []
    for rule in book.rules.get(owner, ()):
        if rule.direction not in facts.directions or (trunks_only and rule.scope_kind != "trunk"):
            continue
        target = _scope_object(facts, rule)
        if target is None or (rule.scope_id is not None and rule.scope_id != target):
            continue
        trunk_owner = book.trunks.get(target, TrunkLimits(owner)).account_id
        if rule.scope_kind == "trunk" and trunk_owner != owner:
            continue
        label = f"call_limit {rule.id} ({rule.max_count}/{rule.period_sec}s)"
        found.append(
            Dimension(
                "rate",
                f"w:{rule.id}:{target}",
                rule.max_count,
                label,
                target,
                rule.direction,
                rule=rule,
            )
        )
    return tuple(found)


def facts_from_route(
    call_id: str,
    directive: Directive,
    *,
    caller_user_id: str | None = None,
    source_trunk_id: str | None = None,
    did_id: str | None = None,
    dialer: bool = False,
) -> CallFacts | None:
    """The facts of a routed call, straight from the routing directive (None for a reject).

    ``source_trunk_id``: the trunk that delivered an inbound call; ``did_id`` the DID it
    dialled; ``caller_user_id`` the user of an authenticated calling device."""
    if isinstance(directive, Reject):
        return None
    callee = None
    if isinstance(directive, Ring) and directive.target.kind is DestKind.USER:
        callee = directive.target.id
    out_trunk = directive.trunk_id if isinstance(directive, Outbound) else None
    return CallFacts(
        call_id,
        directive.account_id,
        caller_user_id,
        callee,
        did_id,
        source_trunk_id,
        out_trunk,
        dialer,
    )


# -- SIP answer of a rejection ----------------------------------------------------------------
# (code, reason phrase, Retry-After hint). Ceilings and rates tell a carrier to try elsewhere
# (503 + Retry-After); a full user or number is busy to the caller (486); a caller over its
# own concurrency gets 403: retrying at once would not help and nothing is wrong downstream.
SIP_ANSWERS: dict[tuple[str, str | None], tuple[int, str, int | None]] = {
    ("account", None): (503, "Service Unavailable", CONCURRENCY_RETRY_SEC),
    ("trunk", None): (503, "Service Unavailable", CONCURRENCY_RETRY_SEC),
    ("did", None): (486, "Busy Here", None),
    ("user", "callee"): (486, "Busy Here", None),
    ("user", "caller"): (403, "Forbidden", None),
    ("user", None): (486, "Busy Here", None),
    ("rate", None): (503, "Service Unavailable", None),  # Retry-After from the window
    ("outage", None): (503, "Service Unavailable", OUTAGE_RETRY_SEC),
}


def sip_answer(dim: Dimension, retry_ms: int = 0) -> tuple[int, str, int | None]:
    answer = SIP_ANSWERS.get((dim.kind, dim.role)) or SIP_ANSWERS[(dim.kind, None)]
    code, reason, retry = answer
    if dim.kind == "rate":
        retry = max(1, math.ceil(retry_ms / 1000))
    return code, reason, retry


OUTAGE = Dimension("outage", "", None, "admission store unavailable")


@dataclass(frozen=True)
class Held:
    """What a call holds in one account's slot: counter fields and rate windows it entered."""

    account_id: str
    fields: tuple[str, ...]

    @property
    def counters(self) -> tuple[str, ...]:
        return tuple(f for f in self.fields if not f.startswith("w:"))


def encode_held(held: Iterable[Held]) -> str:
    """Compact text for a dialog variable, so a reconciler can re-adopt a call Redis lost:
    ``acc_1=in,u:us_1;acc_2=t:tr_9``."""
    return ";".join(f"{h.account_id}={','.join(h.fields)}" for h in held)


def decode_held(text: str) -> tuple[Held, ...]:
    found = []
    for part in filter(None, text.split(";")):
        account, _, fields = part.partition("=")
        if account:
            found.append(Held(account, tuple(filter(None, fields.split(",")))))
    return tuple(found)


@dataclass(frozen=True)
class Count:
    dimension: Dimension
    count: int  # after this decision


@dataclass(frozen=True)
class Decision:
    """One admission decision, with everything a trace event needs."""

    call_id: str
    account_id: str
    admitted: bool
    policy: Policy
    counts: tuple[Count, ...] = ()
    rejected_by: Dimension | None = None
    retry_ms: int = 0
    soft_exceeded: tuple[Dimension, ...] = ()  # soft rules over their limit: admitted, alerted
    held: tuple[Held, ...] = ()
    degraded: bool = False  # Redis did not answer: the policy decided
    error: str | None = None
    expired: int = 0  # stale calls the script gave back on the way (TTL ran out)

    @property
    def code(self) -> int | None:
        return sip_answer(self.rejected_by, self.retry_ms)[0] if self.rejected_by else None

    @property
    def retry_after(self) -> int | None:
        return sip_answer(self.rejected_by, self.retry_ms)[2] if self.rejected_by else None

    @property
    def token(self) -> str:
        """``encode_held`` of what the call holds: store it with the dialog."""
        return encode_held(self.held)

    def reject(self) -> Reject | None:
        """The routing directive of a rejection (its detail goes to the trace only)."""
        if self.rejected_by is None:
            return None
        code, reason, _ = sip_answer(self.rejected_by, self.retry_ms)
        return Reject(code, reason, f"cac: {self.rejected_by.label}")

    def reply_headers(self) -> list[str]:
        """Headers for the rejection reply: Retry-After and an RFC 3326 Reason naming the
        limit's kind (never its figures) for the operator reading a capture."""
        if self.rejected_by is None:
            return []
        code, _, retry = sip_answer(self.rejected_by, self.retry_ms)
        text = self.rejected_by.label.split(" (")[0]
        headers = [f'Reason: SIP;cause={code};text="cac {text}"']
        if retry is not None:
            headers.insert(0, f"Retry-After: {retry}")
        return headers

    def trace(self) -> dict[str, Any]:
        """The ``cac`` trace event's data."""
        data: dict[str, Any] = {
            "account_id": self.account_id,
            "admitted": self.admitted,
            "policy": self.policy,
            "counts": [_dim_json(c.dimension) | {"count": c.count} for c in self.counts],
        }
        if self.rejected_by is not None:
            data |= {"code": self.code, "rejected_by": _dim_json(self.rejected_by)}
            if self.retry_after is not None:
                data["retry_after"] = self.retry_after
        if self.soft_exceeded:
            data["soft_exceeded"] = [_dim_json(d) for d in self.soft_exceeded]
        if self.degraded:
            data |= {"degraded": True, "error": self.error}
        if self.expired:
            data["expired_calls"] = self.expired
        return data

    def alerts(self) -> list[dict[str, Any]]:
        """One ``cac_alert`` event per soft rule the call went over."""
        return [
            {
                "account_id": self.account_id,
                "rule_id": d.rule.id if d.rule else None,
                "scope": d.object_id,
                "max_count": d.limit,
                "period_sec": d.period_ms // 1000,
                "count": next((c.count for c in self.counts if c.dimension == d), None),
            }
            for d in self.soft_exceeded
        ]


def _dim_json(dim: Dimension) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": dim.kind, "label": dim.label, "limit": dim.limit}
    for key in ("object_id", "direction", "role"):
        if (value := getattr(dim, key)) is not None:
            data[key] = value
    if dim.rule is not None:
        data |= {"rule_id": dim.rule.id, "hard": dim.rule.hard, "period_sec": dim.rule.period_sec}
    return data


def outage_decision(plan: Plan, policy: Policy, error: str) -> Decision:
    """Redis did not answer: fail open (admit, remember what the call would hold so a
    reconciler can adopt it) or fail closed (503)."""
    if policy == "closed":
        return Decision(
            plan.call_id,
            plan.account_id,
            False,
            policy,
            rejected_by=OUTAGE,
            degraded=True,
            error=error,
        )
    held = tuple(Held(g.account_id, tuple(d.field for d in g.counters)) for g in plan.groups)
    return Decision(
        plan.call_id, plan.account_id, True, policy, held=held, degraded=True, error=error
    )


def parse_field(name: str) -> dict[str, Any]:
    """A counter field as the API shows it: ``u:us_1`` -> {kind: user, id: us_1}."""
    kinds = {"u": "user", "d": "did", "t": "trunk"}
    prefix, sep, rest = name.partition(":")
    if sep and prefix in kinds:
        return {"kind": kinds[prefix], "id": rest}
    return {"kind": "account", "direction": name}
