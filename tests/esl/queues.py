"""Queues for controller tests: a controller with the real queue feature against the stack's
Redis (real ACD store and presence), queue setups, seated agents, and agents' phones scripted
on the peer's bridge. Queue timers are scaled down to a second or two."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from control.core.flow import CommandKind
from control.core.presence import Available, Login, Membership, Profile, Register, Seat
from control.live.acd import AcdStore
from control.secrets import SecretStore
from esl.apps import MediaConfig
from esl.controller import Controller, ControllerConfig, Feature
from esl.flows import FlowSource
from esl.http_command import HttpPolicy, HttpRunner
from esl.outbound import OutboundServer
from esl.queue import QueueFeature, QueueTimers
from esl.queues_source import QueueOption, QueueSetup, StaticQueueSource
from esl.session_store import SessionStore
from tests.esl.peer import Caller, Reaction, bridge_legs

MOH = "local_stream://moh"
TIMERS = QueueTimers(poll_sec=0.05, hold_slice_sec=1, viable_every_sec=0.2)


def queue_row(account: str, queue_id: str = "q_1", **row: Any) -> dict[str, Any]:
    return {
        "id": queue_id, "account_id": account, "name": queue_id, "strategy": "longest_idle",
        "agent_ring_timeout_sec": 2, "max_wait_sec": 20, "wrap_up_sec": 0, "max_no_answer": 3,
        "announce_position": 0, "announce_first_sec": 1, "announce_interval_sec": 1,
        "moh_mode": "stream", **row,
    }  # fmt: skip


def setup(
    account: str,
    users: tuple[str, ...],
    queue_id: str = "q_1",
    options: tuple[QueueOption, ...] = (),
    **row: Any,
) -> dict[tuple[str, str], QueueSetup]:
    return {
        (account, queue_id): QueueSetup(
            row=queue_row(account, queue_id, **row),
            options={o.digit: o for o in options},
            members={u: Membership(queue_id, 1) for u in users},
            positions={u: i for i, u in enumerate(users)},
        )
    }


def seat(
    acd: AcdStore, account: str, user: str, queue_id: str = "q_1", *, ready: bool = True
) -> None:
    """A registered agent logged into the queue: ready, or not-ready (on break)."""
    profile = Profile(auto_ready_on_login=ready, memberships=(Membership(queue_id, 1),))
    acd.presence.apply(account, user, Register(f"dev_{user}"))
    acd.presence.apply(account, user, Login((Seat(queue_id, 1),)), profile)


def make_available(acd: AcdStore, account: str, user: str, queue_id: str = "q_1") -> None:
    profile = Profile(memberships=(Membership(queue_id, 1),))
    acd.presence.apply(account, user, Available(), profile)


def agent(acd: AcdStore, account: str, user: str) -> tuple[str, str, str | None, int]:
    a = acd.presence.get(account, user)
    return a.status, a.state, a.pause_reason, a.misses


@dataclass
class Ctl:
    controller: Controller
    server: OutboundServer
    acd: AcdStore

    @property
    def address(self) -> tuple[str, int]:
        return self.server.host, self.server.port


@asynccontextmanager
async def controller(
    redis_url: str,
    queues: Mapping[tuple[str, str], QueueSetup],
    flows: FlowSource,
    node_id: str = "ctl-a",
    secrets: SecretStore | None = None,
    *,
    features: Mapping[CommandKind, Feature] | None = None,
    media: MediaConfig | None = None,
) -> AsyncIterator[Ctl]:
    """A controller with the queue feature (plus ``features``, e.g. voicemail)."""
    store = SessionStore.from_url(redis_url)
    http = HttpRunner(HttpPolicy(allow_private=True))
    acd = AcdStore.from_url(redis_url, lease_grace_sec=0.5)
    feature = QueueFeature(acd, StaticQueueSource(queues), http=http, timers=TIMERS,
                           **({"secrets": lambda: secrets} if secrets else {}))  # fmt: skip
    config = ControllerConfig(node_id=node_id, linger_sec=1, media=media or MediaConfig())
    ctl = Controller(
        store, flows, http, config, features={CommandKind.ENQUEUE: feature, **(features or {})},
    )  # fmt: skip
    server = OutboundServer(ctl.handle, "127.0.0.1", 0)
    await server.start()
    try:
        yield Ctl(ctl, server, acd)
    finally:
        await server.stop()
        http.close()
        await store.close()


def phones(
    answer: Callable[[list[str]], str | None],
    *,
    ring: float = 0.2,
    talk: float = 0.3,
    moh: Callable[[int], Reaction | None] | None = None,
) -> Caller:
    """Agents' phones: ``answer(users rung)`` says who picks up (None: nobody, the ring
    lasts ``ring`` s); ``moh(n)`` scripts the caller during the n-th hold playback."""

    def react(app: str, arg: str, n: int) -> Reaction | None:
        if app == "bridge":
            users = [leg.user for leg in bridge_legs(arg)]
            return Reaction(answered_by=answer(users), delay=ring, talk=talk)
        if app == "playback" and arg == MOH and moh is not None:
            return moh(n)
        return None

    return Caller(react=react)


def first(users: list[str]) -> str | None:
    return users[0]
