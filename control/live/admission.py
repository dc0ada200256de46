"""Admission control in Redis: admit, release, refresh, and the live counters.

``admit`` runs one Lua script (``control.live.scripts``) in the account's slot: every counter
and window of the call is checked and, only if all pass, taken, with a record of what the call
holds. The record is what ``release`` gives back, so exactly the counters taken go down,
whatever the limits became in between. Admission is idempotent and cumulative per call-id: a
retransmitted INVITE takes nothing twice, and a failure-route fallback (ring -> forward to the
PSTN) adds only the new dimensions.

Finding a call by its call-id alone (a BYE on any node, any worker)::

    <prefix>:call:{<call-id>}   ->  "acc_1 [acc_2]"   (EX ttl)   the accounts holding it

It is written in the same pipeline as the script, so an admission costs one round trip; a
rejected call that holds nothing has it deleted again. Give ``release`` the accounts (from the
decision's ``token``, kept with the dialog) and it skips the lookup.

Leaks. Each call has a deadline (``ttl``); ``refresh`` or the reconciler pushes it back while
the dialog lives, and any script touching the account gives back calls past their deadline.

Outage. A Redis error decides by the account's policy: ``open`` admits (the decision carries
what the call would hold, for the reconciler to adopt), ``closed`` rejects with 503. After an
error Redis is skipped for ``backoff`` seconds, so an outage costs one timeout per period, not
one per call. Release and refresh never raise: calls already up are not affected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from control.core.admission import CallFacts as CallFacts
from control.core.admission import (
    Count,
    Decision,
    Dimension,
    Group,
    Held,
    LimitBook,
    Plan,
    Policy,
    decode_held,
    outage_decision,
    plan,
)
from control.live.client import Lua, Pipeline, RedisClient, run_pipeline, text, worker_redis
from control.live.scripts import ADMIT, REFRESH, RELEASE, UNTAKE

log = logging.getLogger(__name__)
T = TypeVar("T")


class Keys:
    """Key names; everything of an account carries its ``{acc_…}`` hash tag."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def base(self, account_id: str) -> str:
        return f"{self.prefix}:{{{account_id}}}"

    def account(self, account_id: str) -> list[str]:
        """KEYS[1..3] of every script: counters, deadlines, records."""
        base = self.base(account_id)
        return [f"{base}:n", f"{base}:live", f"{base}:calls"]

    def window(self, account_id: str, field: str) -> str:
        return f"{self.base(account_id)}:{field}"

    def steering(self, call_id: str) -> str:
        return f"{self.prefix}:call:{{{call_id}}}"

    def account_of(self, key: str) -> str | None:
        head = f"{self.prefix}:{{"
        if not key.startswith(head) or "}" not in key:
            return None
        return key[len(head) : key.index("}", len(head))]


@dataclass(frozen=True)
class LiveCounters:
    account_id: str
    counters: dict[str, int]  # field -> calls holding it
    calls: int  # calls held in this account's slot
    windows: dict[str, int]  # window field -> admitted calls inside its period


