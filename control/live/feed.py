"""Reachability from the registrar: Kamailio publishes ``register`` / ``unregister`` events on
``sipio:events``; this feed applies them to presence off the call path (a REGISTER costs
Kamailio one Redis write, never a presence script too). An unregister with ``reason:
expired`` (usrloc found a registration that ran out without a refresh) becomes ``expire``.
It reads through its own consumer group, so it never competes with the CDR collector, and
acknowledges what it applied."""

from __future__ import annotations

import json
from typing import Any

import redis

from control.core.presence import Expire, PresenceError, Register, Unregister
from control.live.presence import PresenceStore

STREAM = "sipio:events"
GROUP = "presence"
KINDS: dict[str, type[Register | Unregister]] = {"register": Register, "unregister": Unregister}


class PresenceFeed:
    def __init__(self, client: redis.Redis, consumer: str = "feed-1", stream: str = STREAM) -> None:
        self.redis = client
        self.store = PresenceStore(client)
        self.stream = stream
        self.consumer = consumer
        # Start at the stream's end: reachability before this start is rebuilt by the next
        # registrations (phones re-register well within their expiry).
        self._join("$")

    def _join(self, start: str) -> None:
        try:
            self.redis.xgroup_create(self.stream, GROUP, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run_once(self, block_ms: int = 1000) -> int:
        """Apply what arrived (own pending entries first); returns how many were applied."""
        try:
            return self._read(block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
        # Redis came back empty (restart without persistence, failover to an empty replica):
        # the stream holds only what was published since, so the new group reads it all.
        self._join("0")
        return self._read(block_ms)

    def _read(self, block_ms: int) -> int:
        applied = 0
        for start in ("0", ">"):
            reply: Any = self.redis.xreadgroup(
                GROUP, self.consumer, {self.stream: start}, count=500,
                block=None if start == "0" else block_ms,
            )  # fmt: skip
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    applied += self._apply(fields)
                    self.redis.xack(self.stream, GROUP, entry_id)
        return applied

    def _apply(self, fields: dict[bytes, bytes]) -> int:
        try:
            event = json.loads(fields.get(b"e", b"{}"))
        except ValueError:
            return 0
        kind = KINDS.get(event.get("type", ""))
        account, user = event.get("account_id"), event.get("user_id")
        if kind is None or not account or not user:
            return 0
        if kind is Unregister and event.get("reason") == "expired":
            kind = Expire
        try:
            self.store.apply(account, user, kind(device_id=str(event.get("device_id", ""))))
        except PresenceError:
            return 0  # e.g. an unregister of a device presence never saw: nothing to change
        return 1
