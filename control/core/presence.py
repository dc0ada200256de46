"""Agent presence (SPEC 8): the state machine, pure. Three signals per agent, kept apart:

- ``status``: what the agent wants (``offline`` / ``available`` / ``on_break``);
- ``state``: what the agent is doing (``waiting`` / ``offering`` / ``in_call`` / ``wrap_up``);
- ``reachable``: a device of the agent holds a live registration (the SIP layer's feed).

They collapse into one of nine dashboard buckets (``bucket``), which the agent event log
records on every transition. ``control.live.presence`` stores agents and the log in Redis.

Explicit Ready: login lands the agent on break (``pause_reason`` ``not_ready``) unless the
user has ``auto_ready_on_login``; ``auto_queue_login`` turns on the static and mandatory queue
memberships at login. Calls are offered only to an agent that is available, waiting,
reachable, on no call of its own, and seated in at least one queue (else its bucket is
``idle``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

Status = Literal["offline", "available", "on_break"]
State = Literal["waiting", "offering", "in_call", "wrap_up"]
Bucket = Literal[
    "extcall", "incall", "offline", "unreachable", "ring", "paused", "wrapup", "ready", "idle"
]
BUCKETS: tuple[Bucket, ...] = (
    "extcall",
    "incall",
    "offline",
    "unreachable",
    "ring",
    "paused",
    "wrapup",
    "ready",
    "idle",
)
CONTROL_EVENTS = ("login", "logout", "available", "pause", "break")
NOT_READY = "not_ready"  # pause reason of an agent who logged in without auto-ready
NO_ANSWER = "no_answer"  # pause reason after max_no_answer consecutive misses


class PresenceError(Exception):
    """An event the agent's current state does not allow."""


class NotLoggedIn(PresenceError):
    pass


class InvalidTransition(PresenceError):
    pass


class UnknownQueue(PresenceError):
    def __init__(self, queue_id: str) -> None:
        super().__init__(f"the agent has no membership in queue {queue_id!r}")
        self.queue_id = queue_id


@dataclass(frozen=True)
class Seat:
    """An active queue membership for this login: the queue and the tier it rings at."""

    queue_id: str
    level: int


@dataclass(frozen=True)
class Membership:
    """An ``agent_queue_assignment`` row."""

    queue_id: str
    tier_level: int = 1
    mode: str = "static"  # static | mandatory | optional


@dataclass(frozen=True)
class Profile:
    """The user's config that presence rules read."""

    auto_ready_on_login: bool = False
    auto_queue_login: bool = False
    memberships: tuple[Membership, ...] = ()


@dataclass(frozen=True)
class Agent:
    user_id: str
    status: Status = "offline"
    state: State = "waiting"
    devices: tuple[str, ...] = ()  # registered device ids, sorted
    queues: tuple[Seat, ...] = ()
    extcalls: tuple[str, ...] = ()  # call-ids of the agent's own (non-queue) calls
    call_id: str | None = None  # the queue call offered to or taken by the agent
    pause_reason: str | None = None
    wrap_until: int | None = None  # epoch ms
    misses: int = 0  # consecutive unanswered offers
    since: int = 0  # epoch ms of the last transition

    @property
    def reachable(self) -> bool:
        return bool(self.devices)

    @property
    def logged_in(self) -> bool:
        return self.status != "offline"

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "status": self.status,
            "state": self.state,
            "devices": list(self.devices),
            "queues": [[s.queue_id, s.level] for s in self.queues],
            "extcalls": list(self.extcalls),
            "call_id": self.call_id,
            "pause_reason": self.pause_reason,
            "wrap_until": self.wrap_until,
            "misses": self.misses,
            "since": self.since,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Agent:
        return cls(
            user_id=data["user_id"],
            status=data["status"],
            state=data["state"],
            devices=tuple(data.get("devices", ())),
            queues=tuple(Seat(q, int(level)) for q, level in data.get("queues", ())),
            extcalls=tuple(data.get("extcalls", ())),
            call_id=data.get("call_id"),
            pause_reason=data.get("pause_reason"),
            wrap_until=data.get("wrap_until"),
            misses=int(data.get("misses", 0)),
            since=int(data.get("since", 0)),
        )


def bucket(agent: Agent, now: int) -> Bucket:
    """SPEC 8.3, first match wins."""
    if agent.extcalls:
        return "extcall"
    if agent.state == "in_call":
        return "incall"
    if agent.status == "offline":
        return "offline"
    if not agent.reachable:
        return "unreachable"
    if agent.state == "offering":
        return "ring"
    if agent.status == "on_break":
        return "paused"
    if agent.state == "wrap_up" and (agent.wrap_until is None or now < agent.wrap_until):
        return "wrapup"
    return "ready" if agent.queues else "idle"