class AdmissionStore:
    """Admission for every worker and node sharing one Redis (or Redis Cluster)."""

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "sipio:cac",
        ttl: float = 7200.0,
        node: str = "",
        backoff: float = 1.0,
        purge_batch: int = 32,
    ) -> None:
        if " " in node or "\n" in node:
            raise ValueError("node names must not contain spaces")
        self.redis = client
        self.keys = Keys(prefix)
        self.ttl_ms = int(ttl * 1000)
        self.node = node
        self.backoff = backoff
        self.purge_batch = purge_batch
        self._off_until = float("-inf")

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> AdmissionStore:
        """For a Kamailio worker: create it after fork (one connection per worker)."""
        return cls(worker_redis(url), **kw)

    # -- admission -------------------------------------------------------------------------------
    def admit(self, facts: CallFacts, book: LimitBook, *, policy: Policy | None = None) -> Decision:
        """Plan the call against ``book`` and decide it; ``policy`` defaults to the account's."""
        return self.admit_plan(plan(facts, book), policy or book.policy(facts.account_id))

    def admit_plan(self, call: Plan, policy: Policy = "open") -> Decision:
        if self._skipping():
            return outage_decision(call, policy, "Redis skipped after a recent failure")
        try:
            pipe = self.redis.pipeline(transaction=False)
            script, keys, args = first = self._admit_args(call, call.groups[0])
            script.queue(pipe, keys, args)
            steering = self.keys.steering(call.call_id)
            pipe.set(steering, " ".join(g.account_id for g in call.groups), px=self.ttl_ms)
            replies = run_pipeline(self.redis, pipe, {0: first})
            decision = self._decide(call, policy, replies[0])
            if not decision.admitted and not decision.held:
                self.redis.delete(steering)
            return decision
        except redis.RedisError as exc:
            return self._outage(call, policy, exc)

    def admit_many(self, calls: Sequence[Plan], policy: Policy = "open") -> list[Decision]:
        """Several admissions in one pipeline (one round trip for all single-group calls)."""
        if self._skipping():
            return [
                outage_decision(c, policy, "Redis skipped after a recent failure") for c in calls
            ]
        try:
            pipe = self.redis.pipeline(transaction=False)
            scripts = {}
            for index, call in enumerate(calls):
                script, keys, args = scripts[2 * index] = self._admit_args(call, call.groups[0])
                script.queue(pipe, keys, args)
                pipe.set(
                    self.keys.steering(call.call_id),
                    " ".join(g.account_id for g in call.groups),
                    px=self.ttl_ms,
                )
            replies = run_pipeline(self.redis, pipe, scripts)
            decisions = [self._decide(c, policy, replies[2 * i]) for i, c in enumerate(calls)]
            dropped = [d.call_id for d in decisions if not d.admitted and not d.held]
            if dropped:
                self.redis.delete(*(self.keys.steering(c) for c in dropped))
            return decisions
        except redis.RedisError as exc:
            return [self._outage(c, policy, exc) for c in calls]

    def _admit_args(self, call: Plan, group: Group) -> tuple[Lua, list[str], list[Any]]:
        keys = self.keys.account(group.account_id)
        keys += [self.keys.window(group.account_id, d.field) for d in group.windows]
        args: list[Any] = [
            call.call_id,
            self.ttl_ms,
            self.node,
            len(group.counters),
            self.purge_batch,
        ]
        for d in group.counters:
            args += [d.field, -1 if d.limit is None else d.limit]
        for d in group.windows:
            args += [d.field, d.limit if d.limit is not None else 0, d.period_ms, int(d.hard)]
        return ADMIT, keys, args

    def _decide(self, call: Plan, policy: Policy, reply: Any) -> Decision:
        """Read the script's reply; a call spanning more slots takes the others in turn, and
        a rejection in a later slot gives back what the earlier ones took."""
        counts: list[Count] = []
        soft: list[Dimension] = []
        held: list[tuple[Held, int]] = []  # (holding after the script, fields held before)
        expired = 0
        for index, group in enumerate(call.groups):
            if index:
                script, keys, args = self._admit_args(call, group)
                reply = script(self.redis, keys, args)
            dims = group.dimensions
            ok, failing, retry_ms, gone = (int(x) for x in reply[:4])
            fields, before = tuple(text(reply[4]).split()), int(reply[5])
            counts += [
                Count(d, int(v)) for d, v in zip(dims, reply[6 : 6 + len(dims)], strict=True)
            ]
            soft += [dims[int(i) - 1] for i in reply[6 + len(dims) :]]
            expired += gone
            if not ok:
                self._untake(call.call_id, [(h.account_id, h.fields[n:]) for h, n in held])
                kept = [Held(h.account_id, h.fields[:n]) for h, n in held]
                kept.append(Held(group.account_id, fields))
                return Decision(
                    call.call_id,
                    call.account_id,
                    False,
                    policy,
                    tuple(counts),
                    dims[failing - 1],
                    retry_ms,
                    held=tuple(h for h in kept if h.fields),
                    expired=expired,
                )
            held.append((Held(group.account_id, fields), before))
        return Decision(
            call.call_id,
            call.account_id,
            True,
            policy,
            tuple(counts),
            soft_exceeded=tuple(soft),
            held=tuple(h for h, _ in held),
            expired=expired,
        )

    def _untake(self, call_id: str, taken: list[tuple[str, tuple[str, ...]]]) -> None:
        """Give back exactly these fields of a call (a later slot rejected it)."""
        for account, fields in taken:
            if fields:
                keys = self.keys.account(account)
                keys += [self.keys.window(account, f) for f in fields if f.startswith("w:")]
                UNTAKE(self.redis, keys, [call_id, *fields])

    # -- end of a call ---------------------------------------------------------------------------
    def accounts_of(self, call_id: str) -> list[str]:
        value = self.redis.get(self.keys.steering(call_id))
        return text(value).split() if value else []

    def _each_owner(
        self,
        call_id: str,
        accounts: Iterable[str] | str | None,
        script: Lua,
        args: list[Any],
        then: Callable[[Pipeline], Any],
    ) -> bool:
        """Run ``script`` for the call in every account holding it, plus ``then`` on the
        steering key, in one pipelined round trip; True when any account held the call."""
        owners = self._owners(call_id, accounts)
        if not owners:
            return False
        pipe = self.redis.pipeline(transaction=False)
        scripts = {}
        for index, account in enumerate(owners):
            keys = self.keys.account(account)
            script.queue(pipe, keys, args)
            scripts[index] = (script, keys, args)
        then(pipe)
        replies = run_pipeline(self.redis, pipe, scripts)
        return any(int(r) for r in replies[: len(owners)])

    def release(self, call_id: str, *, accounts: Iterable[str] | str | None = None) -> bool:
        """Give back everything the call holds (dialog end, failure, cancel). True when it held
        anything. ``accounts`` (or a decision ``token``) saves the steering lookup."""

        steering = self.keys.steering(call_id)
        return self._quietly(
            "release",
            lambda: self._each_owner(
                call_id, accounts, RELEASE, [call_id], lambda p: p.delete(steering)
            ),
            False,
        )

    def refresh(self, call_id: str, *, accounts: Iterable[str] | str | None = None) -> bool:
        """Push the call's deadline back (a dialog keep-alive). False when nothing is held."""

        steering, args = self.keys.steering(call_id), [self.ttl_ms, call_id]
        return self._quietly(
            "refresh",
            lambda: self._each_owner(
                call_id, accounts, REFRESH, args, lambda p: p.pexpire(steering, self.ttl_ms)
            ),
            False,
        )

    def _owners(self, call_id: str, accounts: Iterable[str] | str | None) -> list[str]:
        if isinstance(accounts, str):  # a decision token
            return [h.account_id for h in decode_held(accounts)]
        return list(accounts) if accounts is not None else self.accounts_of(call_id)

    # -- reading and operator reset ----------------------------------------------------------------
    def live(self, account_id: str, periods: Mapping[str, int] | None = None) -> LiveCounters:
        """Counters of one account; ``periods`` (rule id -> period_sec) trims windows to their
        period, else every entry still stored is counted."""
        n, live, _ = self.keys.account(account_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(n)
        pipe.zcard(live)
        counters, calls = pipe.execute()
        sec, usec = self.redis.time()
        now_ms = int(sec) * 1000 + int(usec) // 1000
        windows: dict[str, int] = {}
        for key in self._window_keys(account_id):
            field = key[len(self.keys.base(account_id)) + 1 :]
            period = (periods or {}).get(field.split(":")[1])
            low = now_ms - period * 1000 if period else "-inf"
            windows[field] = int(self.redis.zcount(key, f"({low}" if period else low, "+inf"))
        return LiveCounters(
            account_id,
            {text(k): int(v) for k, v in counters.items()},
            int(calls),
            {k: v for k, v in sorted(windows.items()) if v},
        )

    def _window_keys(self, account_id: str) -> list[str]:
        pattern = self.keys.window(account_id, "w:*")
        return sorted(text(k) for k in self.redis.scan_iter(match=pattern, count=500))

    def clear(self, account_id: str) -> int:
        """Forget every counter, call record and window of the account (operator force-clear).
        Calls up now are no longer counted; their release becomes a no-op. Returns the number
        of calls forgotten."""
        keys = [*self.keys.account(account_id), *self._window_keys(account_id)]
        calls = int(self.redis.zcard(keys[1]))
        self.redis.delete(*keys)
        return calls

    # -- outage ----------------------------------------------------------------------------------
    def _skipping(self) -> bool:
        return time.monotonic() < self._off_until

    def _failed(self, what: str, exc: Exception) -> None:
        self._off_until = time.monotonic() + self.backoff
        log.warning("admission: Redis %s failed, skipping it for %ss: %s", what, self.backoff, exc)

    def _outage(self, call: Plan, policy: Policy, exc: Exception) -> Decision:
        self._failed("admit", exc)
        decision = outage_decision(call, policy, f"{type(exc).__name__}: {exc}")
        log.warning(
            "admission of %s in %s decided without Redis (fail-%s): %s",
            call.call_id,
            call.account_id,
            policy,
            "admitted" if decision.admitted else "rejected",
        )
        return decision

    def _quietly(self, what: str, op: Callable[[], T], default: T) -> T:
        if self._skipping():
            return default
        try:
            return op()
        except redis.RedisError as exc:
            self._failed(what, exc)
            return default
