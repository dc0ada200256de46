"""Automatic call distribution (SPEC 7): which agent rings for which caller. Pure.

Two layers, both free of I/O:

- the rules: ``pick`` (strategy within the best tier), ``join_exit`` and
  ``estimated_wait_sec`` (the exits checked when a caller joins);
- ``Board``: a working copy of one account's queues, callers and agents. Its operations
  (``join``, ``offer``, ``answered``, ``missed``, ``finished``, ``leave``, ``sweep``) change
  the copy, drive agents only through ``control.core.presence`` (Offer / Answer / NoAnswer /
  Hangup), and note every presence transition and queue event, so that
  ``control.live.acd`` can write the whole outcome in one atomic step or retry it.

"One caller, one agent": an agent is offered a call only while it is dispatchable (the
presence rules refuse anything else), and only the head caller of a queue (the longest
waiting one not already ringing agents) is offered. An offer is a lease that runs out after
``agent_ring_timeout_sec``; ``sweep`` turns a lease that ran out into a miss, so an agent never
stays ``offering`` for a controller that died.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from control.core import presence as p

Strategy = Literal["longest_idle", "ring_all", "round_robin", "fewest_calls", "random", "top_down"]
STRATEGIES: tuple[Strategy, ...] = (
    "longest_idle",
    "ring_all",
    "round_robin",
    "fewest_calls",
    "random",
    "top_down",
)
ALIASES: dict[str, Strategy] = {"sequential": "top_down"}
JoinExit = Literal["queue_full", "ewt"]
# Why a caller leaves without an agent, and the event that records it.
LEAVE_EVENTS: dict[str, str] = {
    "abandon": "queue_abandon",
    "hangup": "queue_abandon",
    "timeout": "queue_timeout",
    "no_agents": "queue_leave",
    "route": "queue_leave",
    "callback": "queue_leave",
    "callback_expired": "queue_timeout",
    "callback_cancelled": "queue_abandon",
}


ANSWER_ALLOWANCE_SEC = 10  # whisper and confirmation key, once the agent answered


class AcdError(Exception):
    """A call or agent is not where the operation needs it."""


class NotOffered(AcdError):
    """``answered`` for an agent that is not ringing for the call (its lease was swept, or
    another agent of a ring-all offer answered first): the agent's leg must be dropped."""


class NeedQueues(Exception):
    """The board was built without queues a decision needs (tier order across queues)."""

    def __init__(self, queue_ids: Collection[str]) -> None:
        super().__init__(", ".join(sorted(queue_ids)))
        self.queue_ids = frozenset(queue_ids)


def strategy_of(name: str) -> Strategy:
    """A known strategy name (``sequential`` is ``top_down``); ValueError otherwise."""
    if name in ALIASES:
        return ALIASES[name]
    if name not in STRATEGIES:
        raise ValueError(f"unknown queue strategy {name!r}")
    return name


@dataclass(frozen=True)
class QueueConfig:
    id: str
    account_id: str
    strategy: str = "longest_idle"
    agent_ring_timeout_sec: int = 20
    max_wait_sec: int = 600
    wrap_up_sec: int = 10
    max_no_answer: int = 3
    announce_position: bool = True
    announce_first_sec: int = 15
    announce_interval_sec: int = 30
    moh_mode: str = "stream"  # stream | file
    moh_media_id: str | None = None
    language: str | None = None
    max_queued: int | None = None
    ewt_threshold_sec: int | None = None
    ewt_aht_sec: int | None = None
    agent_whisper: bool = False  # the agent hears the queue's whisper prompt on answering
    agent_confirm: bool = False  # the agent must press 1 to take the call (else: a miss)

    @property
    def lease_sec(self) -> int:
        """How long an offer holds its agents: the ring, plus the answer-time prompt and key
        when the queue has them (the agent is answering, not missing, meanwhile)."""
        extra = ANSWER_ALLOWANCE_SEC if self.agent_whisper or self.agent_confirm else 0
        return self.agent_ring_timeout_sec + extra

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | Any) -> QueueConfig:
        """From a ``queues`` row: a mapping of its columns, or a ``control.db.models.Queue``."""
        get = row.get if isinstance(row, Mapping) else lambda k, d=None: getattr(row, k, d)
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = get(f.name, None)
            if value is not None:
                values[f.name] = value
        values["id"], values["account_id"] = get("id"), get("account_id")
        values["announce_position"] = bool(values.get("announce_position", True))
        for flag in ("agent_whisper", "agent_confirm"):
            values[flag] = bool(values.get(flag, False))
        strategy_of(values.get("strategy", "longest_idle"))
        return cls(**values)


