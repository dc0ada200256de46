"""Decision events of one worker to Redis (stream ``sipio:events``), one pipelined write per
request. Redis trouble never blocks a call: short timeouts, and the event is logged instead."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from control.secrets import REDACTOR

STREAM = "sipio:events"


class EventSink:
    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self._client: redis.Redis | None = None  # per worker, after fork
        self.pending: list[str] = []  # serialised once: the same text is logged and written

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.redis_url, socket_timeout=0.2, socket_connect_timeout=0.2
            )
        return self._client

    def add(self, kind: str, call_id: str, **data: Any) -> str:
        """Queue an event for the next flush; returns its JSON text (for the log line)."""
        event = {"type": kind, "call_id": call_id, "ts": int(time.time() * 1000), **data}
        # Masked like a log line: a secret this worker resolved never reaches the stream.
        text = REDACTOR.text(json.dumps(event, default=str, separators=(",", ":")))
        self.pending.append(text)
        return text

    def flush(self) -> str | None:
        """Write what was added; returns an error text instead of raising."""
        if not self.pending:
            return None
        events, self.pending = self.pending, []
        try:
            pipe = self._redis().pipeline(transaction=False)
            for event in events:
                # No MAXLEN: an unread event must never be trimmed; the collector trims what
                # every consumer group has acknowledged.
                pipe.xadd(STREAM, {"e": event})
            pipe.execute()
        except redis.RedisError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
