"""The ACD in Redis: queues, callers, leases and agent counters of an account, kept consistent
with agent presence by writing both in one atomic step.

Keys (``B`` = ``<prefix>:{<account>}``, all in the account's slot, like presence)::

    B:q:<queue>   zset    call id -> enqueue ms (every waiting caller, ringing or not)
    B:calls       hash    call id -> caller JSON (``core.acd.Caller``: queue, enqueued,
                          deadline, offering, lease_until, max_no_answer)
    B:leases      zset    call id -> lease end ms (callers ringing agents now)
    B:due         zset    call id -> deadline ms (max_wait_sec + grace: nobody drives it)
    B:stats       hash    "<user>:idle_since" ms, "<user>:calls" answered queue calls
    B:rr          hash    queue id -> round-robin counter
    B:ver         string  bumped by every ACD write
    B:cb          zset    call id -> enqueue ms: the callers of ``B:calls`` waiting for a
                          courtesy callback (the dialer's work list, esl/callbacks.py)
    B:answered:<call>  string  the agent who answered (PX 24 h): a repeated ``answered``
                          after the call ended is recognised, not refused

(The callers are one hash and the counters one hash, rather than a key per call or queue,
so that every key a script touches is named in its KEYS, as Redis Cluster requires.)

Every operation reads a snapshot (agents, the queues it needs, ringing callers, counters and
Redis' clock) in one script, decides on a ``core.acd.Board`` in Python with the presence rules,
then commits with one compare-and-set script: it applies only if no ACD write happened since
(``B:ver``) and every agent it changes is still what was read (presence writes from the API
and the SIP feed change agents without touching ``B:ver``). The same script writes the
agents, their presence log entries, the queue state and the queue events; on a conflict the
operation is read and decided again. Leases that ran out and callers past their deadline are
swept by the first operation that reads them.

Events go to the stream ``sipio:events`` (field ``e``) in the same script. A Redis Cluster
cannot write that key from a script in the account's slot: with a cluster client the events
go to ``B:events`` instead, a stream per account (give it to the collector's
``event_streams``).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from redis.cluster import RedisCluster

from control.core.acd import (
    AcdError,
    Board,
    Caller,
    Join,
    NeedQueues,
    NotOffered,
    Offer,
    QueueConfig,
    QueueView,
    Waiting,
)
from control.core.presence import Agent
from control.live.client import Lua, RedisClient, text, worker_redis
from control.live.presence import PresenceStore

T = TypeVar("T")

__all__ = [
    "AcdConflict",
    "AcdError",
    "AcdStore",
    "Join",
    "NotOffered",
    "Offer",
    "Waiting",
]

# KEYS: ver, agents, calls, leases, due, stats, rr, queues..., the answer mark of each call.
# ARGV: whole queues (1) or only their first #leases+1 callers (0), #queues, call ids...
# Reply: {sec, usec, ver, agents, leases, stats, rr, {size, members}..., records, ranks,
#         answered (call id, user id)...}
_SNAPSHOT = Lua("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nq = tonumber(ARGV[2])
local leases = redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES')
local stop = (ARGV[1] == '1') and -1 or math.floor(#leases / 2)
local queues = {}
for i = 8, 7 + nq do
  queues[#queues + 1] = {redis.call('ZCARD', KEYS[i]),
                         redis.call('ZRANGE', KEYS[i], 0, stop, 'WITHSCORES')}
end
local ids, seen = {}, {}
local function want(id) if not seen[id] then seen[id] = true; ids[#ids + 1] = id end end
for i = 1, #leases, 2 do want(leases[i]) end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, 100)) do
  want(id)
end
for i = 3, #ARGV do want(ARGV[i]) end
local records, ranks, answered = {}, {}, {}
for _, id in ipairs(ids) do
  local rec = redis.call('HGET', KEYS[3], id)
  if rec then records[#records + 1] = id; records[#records + 1] = rec end
end
for i = 3, #ARGV do
  if nq > 0 then
    local r = redis.call('ZRANK', KEYS[8], ARGV[i])
    if r then ranks[#ranks + 1] = ARGV[i]; ranks[#ranks + 1] = r end
  end
  local by = redis.call('GET', KEYS[5 + nq + i])
  if by then answered[#answered + 1] = ARGV[i]; answered[#answered + 1] = by end
end
return {t[1], t[2], redis.call('GET', KEYS[1]) or '0', redis.call('HGETALL', KEYS[2]), leases,
        redis.call('HGETALL', KEYS[6]), redis.call('HGETALL', KEYS[7]), queues, records, ranks,
        answered}
""")