@dataclass(frozen=True)
class Candidate:
    """A dispatchable agent seated in the queue."""

    user_id: str
    level: int  # tier level of its seat in this queue (lower rings first)
    position: int  # agent_queue_assignment.position (top_down order)
    idle_since: int  # epoch ms the agent last became free (longest_idle)
    calls_taken: int  # answered queue calls (fewest_calls)


def estimated_wait_sec(position: int, aht_sec: int, ready_agents: int) -> int:
    """SPEC 7.3: position x assumed handle time / ready agents (at least one), rounded up."""
    return math.ceil(position * aht_sec / max(1, ready_agents))


def join_exit(cfg: QueueConfig, waiting: int, ready_agents: int) -> JoinExit | None:
    """The exit a caller takes instead of joining, with ``waiting`` callers already there."""
    if cfg.max_queued is not None and waiting >= cfg.max_queued:
        return "queue_full"
    if cfg.ewt_threshold_sec is None or not cfg.ewt_aht_sec:
        return None
    ewt = estimated_wait_sec(waiting + 1, cfg.ewt_aht_sec, ready_agents)
    return "ewt" if ewt > cfg.ewt_threshold_sec else None


def pick(
    cfg: QueueConfig,
    candidates: Sequence[Candidate],
    *,
    rotation: int,
    rand: random.Random | None = None,
) -> tuple[str, ...]:
    """The agents to ring: the lowest tier level first, then the queue's strategy within it.
    ``ring_all`` rings the whole tier; the others one agent; nobody when no candidate."""
    if not candidates:
        return ()
    best = min(c.level for c in candidates)
    tier = sorted((c for c in candidates if c.level == best), key=lambda c: c.user_id)
    strategy = strategy_of(cfg.strategy)
    if strategy == "ring_all":
        return tuple(c.user_id for c in sorted(tier, key=lambda c: c.position))
    if strategy == "longest_idle":
        chosen = min(tier, key=lambda c: (c.idle_since, c.user_id))
    elif strategy == "fewest_calls":
        chosen = min(tier, key=lambda c: (c.calls_taken, c.idle_since, c.user_id))
    elif strategy == "top_down":
        chosen = min(tier, key=lambda c: (c.position, c.user_id))
    elif strategy == "round_robin":
        ordered = sorted(tier, key=lambda c: (c.position, c.user_id))
        chosen = ordered[rotation % len(ordered)]
    else:
        chosen = (rand or random.Random()).choice(tier)
    return (chosen.user_id,)


# -- the board ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Caller:
    """A caller waiting in a queue (stored until it is answered or leaves)."""

    call_id: str
    queue_id: str
    enqueued: int  # epoch ms; kept when a controller taking over the call joins it again
    deadline: int  # epoch ms past which ``sweep`` times the caller out (its controller died)
    offering: tuple[str, ...] = ()  # agents ringing for it now
    lease_until: int | None = None  # epoch ms the ring runs out
    max_no_answer: int = 0  # the queue's, for a sweep that has no queue config at hand
    # A courtesy callback (SPEC 7.5): the caller hung up but keeps this place; ``callback``
    # is what the dialer bridges the answering agent to (``number:+…`` / ``extension:…``),
    # ``attempts`` the tries already made to reach the caller.
    callback: str | None = None
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        data = {
            "q": self.queue_id,
            "t": self.enqueued,
            "d": self.deadline,
            "o": list(self.offering),
            "l": self.lease_until,
            "m": self.max_no_answer,
        }
        if self.callback is not None:
            data["cb"], data["a"] = self.callback, self.attempts
        return data

    @classmethod
    def from_json(cls, call_id: str, data: Mapping[str, Any]) -> Caller:
        lease = data.get("l")
        return cls(
            call_id,
            data["q"],
            int(data["t"]),
            int(data["d"]),
            tuple(data.get("o", ())),
            None if lease is None else int(lease),
            int(data.get("m", 0)),
            data.get("cb"),
            int(data.get("a", 0)),
        )