def dispatchable(agent: Agent, now: int, queue_id: str | None = None) -> bool:
    """Ready for an offer (SPEC 7.2), optionally from one queue."""
    settled = settle(agent, now)
    current = settled.after if settled else agent
    seated = any(s.queue_id == queue_id for s in current.queues) if queue_id else True
    return bucket(current, now) == "ready" and seated


# -- events -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    name: ClassVar[str] = ""


@dataclass(frozen=True)
class Login(Event):
    name: ClassVar[str] = "login"
    queues: tuple[Seat, ...] | None = None


@dataclass(frozen=True)
class Logout(Event):
    name: ClassVar[str] = "logout"


@dataclass(frozen=True)
class Available(Event):
    name: ClassVar[str] = "available"
    queues: tuple[Seat, ...] | None = None


@dataclass(frozen=True)
class Pause(Event):
    name: ClassVar[str] = "pause"
    reason: str | None = None


@dataclass(frozen=True)
class Register(Event):
    name: ClassVar[str] = "register"
    device_id: str = ""


@dataclass(frozen=True)
class Unregister(Event):
    name: ClassVar[str] = "unregister"
    device_id: str = ""


@dataclass(frozen=True)
class Expire(Unregister):
    """The registration ran out (usrloc expiry) rather than being removed."""

    name: ClassVar[str] = "expire"


@dataclass(frozen=True)
class Offer(Event):
    name: ClassVar[str] = "offer"
    call_id: str = ""
    queue_id: str | None = None


@dataclass(frozen=True)
class Answer(Event):
    name: ClassVar[str] = "answer"
    call_id: str = ""


@dataclass(frozen=True)
class NoAnswer(Event):
    name: ClassVar[str] = "no_answer"
    call_id: str = ""
    max_no_answer: int = 0  # the queue's limit; 0 = never auto-pause


@dataclass(frozen=True)
class Hangup(Event):
    name: ClassVar[str] = "hangup"
    call_id: str = ""
    wrap_up_sec: int = 0


@dataclass(frozen=True)
class WrapDone(Event):
    name: ClassVar[str] = "wrap_done"


@dataclass(frozen=True)
class ExtCallStart(Event):
    name: ClassVar[str] = "extcall_start"
    call_id: str = ""


@dataclass(frozen=True)
class ExtCallEnd(Event):
    name: ClassVar[str] = "extcall_end"
    call_id: str = ""


def control_event(
    name: str, queues: Iterable[tuple[str, int | None]] | None = None, reason: str | None = None
) -> Event:
    """An agent-control event of the API (``pause`` and ``break`` are the same)."""
    seats = None if queues is None else tuple(Seat(q, level or 0) for q, level in queues)
    if name == "login":
        return Login(seats)
    if name == "logout":
        return Logout()
    if name == "available":
        return Available(seats)
    if name in ("pause", "break"):
        return Pause(reason)
    raise ValueError(f"unknown agent event {name!r}")


@dataclass(frozen=True)
class Transition:
    event: str
    before: Agent
    after: Agent
    at: int  # epoch ms
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return replace(self.before, since=0) != replace(self.after, since=0)

    def log_entry(self) -> dict[str, Any]:
        """The agent event log row."""
        a = self.after
        entry: dict[str, Any] = {
            "ts": self.at,
            "user_id": a.user_id,
            "event": self.event,
            "bucket": bucket(a, self.at),
            "prev_bucket": bucket(self.before, self.at),
            "status": a.status,
            "state": a.state,
            "reachable": a.reachable,
            "queues": [{"queueId": s.queue_id, "level": s.level} for s in a.queues],
        }
        if a.pause_reason:
            entry["pause_reason"] = a.pause_reason
        return entry | dict(self.detail)


def settle(agent: Agent, now: int) -> Transition | None:
    """Wrap-up that has run out ends by itself, at the time it ran out."""
    if agent.state != "wrap_up" or agent.wrap_until is None or now < agent.wrap_until:
        return None
    after = replace(agent, state="waiting", wrap_until=None, since=agent.wrap_until)
    return Transition("wrap_done", agent, after, agent.wrap_until, {"auto": True})


def apply(agent: Agent, event: Event, profile: Profile, now: int) -> Transition:
    """The agent after ``event``; raises ``PresenceError`` when the event is not allowed."""
    after = _next(agent, event, profile, now)
    transition = Transition(event.name, agent, after, now, _detail(event))
    if transition.changed:
        transition = replace(transition, after=replace(after, since=now))
    return transition


def _detail(event: Event) -> dict[str, Any]:
    found = {}
    for key in ("device_id", "call_id", "queue_id", "reason"):
        value = getattr(event, key, None)
        if value:
            found[key] = value
    return found


