"""Agent presence in Redis: the agents of an account and their event log.

    <prefix>:{<account>}:agents   hash    user id -> agent (JSON of ``core.presence.Agent``)
    <prefix>:{<account>}:log      stream  one entry per transition, field ``e`` = JSON

Events for one agent can arrive at once from the API (login), Kamailio (REGISTER) and the ACD
(offer): each write is a compare-and-set script that only applies if the agent is still what
was read, and appends the log entries in the same step, so the log never disagrees with the
state. The rules live in ``control.core.presence``; the clock is Redis' own.
"""

from __future__ import annotations

import json
from typing import Any

from control.core.presence import Agent, Event, Profile, Transition, apply, settle
from control.live.client import Lua, RedisClient, text

# KEYS: agents, log. ARGV: user id, expected JSON ('' = absent), new JSON, maxlen, entries...
_CAS = Lua("""
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
for i = 5, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[i])
end
return 1
""")


# The agent and Redis' clock in one round trip (a cluster pipeline cannot carry TIME).
_READ = Lua("return {redis.call('HGET', KEYS[1], ARGV[1]) or '', redis.call('TIME')}")
NO_PROFILE = Profile()


class PresenceConflict(Exception):
    """The agent kept changing under us; the event was not applied."""


class PresenceStore:
    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "sipio:presence",
        log_maxlen: int = 100_000,
        attempts: int = 20,
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.log_maxlen = log_maxlen
        self.attempts = attempts

    def agents_key(self, account_id: str) -> str:
        return f"{self.prefix}:{{{account_id}}}:agents"

    def log_key(self, account_id: str) -> str:
        return f"{self.prefix}:{{{account_id}}}:log"

    def now(self) -> int:
        sec, usec = self.redis.time()
        return int(sec) * 1000 + int(usec) // 1000

    def get(self, account_id: str, user_id: str) -> Agent:
        raw = self.redis.hget(self.agents_key(account_id), user_id)
        return Agent.from_json(json.loads(raw)) if raw else Agent(user_id)

    def agents(self, account_id: str) -> dict[str, Agent]:
        """Every agent with stored presence (an agent never seen is offline, unreachable)."""
        raw = self.redis.hgetall(self.agents_key(account_id))
        return {text(k): Agent.from_json(json.loads(v)) for k, v in raw.items()}

    def apply(
        self, account_id: str, user_id: str, event: Event, profile: Profile | None = None
    ) -> Transition:
        """Apply ``event`` atomically; raises ``core.presence.PresenceError`` when the rules
        refuse it. A wrap-up that ran out is closed first, and logged at its end time."""
        keys = [self.agents_key(account_id), self.log_key(account_id)]
        for _ in range(self.attempts):
            stored, (sec, usec) = _READ(self.redis, keys[:1], [user_id])
            raw = text(stored)
            now = int(sec) * 1000 + int(usec) // 1000
            agent = Agent.from_json(json.loads(raw)) if raw else Agent(user_id)
            steps = []
            settled = settle(agent, now)
            if settled is not None:
                steps.append(settled)
                agent = settled.after
            transition = apply(agent, event, profile or NO_PROFILE, now)
            if transition.changed:
                steps.append(transition)
            if not steps:
                return transition
            entries = [_dumps(step.log_entry()) for step in steps]
            args = [
                user_id,
                raw,
                _dumps(transition.after.to_json()),
                self.log_maxlen,
                *entries,
            ]
            if int(_CAS(self.redis, keys, args)):
                return transition
        raise PresenceConflict(f"agent {user_id} changed {self.attempts} times while applying")

    def log(self, account_id: str, count: int = 100) -> list[dict[str, Any]]:
        """The latest ``count`` log entries, oldest first."""
        rows: list[Any] = self.redis.xrevrange(self.log_key(account_id), count=count) or []
        return [json.loads(fields[b"e"]) | {"id": text(entry)} for entry, fields in reversed(rows)]


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)