@dataclass(frozen=True)
class QueueView:
    """What the board knows of a queue: its size and its first callers, in order. The prefix
    is long enough to hold at least one caller that rings nobody, when there is one."""

    size: int
    head: tuple[tuple[str, int], ...]  # (call id, enqueue ms)


@dataclass(frozen=True)
class Join:
    exit: str | None  # "queue_full" | "ewt" | None (joined)
    position: int  # 1-based
    ewt_sec: int
    ready: int  # dispatchable agents at join time
    rejoined: bool  # the call was already waiting (takeover): original enqueue time kept


@dataclass(frozen=True)
class Offer:
    call_id: str
    queue_id: str
    user_ids: tuple[str, ...]  # agents now `offering` this call (ring_all: several)
    lease_until: int  # epoch ms = offer time + agent_ring_timeout_sec


@dataclass(frozen=True)
class Waiting:
    position: int
    waited_ms: int
    ewt_sec: int
    offering: tuple[str, ...]


NO_PROFILE = p.Profile()


@dataclass
class Board:
    """One account's ACD state as read at ``now``; operations change it and record the
    changes (``agents_changed``, ``log``, ``events``, ...) for one atomic write."""

    account_id: str
    now: int
    agents: dict[str, p.Agent]
    callers: dict[str, Caller]  # every ringing caller, plus those asked about
    queues: dict[str, QueueView]
    ranks: dict[str, int] = field(default_factory=dict)  # call id -> 0-based rank in its queue
    stats: dict[str, int] = field(default_factory=dict)  # "<user>:idle_since", "<user>:calls"
    rotation: dict[str, int] = field(default_factory=dict)  # queue id -> round-robin counter
    answered_by: dict[str, str] = field(default_factory=dict)  # call id -> agent who took it
    grace_ms: int = 30_000  # past max_wait_sec, before a caller nobody drives is swept
    lease_grace_ms: int = 2_000  # past lease_until, before a ring nobody ended is swept
    # changes
    agents_changed: set[str] = field(default_factory=set)
    callers_changed: set[str] = field(default_factory=set)
    callers_removed: set[str] = field(default_factory=set)
    enqueued: list[tuple[str, int, str]] = field(default_factory=list)  # (queue, ms, call)
    dequeued: list[tuple[str, str]] = field(default_factory=list)  # (queue, call)
    stats_changed: set[str] = field(default_factory=set)
    rotation_changed: set[str] = field(default_factory=set)
    answers: list[tuple[str, str]] = field(default_factory=list)  # (call id, agent) taken now
    log: list[dict[str, Any]] = field(default_factory=list)  # presence log entries
    events: list[dict[str, Any]] = field(default_factory=list)  # queue events

    @property
    def changed(self) -> bool:
        return bool(
            self.agents_changed
            or self.callers_changed
            or self.callers_removed
            or self.stats_changed
            or self.rotation_changed
            or self.events
        )

    # -- reads ----------------------------------------------------------------------------------
    def agent(self, user_id: str) -> p.Agent:
        return self.agents.get(user_id) or p.Agent(user_id)

    def ready(self, queue_id: str, members: Collection[str] | None = None) -> int:
        """Dispatchable agents seated in the queue (only ``members``, when given)."""
        return sum(
            1
            for uid, a in self.agents.items()
            if (members is None or uid in members) and p.dispatchable(a, self.now, queue_id)
        )

    def viable(self, queue_id: str) -> int:
        """Agents logged in, reachable and seated in the queue: none means `no_agents`."""
        return sum(
            1
            for a in self.agents.values()
            if a.logged_in and a.reachable and any(s.queue_id == queue_id for s in a.queues)
        )

    def _view(self, queue_id: str) -> QueueView:
        view = self.queues.get(queue_id)
        if view is None:
            raise NeedQueues({queue_id})
        return view

    def head(self, queue_id: str) -> str | None:
        """The caller an offer goes to: the longest waiting one that rings nobody."""
        for call_id, _ in self._view(queue_id).head:
            if call_id in self.callers_removed:
                continue
            caller = self.callers.get(call_id)
            if caller is None or not caller.offering:
                return call_id
        return None

    def idle_since(self, agent: p.Agent) -> int:
        return self.stats.get(f"{agent.user_id}:idle_since", agent.since)

    def waiting(self, cfg: QueueConfig, call_id: str) -> Waiting | None:
        caller = self.callers.get(call_id)
        if caller is None or caller.queue_id != cfg.id or call_id in self.callers_removed:
            return None
        position = self.ranks.get(call_id, 0) + 1
        ewt = estimated_wait_sec(position, cfg.ewt_aht_sec or 0, self.ready(cfg.id))
        return Waiting(position, self.now - caller.enqueued, ewt, caller.offering)

    # -- changes --------------------------------------------------------------------------------
    def _drive(self, user_id: str, event: p.Event) -> p.Transition:
        """Apply a presence event as ``PresenceStore.apply`` does: a wrap-up that ran out is
        closed first (logged at its end time); raises ``PresenceError`` when refused."""
        agent = self.agent(user_id)
        steps = []
        settled = p.settle(agent, self.now)
        if settled is not None:
            steps.append(settled)
            agent = settled.after
        transition = p.apply(agent, event, NO_PROFILE, self.now)
        if transition.changed:
            steps.append(transition)
        if steps:
            self.agents[user_id] = transition.after
            self.agents_changed.add(user_id)
            self.log.extend(step.log_entry() for step in steps)
        return transition

    def _release(self, call_id: str, user_ids: Iterable[str], miss: int | None) -> list[str]:
        """Agents still ringing for the call stop: a miss (NoAnswer, ``miss`` = the queue's
        max_no_answer) or, with ``miss`` None, the caller went away (Hangup, no miss)."""
        released = []
        for uid in user_ids:
            agent = self.agent(uid)
            if agent.call_id != call_id or agent.state != "offering":
                continue
            if miss is None:
                self._drive(uid, p.Hangup(call_id, 0))
            else:
                self._drive(uid, p.NoAnswer(call_id, miss))
            released.append(uid)
        return released

    def _put(self, caller: Caller) -> None:
        self.callers[caller.call_id] = caller
        self.callers_changed.add(caller.call_id)

    def _remove(self, caller: Caller) -> None:
        self.callers.pop(caller.call_id, None)
        self.callers_changed.discard(caller.call_id)
        self.callers_removed.add(caller.call_id)
        self.dequeued.append((caller.queue_id, caller.call_id))

    def _event(self, kind: str, caller: Caller, **data: Any) -> None:
        self.events.append(
            {
                "type": kind,
                "call_id": caller.call_id,
                "ts": self.now,
                "account_id": self.account_id,
                "queue_id": caller.queue_id,
                "emitter": "acd",
                **data,
            }
        )

    def _count(self, key: str, value: int) -> None:
        self.stats[key] = value
        self.stats_changed.add(key)

    # -- operations -----------------------------------------------------------------------------
    def sweep(self) -> int:
        """Rings whose lease ran out become misses (the caller keeps its place); callers past
        their deadline, whose controller is gone, time out. Returns how many were swept."""
        swept = 0
        for caller in sorted(self.callers.values(), key=lambda c: c.call_id):
            if caller.deadline <= self.now:
                self._release(caller.call_id, caller.offering, None)
                self._remove(caller)
                reason = "callback_expired" if caller.callback else "swept"
                self._event("queue_timeout", caller, reason=reason)
                swept += 1
            elif caller.offering and (caller.lease_until or 0) + self.lease_grace_ms <= self.now:
                missed = self._release(caller.call_id, caller.offering, caller.max_no_answer)
                self._put(replace(caller, offering=(), lease_until=None))
                self._event("queue_miss", caller, agent_ids=missed, reason="lease_expired")
                swept += 1
        return swept

    def join(self, cfg: QueueConfig, call_id: str, members: Collection[str] | None) -> Join:
        ready = self.ready(cfg.id, members)
        caller = self.callers.get(call_id)
        if caller is not None and call_id not in self.callers_removed:
            if caller.queue_id != cfg.id:
                raise AcdError(f"call {call_id} waits in queue {caller.queue_id}; leave it first")
            position = self.ranks.get(call_id, 0) + 1
            ewt = estimated_wait_sec(position, cfg.ewt_aht_sec or 0, ready)
            return Join(None, position, ewt, ready, rejoined=True)
        view = self._view(cfg.id)
        position = view.size + 1
        ewt = estimated_wait_sec(position, cfg.ewt_aht_sec or 0, ready)
        deflect = join_exit(cfg, view.size, ready)
        if deflect is not None:
            gone = Caller(call_id, cfg.id, self.now, self.now)
            self._event("queue_leave", gone, reason=deflect, ewt_sec=ewt, joined=False)
            return Join(deflect, position, ewt, ready, rejoined=False)
        deadline = self.now + cfg.max_wait_sec * 1000 + self.grace_ms
        caller = Caller(call_id, cfg.id, self.now, deadline, max_no_answer=cfg.max_no_answer)
        self._put(caller)
        self.enqueued.append((cfg.id, self.now, call_id))
        self.queues[cfg.id] = QueueView(view.size + 1, (*view.head, (call_id, self.now)))
        self.ranks[call_id] = view.size
        self._event("queue_join", caller, position=position, ewt_sec=ewt)
        return Join(None, position, ewt, ready, rejoined=False)

    def offer(
        self,
        cfg: QueueConfig,
        call_id: str,
        positions: Mapping[str, int] | None = None,
        rand: random.Random | None = None,
    ) -> Offer | None:
        """Ring agents for the caller if it heads its queue and someone is ready."""
        caller = self.callers.get(call_id)
        if caller is None or caller.queue_id != cfg.id or call_id in self.callers_removed:
            return None
        if caller.offering:
            return Offer(call_id, cfg.id, caller.offering, caller.lease_until or self.now)
        if self.head(cfg.id) != call_id:
            return None
        candidates = self._candidates(cfg.id, positions or {})
        rotation = self.rotation.get(cfg.id, 0)
        chosen = pick(cfg, candidates, rotation=rotation, rand=rand)
        if not chosen:
            return None
        if strategy_of(cfg.strategy) == "round_robin":
            self.rotation[cfg.id] = rotation + 1
            self.rotation_changed.add(cfg.id)
        for uid in chosen:
            self._drive(uid, p.Offer(call_id, cfg.id))
        lease = self.now + cfg.lease_sec * 1000
        self._put(replace(caller, offering=chosen, lease_until=lease))
        self._event("queue_offer", caller, agent_ids=list(chosen), lease_until=lease)
        return Offer(call_id, cfg.id, chosen, lease)

    def _candidates(self, queue_id: str, positions: Mapping[str, int]) -> list[Candidate]:
        found: list[Candidate] = []
        missing: set[str] = set()
        for uid in sorted(self.agents):
            agent = self.agents[uid]
            if not p.dispatchable(agent, self.now, queue_id):
                continue
            level = next(s.level for s in agent.queues if s.queue_id == queue_id)
            # Tier order across the agent's queues: a caller waiting where it sits at a lower
            # level comes first (that queue's offer will take the agent).
            lower = [s.queue_id for s in agent.queues if s.level < level]
            missing.update(q for q in lower if q not in self.queues)
            if missing or any(self.head(q) is not None for q in lower):
                continue
            found.append(
                Candidate(
                    uid,
                    level,
                    positions.get(uid, 0),
                    self.idle_since(agent),
                    self.stats.get(f"{uid}:calls", 0),
                )
            )
        if missing:
            raise NeedQueues(missing)
        return found

    def answered(self, cfg: QueueConfig, call_id: str, user_id: str) -> bool:
        """The agent took the call; False when that was already recorded (also after the
        call ended: ``answered_by`` remembers who took it)."""
        agent = self.agent(user_id)
        if self.answered_by.get(call_id) == user_id or (
            agent.call_id == call_id and agent.state == "in_call"
        ):
            return False
        caller = self.callers.get(call_id)
        if (
            caller is None
            or user_id not in caller.offering
            or agent.call_id != call_id
            or agent.state != "offering"
        ):
            raise NotOffered(f"agent {user_id} is not ringing for call {call_id}")
        self._drive(user_id, p.Answer(call_id))
        self._release(call_id, (u for u in caller.offering if u != user_id), None)
        self._remove(caller)
        self.answered_by[call_id] = user_id
        self.answers.append((call_id, user_id))
        key = f"{user_id}:calls"
        self._count(key, self.stats.get(key, 0) + 1)
        extra = {"callback": True, "attempt": caller.attempts + 1} if caller.callback else {}
        self._event(
            "queue_answer", caller, agent_id=user_id, waited_ms=self.now - caller.enqueued, **extra
        )
        return True

    def missed(
        self, cfg: QueueConfig, call_id: str, user_ids: Collection[str] | None = None
    ) -> tuple[str, ...]:
        """Agents still ringing for the call (all, or ``user_ids``) missed it."""
        caller = self.callers.get(call_id)
        if caller is None or not caller.offering:
            return ()
        targets = [u for u in caller.offering if user_ids is None or u in user_ids]
        released = self._release(call_id, targets, cfg.max_no_answer)
        rest = tuple(u for u in caller.offering if u not in targets)
        self._put(replace(caller, offering=rest, lease_until=caller.lease_until if rest else None))
        if released:
            self._event("queue_miss", caller, agent_ids=released)
        return tuple(released)

    def finished(self, cfg: QueueConfig, call_id: str, user_id: str) -> bool:
        """The agent's call ended: wrap-up (or waiting at once with no wrap-up)."""
        agent = self.agent(user_id)
        if agent.call_id != call_id or agent.state != "in_call":
            return False
        self._drive(user_id, p.Hangup(call_id, cfg.wrap_up_sec))
        self._count(f"{user_id}:idle_since", self.now + cfg.wrap_up_sec * 1000)
        return True

    def leave(self, cfg: QueueConfig, call_id: str, reason: str) -> bool:
        """The caller leaves without an agent; False when it was not waiting (any more)."""
        kind = LEAVE_EVENTS.get(reason)
        if kind is None:
            raise ValueError(f"unknown reason {reason!r} to leave a queue")
        caller = self.callers.get(call_id)
        if caller is None or caller.queue_id != cfg.id:
            return False
        released = self._release(call_id, caller.offering, None)
        self._remove(caller)
        data: dict[str, Any] = {"reason": reason, "waited_ms": self.now - caller.enqueued}
        if released:
            data["agent_ids"] = released
        self._event(kind, caller, **data)
        return True

    def callback(self, cfg: QueueConfig, call_id: str, dial: str, window_ms: int) -> Waiting | None:
        """The waiting caller asks to be called back: it keeps its place (enqueue time) with
        ``dial`` to reach it, and now expires only after ``window_ms`` (a dialer drives it,
        not its leg). Agents ringing for it are released without a miss. None when it was
        not waiting in this queue."""
        caller = self.callers.get(call_id)
        if caller is None or caller.queue_id != cfg.id or call_id in self.callers_removed:
            return None
        self._release(call_id, caller.offering, None)
        marked = replace(
            caller, offering=(), lease_until=None, deadline=self.now + window_ms, callback=dial
        )
        self._put(marked)
        waiting = self.waiting(cfg, call_id)
        assert waiting is not None
        self._event(
            "queue_callback", marked, position=waiting.position, waited_ms=waiting.waited_ms
        )
        return waiting

    def requeue_callback(
        self, cfg: QueueConfig, call_id: str, dial: str, attempts: int, window_ms: int
    ) -> bool:
        """A callback whose caller was not reached waits again, at the back of the queue,
        for its next attempt; False when it is already waiting."""
        if call_id in self.callers and call_id not in self.callers_removed:
            return False
        view = self._view(cfg.id)
        caller = Caller(
            call_id, cfg.id, self.now, self.now + window_ms,
            max_no_answer=cfg.max_no_answer, callback=dial, attempts=attempts,
        )  # fmt: skip
        self.callers_removed.discard(call_id)  # (answered earlier on this same board)
        self.dequeued = [d for d in self.dequeued if d[1] != call_id]
        self._put(caller)
        self.enqueued.append((cfg.id, self.now, call_id))
        self.queues[cfg.id] = QueueView(view.size + 1, (*view.head, (call_id, self.now)))
        self.ranks[call_id] = view.size
        self._event("queue_callback_retry", caller, position=view.size + 1, attempt=attempts + 1)
        return True

    def cancel_callback(self, cfg: QueueConfig, call_id: str) -> bool:
        """A waiting callback is withdrawn (the caller called again, an operator); False when
        there is none. Raises ``AcdError`` while agents ring for it: it is being placed."""
        caller = self.callers.get(call_id)
        if caller is None or caller.queue_id != cfg.id or not caller.callback:
            return False
        if caller.offering:
            raise AcdError(f"callback {call_id} is being placed")
        return self.leave(cfg, call_id, "callback_cancelled")
