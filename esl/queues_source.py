"""Where the queue runner reads a queue's configuration: the ``queues`` row, its in-queue
options (SPEC 7.5) and the agents seated in it (``agent_queue_assignments``).

:class:`SqlQueueSource` reads the config DB in a worker thread and keeps each queue for
``ttl`` seconds (a burst of callers costs one query; an edit reaches new offers within
``ttl``); :class:`StaticQueueSource` serves setups held in memory (tests, tools).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine, select

from control.core.presence import Membership

EXITS = ("timeout", "abandon", "no_agents", "queue_full", "ewt")
ACTIONS = ("route", "webhook", "deflect", "callback", "hangup")


@dataclass(frozen=True)
class QueueOption:
    """One ``in_queue_options`` row: what a key does while the caller holds."""

    digit: str
    action: str
    dest_kind: str | None = None
    dest_id: str | None = None
    webhook_url: str | None = None
    webhook_secret_ref: str | None = None
    stay_in_queue: bool = False
    prompt_media_id: str | None = None
    label: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> QueueOption:
        return cls(
            digit=str(row["digit"]),
            action=str(row["action"]),
            dest_kind=row.get("dest_kind"),
            dest_id=row.get("dest_id"),
            webhook_url=row.get("webhook_url"),
            webhook_secret_ref=row.get("webhook_secret_ref"),
            stay_in_queue=bool(row.get("stay_in_queue")),
            prompt_media_id=row.get("prompt_media_id"),
            label=row.get("label"),
        )


@dataclass(frozen=True)
class QueueSetup:
    """A queue as the runner needs it; ``row`` is the ``queues`` row (``QueueConfig.from_row``
    reads it, the ``*_dest_*`` exit targets are read here)."""

    row: Mapping[str, Any]
    options: Mapping[str, QueueOption] = field(default_factory=dict)  # by digit
    members: Mapping[str, Membership] = field(default_factory=dict)  # by user id
    positions: Mapping[str, int] = field(default_factory=dict)  # user id -> top_down order

    @property
    def queue_id(self) -> str:
        return str(self.row["id"])

    def exit_target(self, exit: str) -> tuple[str, str | None] | None:
        """The queue's own route target for ``exit`` (``timeout``, ``no_agents``...)."""
        if exit not in EXITS:
            return None
        kind = self.row.get(f"{exit}_dest_kind")
        if not kind:
            return None
        return str(kind), self.row.get(f"{exit}_dest_id")


class QueueSource(Protocol):
    async def queue(self, account_id: str, queue_id: str) -> QueueSetup | None:
        """The account's queue, or None when it has no such queue."""


class StaticQueueSource:
    def __init__(self, queues: Mapping[tuple[str, str], QueueSetup]) -> None:
        self.queues = dict(queues)

    async def queue(self, account_id: str, queue_id: str) -> QueueSetup | None:
        return self.queues.get((account_id, queue_id))


class SqlQueueSource:
    def __init__(self, engine: Engine, *, ttl: float = 2.0, cache_size: int = 2048) -> None:
        self.engine, self.ttl, self.cache_size = engine, ttl, cache_size
        self._cache: dict[tuple[str, str], tuple[float, QueueSetup | None]] = {}

    async def queue(self, account_id: str, queue_id: str) -> QueueSetup | None:
        key = (account_id, queue_id)
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        setup = await asyncio.to_thread(self._read, account_id, queue_id)
        if len(self._cache) > self.cache_size:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), setup)
        return setup

    def _read(self, account_id: str, queue_id: str) -> QueueSetup | None:
        from control.db import models as m

        with self.engine.connect() as c:
            row = c.execute(
                select(m.Queue).where(m.Queue.id == queue_id, m.Queue.account_id == account_id)
            ).first()
            if row is None:
                return None
            options = c.execute(
                select(m.InQueueOption).where(
                    m.InQueueOption.queue_id == queue_id, m.InQueueOption.account_id == account_id
                )
            ).all()
            seats = c.execute(
                select(m.AgentQueueAssignment).where(
                    m.AgentQueueAssignment.queue_id == queue_id,
                    m.AgentQueueAssignment.account_id == account_id,
                )
            ).all()
        return QueueSetup(
            row=dict(row._mapping),
            options={
                o.digit: QueueOption.from_row(dict(o._mapping))
                for o in options
                if o.action in ACTIONS
            },
            members={
                s.user_id: Membership(queue_id, int(s.tier_level), str(s.mode)) for s in seats
            },
            positions={s.user_id: int(s.position) for s in seats},
        )
