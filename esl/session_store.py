"""Flow sessions in Redis, so any controller process can take a call over after a crash.

One hash per call, in the account's hash slot: ``sipio:flow:{acc_…}:<sip call-id>`` with

* ``state``: the interpreter's ``SessionState`` JSON (pinned versions, variables, counters,
  buffered trace);
* ``pending``: the command sent to FreeSWITCH and not answered yet (re-issued on takeover);
* ``context``: the call's uuid, target and what the controller set on the channel;
* ``epoch`` / ``owner``: a fencing token. A controller that takes a call over bumps the epoch;
  a save carrying an older epoch is refused, so a controller that was only slow (not dead)
  learns it lost the call instead of overwriting its successor.

Writes are write-ahead: the state and the pending command are saved *before* the command runs.
Trace events are appended to ``sipio:events`` in the same pipeline, before the state that no
longer holds them: a crash in between repeats events (consumers dedupe on ``call_id`` +
``data.seq``) but never loses one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from control.core.flow import SessionState, TraceEvent

STREAM = "sipio:events"
STREAM_MAXLEN = 1_000_000
LIVE_TTL_MS = 6 * 3600 * 1000  # a live call refreshes it on every step
ENDED_TTL_MS = 10 * 60 * 1000  # long enough to answer a late reconnect with "it is over"

_SAVE = """
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if epoch ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'pending', ARGV[3], 'context', ARGV[4],
           'updated_ms', ARGV[5], 'owner', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return 1
"""

_CLAIM = """
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return epoch
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def session_key(account_id: str, call_id: str) -> str:
    return f"sipio:flow:{{{account_id}}}:{call_id}"


@dataclass
class SessionRecord:
    account_id: str
    call_id: str
    epoch: int
    owner: str
    state: SessionState | None
    pending: dict[str, Any] | None
    context: dict[str, Any] = field(default_factory=dict)


def flow_step_event(event: TraceEvent, call_id: str, account_id: str, node: str) -> dict[str, Any]:
    """The ``sipio:events`` entry of one trace event (the collector's ``call_events`` row)."""
    row = event.to_row(call_id, account_id)
    return {
        "type": "flow_step",
        "call_id": call_id,
        "ts": row["ts"],
        "account_id": account_id,
        "node_id": row["node_id"],
        "outcome": row["outcome"],
        "data": {**row["data"], "step": row["type"], "controller": node},
    }


class SessionStore:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        stream: str = STREAM,
        live_ttl_ms: int = LIVE_TTL_MS,
        ended_ttl_ms: int = ENDED_TTL_MS,
    ) -> None:
        self.redis = client
        self.stream = stream
        self.live_ttl_ms, self.ended_ttl_ms = live_ttl_ms, ended_ttl_ms

    @classmethod
    def from_url(cls, url: str, *, connections: int = 64, **options: Any) -> SessionStore:
        """A blocking pool: with thousands of calls, a step waits a moment for a connection
        instead of failing (redis-py's default pool raises "Too many connections")."""
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=connections, timeout=5.0,
            socket_timeout=2.0, socket_connect_timeout=2.0,
        )  # fmt: skip
        return cls(aioredis.Redis.from_pool(pool), **options)

    async def close(self) -> None:
        await self.redis.aclose()

    async def load(self, account_id: str, call_id: str) -> SessionRecord | None:
        raw = await self.redis.hgetall(session_key(account_id, call_id))
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        state = fields.get("state")
        pending = fields.get("pending")
        return SessionRecord(
            account_id=account_id,
            call_id=call_id,
            epoch=int(fields.get("epoch", "0")),
            owner=fields.get("owner", ""),
            state=SessionState.from_json(json.loads(state)) if state else None,
            pending=json.loads(pending) if pending else None,
            context=json.loads(fields.get("context") or "{}"),
        )

    async def claim(self, account_id: str, call_id: str, owner: str) -> int:
        """Become the call's controller; returns the epoch every later save must carry."""
        key = session_key(account_id, call_id)
        return int(await self.redis.eval(_CLAIM, 1, key, owner, self.live_ttl_ms))

    async def forget(self, account_id: str, call_id: str) -> None:
        """Drop a record that never got a state (the call could not start)."""
        await self.redis.delete(session_key(account_id, call_id))

    async def save(
        self,
        record: SessionRecord,
        events: Sequence[Mapping[str, Any]] = (),
    ) -> bool:
        """Append ``events`` to the stream, then store the record if we still own the call."""
        assert record.state is not None
        ended = record.state.ended and not record.pending
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            pipe.xadd(
                self.stream,
                {"e": json.dumps(event, separators=(",", ":"), default=str)},
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
        # EVAL, not a registered script: redis-py checks SCRIPT EXISTS before every pipeline
        # holding one, a second round trip per step; Redis caches the compiled body anyway.
        pipe.eval(
            _SAVE,
            1,
            session_key(record.account_id, record.call_id),
            record.epoch,
            json.dumps(record.state.to_json(), separators=(",", ":")),
            json.dumps(record.pending, separators=(",", ":")) if record.pending else "",
            json.dumps(record.context, separators=(",", ":")),
            int(time.time() * 1000),
            record.owner,
            self.ended_ttl_ms if ended else self.live_ttl_ms,
        )
        results = await pipe.execute()
        return bool(results[-1])