def _next(a: Agent, event: Event, profile: Profile, now: int) -> Agent:
    if isinstance(event, Login):
        if a.logged_in:
            return replace(a, queues=_choose(a.queues, event.queues, profile))
        base = _auto_seats(profile) if profile.auto_queue_login else ()
        ready = profile.auto_ready_on_login
        return replace(
            a,
            status="available" if ready else "on_break",
            pause_reason=None if ready else NOT_READY,
            queues=_choose(base, event.queues, profile),
            misses=0,
        )
    if isinstance(event, Logout):
        return replace(a, status="offline", queues=(), pause_reason=None, misses=0)
    if isinstance(event, Available):
        _logged_in(a, "available")
        queues = _choose(a.queues, event.queues, profile)
        return replace(a, status="available", pause_reason=None, misses=0, queues=queues)
    if isinstance(event, Pause):
        _logged_in(a, "pause")
        return replace(a, status="on_break", pause_reason=event.reason or "break")
    if isinstance(event, Register):
        return replace(a, devices=tuple(sorted({*a.devices, event.device_id})))
    if isinstance(event, Unregister):
        return replace(a, devices=tuple(d for d in a.devices if d != event.device_id))
    if isinstance(event, ExtCallStart):
        return replace(a, extcalls=tuple(sorted({*a.extcalls, event.call_id})))
    if isinstance(event, ExtCallEnd):
        return replace(a, extcalls=tuple(c for c in a.extcalls if c != event.call_id))
    return _call_event(a, event, now)


def _call_event(a: Agent, event: Event, now: int) -> Agent:
    """The ACD's side: offer, answer, miss, hang-up, wrap-up."""
    if isinstance(event, Offer):
        if not dispatchable(a, now, event.queue_id):
            raise InvalidTransition(f"agent is {bucket(a, now)}, not ready for an offer")
        return replace(a, state="offering", call_id=event.call_id, wrap_until=None)
    if isinstance(event, WrapDone):
        return replace(a, state="waiting", wrap_until=None) if a.state == "wrap_up" else a
    call_id = getattr(event, "call_id", None)
    if a.call_id is None or call_id != a.call_id:
        raise InvalidTransition(f"{event.name}: call {call_id!r} is not the agent's call")
    if isinstance(event, Answer):
        if a.state != "offering":
            raise InvalidTransition(f"answer while {a.state}")
        return replace(a, state="in_call", misses=0)
    if isinstance(event, NoAnswer):
        if a.state != "offering":
            raise InvalidTransition(f"no_answer while {a.state}")
        misses = a.misses + 1
        if event.max_no_answer and misses >= event.max_no_answer:
            return replace(
                a,
                state="waiting",
                call_id=None,
                misses=misses,
                status="on_break",
                pause_reason=NO_ANSWER,
            )
        return replace(a, state="waiting", call_id=None, misses=misses)
    if isinstance(event, Hangup):
        if a.state == "offering":  # the caller left while it rang: no miss, no wrap-up
            return replace(a, state="waiting", call_id=None)
        if event.wrap_up_sec > 0:
            until = now + event.wrap_up_sec * 1000
            return replace(a, state="wrap_up", call_id=None, wrap_until=until)
        return replace(a, state="waiting", call_id=None)
    raise InvalidTransition(f"unknown event {event.name!r}")


def _logged_in(a: Agent, what: str) -> None:
    if not a.logged_in:
        raise NotLoggedIn(f"{what}: the agent is not logged in")


def _auto_seats(profile: Profile) -> tuple[Seat, ...]:
    return tuple(
        Seat(m.queue_id, m.tier_level)
        for m in profile.memberships
        if m.mode in ("static", "mandatory")
    )


def _choose(
    current: tuple[Seat, ...], requested: tuple[Seat, ...] | None, profile: Profile
) -> tuple[Seat, ...]:
    """Requested queues replace the chosen ones; mandatory seats already on stay on. Every
    requested queue must be one of the agent's memberships; level 0 = its tier_level."""
    if requested is None:
        return current
    members = {m.queue_id: m for m in profile.memberships}
    chosen: dict[str, Seat] = {}
    for seat in requested:
        membership = members.get(seat.queue_id)
        if membership is None:
            raise UnknownQueue(seat.queue_id)
        chosen[seat.queue_id] = Seat(seat.queue_id, seat.level or membership.tier_level)
    for seat in current:
        membership = members.get(seat.queue_id)
        if membership is not None and membership.mode == "mandatory":
            chosen.setdefault(seat.queue_id, seat)
    return tuple(sorted(chosen.values(), key=lambda s: (s.level, s.queue_id)))