# KEYS: ver, agents, presence log, calls, leases, due, stats, rr, events, callbacks, queues...,
# answer marks of the calls answered...
# ARGV: expected ver, plan JSON (every number a string). Reply: 1 written, 0 conflict.
_COMMIT = Lua("""
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
local plan = cjson.decode(ARGV[2])
for _, a in ipairs(plan.agents) do
  if (redis.call('HGET', KEYS[2], a[1]) or '') ~= a[2] then return 0 end
end
for _, a in ipairs(plan.agents) do redis.call('HSET', KEYS[2], a[1], a[3]) end
for _, e in ipairs(plan.log) do
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', plan.maxlen, '*', 'e', e)
end
for _, c in ipairs(plan.put) do
  redis.call('HSET', KEYS[4], c[1], c[2])
  if c[3] == '' then redis.call('ZREM', KEYS[5], c[1])
  else redis.call('ZADD', KEYS[5], c[3], c[1]) end
  redis.call('ZADD', KEYS[6], c[4], c[1])
  if c[5] == '' then redis.call('ZREM', KEYS[10], c[1])
  else redis.call('ZADD', KEYS[10], c[5], c[1]) end
end
for _, c in ipairs(plan.drop) do
  redis.call('HDEL', KEYS[4], c)
  redis.call('ZREM', KEYS[5], c)
  redis.call('ZREM', KEYS[6], c)
  redis.call('ZREM', KEYS[10], c)
end
for _, q in ipairs(plan.enqueue) do redis.call('ZADD', KEYS[tonumber(q[1])], q[2], q[3]) end
for _, q in ipairs(plan.dequeue) do redis.call('ZREM', KEYS[tonumber(q[1])], q[2]) end
for _, s in ipairs(plan.stats) do redis.call('HSET', KEYS[7], s[1], s[2]) end
for _, r in ipairs(plan.rr) do redis.call('HSET', KEYS[8], r[1], r[2]) end
for _, e in ipairs(plan.events) do redis.call('XADD', KEYS[9], '*', 'e', e) end
for _, a in ipairs(plan.answered) do
  redis.call('SET', KEYS[tonumber(a[1])], a[2], 'PX', plan.answered_ttl)
end
redis.call('INCR', KEYS[1])
return 1
""")


class AcdConflict(Exception):
    """The account's ACD state kept changing under us; nothing was written."""


class AcdStore:
    """ACD decisions for every controller sharing one Redis (or Redis Cluster)."""

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "sipio:acd",
        presence_prefix: str = "sipio:presence",
        stream: str = "sipio:events",
        grace_sec: float = 30.0,
        lease_grace_sec: float = 2.0,
        answered_ttl_sec: float = 86_400.0,
        log_maxlen: int = 100_000,
        attempts: int = 50,
        rand: random.Random | None = None,
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.presence = PresenceStore(client, prefix=presence_prefix, log_maxlen=log_maxlen)
        self.stream = stream
        self.grace_ms = int(grace_sec * 1000)
        self.lease_grace_ms = int(lease_grace_sec * 1000)
        self.answered_ttl_ms = int(answered_ttl_sec * 1000)
        self.log_maxlen = log_maxlen
        self.attempts = attempts
        self.rand = rand or random.Random()
        self._cluster = isinstance(client, RedisCluster)
        self._queues: dict[str, set[str]] = {}  # account -> queues tier order needed before
        self.retries = 0  # snapshots decided again after a conflicting write

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> AcdStore:
        """A client with short timeouts and no retry, like every live-state adapter's."""
        return cls(worker_redis(url, timeout=1.0), **kw)

    # -- keys -----------------------------------------------------------------------------------
    def base(self, account_id: str) -> str:
        return f"{self.prefix}:{{{account_id}}}"

    def queue_key(self, account_id: str, queue_id: str) -> str:
        return f"{self.base(account_id)}:q:{queue_id}"

    @property
    def callback_registry(self) -> str:
        """zset account -> last callback request ms (esl/callbacks.py)."""
        return f"{self.prefix}:callbacks"

    def answer_key(self, account_id: str, call_id: str) -> str:
        return f"{self.base(account_id)}:answered:{call_id}"

    def events_key(self, account_id: str) -> str:
        return f"{self.base(account_id)}:events" if self._cluster else self.stream

    def _keys(self, account_id: str) -> dict[str, str]:
        base = self.base(account_id)
        names = ("ver", "calls", "leases", "due", "stats", "rr", "cb")
        return {name: f"{base}:{name}" for name in names}

    # -- the read-decide-commit loop -------------------------------------------------------------
    def _snapshot(
        self,
        account_id: str,
        queue_ids: Sequence[str],
        call_ids: Sequence[str] = (),
        whole: bool = False,
    ) -> tuple[str, dict[str, str], Board]:
        k = self._keys(account_id)
        keys = [k["ver"], self.presence.agents_key(account_id), k["calls"], k["leases"]]
        keys += [k["due"], k["stats"], k["rr"]]
        keys += [self.queue_key(account_id, q) for q in queue_ids]
        keys += [self.answer_key(account_id, c) for c in call_ids]
        args = ["1" if whole else "0", len(queue_ids), *call_ids]
        reply = _SNAPSHOT(self.redis, keys, args)
        sec, usec, ver, agents_raw, _leases, stats, rr, queues, records, ranks, answered = reply
        raw = {text(agents_raw[i]): text(agents_raw[i + 1]) for i in range(0, len(agents_raw), 2)}
        views = {}
        for queue_id, (size, members) in zip(queue_ids, queues, strict=True):
            head = tuple(
                (text(members[i]), int(float(members[i + 1]))) for i in range(0, len(members), 2)
            )
            views[queue_id] = QueueView(int(size), head)
        board = Board(
            account_id=account_id,
            now=int(sec) * 1000 + int(usec) // 1000,
            agents={uid: Agent.from_json(json.loads(v)) for uid, v in raw.items()},
            callers={
                text(records[i]): Caller.from_json(text(records[i]), json.loads(records[i + 1]))
                for i in range(0, len(records), 2)
            },
            queues=views,
            ranks={text(ranks[i]): int(ranks[i + 1]) for i in range(0, len(ranks), 2)},
            stats={text(stats[i]): int(stats[i + 1]) for i in range(0, len(stats), 2)},
            rotation={text(rr[i]): int(rr[i + 1]) for i in range(0, len(rr), 2)},
            answered_by={
                text(answered[i]): text(answered[i + 1]) for i in range(0, len(answered), 2)
            },
            grace_ms=self.grace_ms,
            lease_grace_ms=self.lease_grace_ms,
        )
        return text(ver), raw, board

    def _commit(self, ver: str, raw: Mapping[str, str], board: Board) -> bool:
        account_id = board.account_id
        k = self._keys(account_id)
        queue_ids = sorted({q for q, _, _ in board.enqueued} | {q for q, _ in board.dequeued})
        first = 11
        index = {q: str(first + i) for i, q in enumerate(queue_ids)}
        plan = {
            "agents": [
                [uid, raw.get(uid, ""), _dumps(board.agents[uid].to_json())]
                for uid in sorted(board.agents_changed)
            ],
            "log": [_dumps(entry) for entry in board.log],
            "maxlen": str(self.log_maxlen),
            "put": [
                [
                    c.call_id,
                    _dumps(c.to_json()),
                    "" if not c.offering else str(c.lease_until),
                    str(c.deadline),
                    "" if c.callback is None else str(c.enqueued),
                ]
                for c in (board.callers[cid] for cid in sorted(board.callers_changed))
            ],
            "drop": sorted(board.callers_removed),
            "enqueue": [[index[q], str(ms), cid] for q, ms, cid in board.enqueued],
            "dequeue": [[index[q], cid] for q, cid in board.dequeued],
            "stats": [[f, str(board.stats[f])] for f in sorted(board.stats_changed)],
            "rr": [[q, str(board.rotation[q])] for q in sorted(board.rotation_changed)],
            "events": [_dumps(e) for e in board.events],
            "answered": [
                [str(first + len(queue_ids) + i), uid] for i, (_, uid) in enumerate(board.answers)
            ],
            "answered_ttl": str(self.answered_ttl_ms),
        }
        keys = [k["ver"], self.presence.agents_key(account_id), self.presence.log_key(account_id)]
        keys += [k["calls"], k["leases"], k["due"], k["stats"], k["rr"]]
        keys += [self.events_key(account_id), k["cb"]]
        keys += [self.queue_key(account_id, q) for q in queue_ids]
        keys += [self.answer_key(account_id, cid) for cid, _ in board.answers]
        return bool(int(_COMMIT(self.redis, keys, [ver, _dumps(plan)])))

    def _run(
        self,
        account_id: str,
        queue_ids: Sequence[str],
        call_ids: Sequence[str],
        decide: Callable[[Board], T],
        *,
        sweep: bool = True,
    ) -> T:
        """Snapshot, ``decide(board)``, commit; again from a fresh snapshot on a conflict."""
        wanted = list(dict.fromkeys([*queue_ids, *sorted(self._queues.get(account_id, ()))]))
        for attempt in range(self.attempts):
            ver, raw, board = self._snapshot(account_id, wanted, call_ids)
            try:
                if sweep:
                    board.sweep()
                result = decide(board)
            except NeedQueues as need:
                self._queues.setdefault(account_id, set()).update(need.queue_ids)
                wanted = list(dict.fromkeys([*wanted, *sorted(need.queue_ids)]))
                continue
            if not board.changed or self._commit(ver, raw, board):
                return result
            self.retries += 1
            time.sleep(self.rand.uniform(0, 0.001 * min(attempt + 1, 10)))
        raise AcdConflict(f"account {account_id}: ACD state kept changing; gave up")

    # -- operations -----------------------------------------------------------------------------
    def join(
        self,
        cfg: QueueConfig,
        call_id: str,
        memberships: Mapping[str, Any] | None = None,
    ) -> Join:
        """The caller joins the queue, or takes a join-time exit (``Join.exit``). A call
        already waiting keeps its place and enqueue time (``rejoined``). ``memberships``
        (user id -> the queue's agent assignment), when given, limits the agents counted
        ready to those assigned to the queue."""
        members = None if memberships is None else set(memberships)
        return self._run(
            cfg.account_id, [cfg.id], [call_id], lambda b: b.join(cfg, call_id, members)
        )

    def offer(
        self, cfg: QueueConfig, call_id: str, positions: Mapping[str, int] | None = None
    ) -> Offer | None:
        """Ring agents for the caller if it heads its queue and an agent is ready; None when
        not (call again when an agent frees up). An offer already ringing is returned as is.
        ``positions``: user id -> agent_queue_assignment.position (top_down, round_robin)."""
        return self._run(
            cfg.account_id,
            [cfg.id],
            [call_id],
            lambda b: b.offer(cfg, call_id, positions, self.rand),
        )

    def answered(self, cfg: QueueConfig, call_id: str, user_id: str) -> None:
        """The agent took the call. Raises ``NotOffered`` when the agent is not ringing for
        it (its lease was swept, or another ring-all agent answered first). Repeating it after
        it was recorded changes nothing."""
        self._run(cfg.account_id, [cfg.id], [call_id], lambda b: b.answered(cfg, call_id, user_id))

    def missed(
        self, cfg: QueueConfig, call_id: str, user_ids: Collection[str] | None = None
    ) -> tuple[str, ...]:
        """Agents still ringing for the call (all, or only ``user_ids``: one who declined)
        missed it; the caller keeps its place. Returns the agents released."""
        return self._run(
            cfg.account_id, [cfg.id], [call_id], lambda b: b.missed(cfg, call_id, user_ids)
        )

    def finished(self, cfg: QueueConfig, call_id: str, user_id: str) -> None:
        """The agent's queue call ended: wrap-up for the queue's wrap_up_sec. Idempotent."""
        self._run(cfg.account_id, [], [], lambda b: b.finished(cfg, call_id, user_id))

    def leave(self, cfg: QueueConfig, call_id: str, reason: str) -> None:
        """The caller leaves without an agent (abandon, hangup, timeout, no_agents, route,
        callback); agents ringing for it are released without a miss. Idempotent."""
        self._run(cfg.account_id, [cfg.id], [call_id], lambda b: b.leave(cfg, call_id, reason))

    def callback(
        self, cfg: QueueConfig, call_id: str, dial: str, window_sec: float
    ) -> Waiting | None:
        """The waiting caller will be called back on ``dial``: it keeps its place and joins
        the account's callback list (``B:cb``); None when it was not waiting."""
        window = int(window_sec * 1000)
        waiting = self._run(
            cfg.account_id, [cfg.id], [call_id], lambda b: b.callback(cfg, call_id, dial, window)
        )
        if waiting is not None:  # the dialers look at the accounts listed here
            self.redis.zadd(self.callback_registry, {cfg.account_id: int(time.time() * 1000)})
        return waiting

    def requeue_callback(
        self, cfg: QueueConfig, call_id: str, dial: str, attempts: int, window_sec: float
    ) -> bool:
        """The callback waits again (at the back) after ``attempts`` tries that did not reach
        the caller. Its answer mark goes first: the next answer is a new one."""
        self.redis.delete(self.answer_key(cfg.account_id, call_id))
        window = int(window_sec * 1000)
        return self._run(
            cfg.account_id,
            [cfg.id],
            [call_id],
            lambda b: b.requeue_callback(cfg, call_id, dial, attempts, window),
        )

    def cancel_callback(self, cfg: QueueConfig, call_id: str) -> bool:
        """Withdraw a callback waiting in the queue, or one waiting for its next try; False
        when there is none. ``AcdError`` while it is being placed or talked."""
        if self._run(
            cfg.account_id, [cfg.id], [call_id], lambda b: b.cancel_callback(cfg, call_id)
        ):
            return True
        key = f"{self.base(cfg.account_id)}:cbstate"
        raw = self.redis.hget(key, call_id)
        if raw is None:
            return False
        if json.loads(raw).get("phase") != "retry":
            raise AcdError(f"callback {call_id} is being placed")
        return bool(self.redis.hdel(key, call_id))

    def callbacks(self, account_id: str) -> list[Caller]:
        """The account's callers waiting for a callback, longest waiting first."""
        k = self._keys(account_id)
        ids = [text(c) for c in self.redis.zrange(k["cb"], 0, -1)]
        if not ids:
            return []
        records = self.redis.hmget(k["calls"], ids)
        return [
            Caller.from_json(cid, json.loads(rec))
            for cid, rec in zip(ids, records, strict=True)
            if rec is not None
        ]

    def sweep(self, account_id: str) -> int:
        """Misses for rings whose lease ran out, timeouts for callers nobody drives."""
        return self._run(account_id, [], [], lambda b: b.sweep(), sweep=False)

    # -- reads ----------------------------------------------------------------------------------
    def waiting(self, cfg: QueueConfig, call_id: str) -> Waiting | None:
        _, _, board = self._snapshot(cfg.account_id, [cfg.id], [call_id])
        return board.waiting(cfg, call_id)

    def offerable(self, account_id: str, queue_id: str, limit: int = 64) -> frozenset[str] | None:
        """The callers ``offer`` could pick now: it offers only the longest waiting caller
        not already ringing agents, so only the first (rings in progress + 1) callers of the
        queue can be it. One round trip (``ZCARD`` of the leases, ``ZRANGE`` of the queue)
        instead of an offer's snapshot of every agent; None when more than ``limit`` ring."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(f"{self.base(account_id)}:leases")
        pipe.zrange(self.queue_key(account_id, queue_id), 0, limit - 1)
        ringing, first = pipe.execute()
        if int(ringing) + 1 > limit:
            return None
        return frozenset(text(c) for c in first[: int(ringing) + 1])

    def viable_agents(self, account_id: str, queue_id: str) -> int:
        """Agents logged in, reachable and seated in the queue: 0 is the `no_agents` exit."""
        agents = self.presence.agents(account_id).values()
        return sum(
            1
            for a in agents
            if a.logged_in and a.reachable and any(s.queue_id == queue_id for s in a.queues)
        )

    def live(self, account_id: str, queue_id: str) -> dict[str, Any]:
        """The queue now, for the API and the wallboard."""
        _, _, board = self._snapshot(account_id, [queue_id], whole=True)
        view = board.queues[queue_id]
        records = dict(board.callers)
        missing = [c for c, _ in view.head if c not in records]
        if missing:  # callers not ringing: their records say which wait for a callback
            raw = self.redis.hmget(self._keys(account_id)["calls"], missing)
            records |= {
                c: Caller.from_json(c, json.loads(r))
                for c, r in zip(missing, raw, strict=True)
                if r is not None
            }
        callers: list[dict[str, Any]] = []
        for rank, (call_id, enqueued) in enumerate(view.head):
            caller = records.get(call_id)
            callers.append(
                {
                    "callId": call_id,
                    "position": rank + 1,
                    "waitedMs": max(0, board.now - enqueued),
                    "offering": list(caller.offering) if caller else [],
                    "callback": bool(caller and caller.callback),
                }
            )
        offering = sorted({u for c in callers for u in c["offering"]})
        return {
            "queueId": queue_id,
            "accountId": account_id,
            "waiting": view.size,
            "longestWaitMs": callers[0]["waitedMs"] if callers else 0,
            "callers": callers,
            "offering": offering,
            "readyAgents": board.ready(queue_id),
            "viableAgents": board.viable(queue_id),
            "now": board.now,
        }

    def events(self, account_id: str, count: int = 1000) -> list[dict[str, Any]]:
        """The latest queue events of the account on its stream, oldest first."""
        rows: list[Any] = self.redis.xrevrange(self.events_key(account_id), count=count) or []
        out = []
        for _, fields in reversed(rows):
            event = json.loads(fields[b"e"])
            if event.get("account_id") == account_id and event.get("emitter") == "acd":
                out.append(event)
        return out


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)
