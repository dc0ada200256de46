"""Courtesy callbacks (SPEC 7.5): the caller who pressed the queue's ``callback`` key hung up
but kept their place in the ACD; this dialer calls them back once an agent takes the call.

Every ``sipio esl-controller`` runs one, on its FreeSWITCH's inbound event socket. The work
is in Redis, in the account's slot (``B`` = ``<acd prefix>:{<account>}``):

- ``B:cb`` (kept by the ACD): callbacks waiting in a queue, at their original enqueue time;
- ``B:cbstate`` hash, call id -> JSON: callbacks out of the queue, ``talk`` (an agent took
  it: leg uuid, agent) or ``retry`` (the caller was not reached: due time, attempts);
- ``B:cbclaim:<call>``: the dialer driving the callback (SET NX PX, renewed). A dialer that
  dies loses its claims within ``claim_sec``; another adopts the callbacks where they are;
- ``<acd prefix>:callbacks`` zset, account -> last request ms: which accounts to look at.

One attempt: ``AcdStore.offer`` leases the agent(s) exactly as for a live caller at the head
of the queue, so the callback is served in its turn and never skips the line. Then
``bgapi originate`` rings the agents' legs through Kamailio (``X-Sipio-Dial: user:<agent>``,
a known ``origination_uuid`` per leg) and, once one answers, ``&bridge``s it to the caller
(``X-Sipio-Dial: number:…`` out through the account's trunk, or ``extension:…``). The
BACKGROUND_JOB says who answered (``+OK <uuid>``) or why nobody did (``-ERR <cause>``: a
miss, the callback keeps its place); the agent leg's CHANNEL_BRIDGE says the caller was
reached; its CHANNEL_HANGUP_COMPLETE sends the agent to wrap-up. A caller not reached is
tried again after ``retry_sec``, at the back of the queue, ``attempts`` times in all. A
callback nobody could serve within ``window_sec`` expires (``queue_timeout``,
``callback_expired``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import uuid as uuidlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from control.core.acd import AcdError, Caller, NotOffered, Offer, QueueConfig
from control.core.presence import PresenceError
from control.live.acd import AcdConflict, AcdStore
from control.live.client import Lua, text
from esl import agent_legs, apps
from esl.apps import MediaConfig
from esl.connection import EslError
from esl.inbound import ResilientInbound, Subscription
from esl.protocol import Event
from esl.queues_source import QueueSource

log = structlog.get_logger("esl.callbacks")
T = TypeVar("T")

LEG_NAMESPACE = uuidlib.UUID("0b8f3c1e-5d2a-4e7b-9c61-7a4d2e9f1b35")
EVENTS = ("BACKGROUND_JOB", "CHANNEL_BRIDGE", "CHANNEL_HANGUP_COMPLETE")
TALK_HOURS = 12 * 3600.0

_RENEW = Lua("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
""")
_RELEASE = Lua("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")
# An account leaves the registry only if no request came since the cut-off.
_FORGET = Lua("""
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
""")


@dataclass(frozen=True)
class CallbackPolicy:
    window_sec: float = 3600.0  # a callback not served by then expires
    attempts: int = 3  # tries to reach the caller (each one after an agent answered)
    retry_sec: float = 120.0  # between a try that did not reach the caller and the next
    caller_ring_sec: int = 30  # how long the caller's phone rings per try
    poll_sec: float = 1.0  # how often a waiting callback asks the ACD for an agent
    claim_sec: float = 15.0  # a dead dialer's callbacks are adopted after this
    check_sec: float = 30.0  # while talking: is the agent's leg still up (an event lost)?
    job_grace_sec: float = 15.0  # past the ring time, for the originate's BACKGROUND_JOB


def leg_uuid(call_id: str, attempt: int, user_id: str) -> str:
    """The agent leg's channel uuid for one try: known before the originate, so events and
    ``uuid_exists`` can be matched to the agent whatever FreeSWITCH reports first."""
    return str(uuidlib.uuid5(LEG_NAMESPACE, f"{call_id}/{attempt}/{user_id}"))


def callable_target(dial: str | None) -> tuple[str, str] | None:
    """(kind, number) of what a callback dials (``number:+…`` / ``extension:…``), or None
    for anything that must not reach a dial string."""
    kind, _, number = (dial or "").partition(":")
    if kind not in ("number", "extension") or not apps.SAFE_ID.match(number.lstrip("+")):
        return None
    return kind, number


@dataclass
class _Leg:
    """What the inbound socket told us of one agent leg."""

    bridged: asyncio.Event = field(default_factory=asyncio.Event)
    hangup: asyncio.Future[Event] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class CallbackDialer:
    """Finds callbacks nobody drives, claims them and places them, one task each."""

    def __init__(
        self,
        acd: AcdStore,
        queues: QueueSource,
        inbound: ResilientInbound,
        media: MediaConfig,
        *,
        node_id: str = "controller",
        policy: CallbackPolicy | None = None,
        command_timeout: float = 5.0,
    ) -> None:
        self.acd, self.queues, self.inbound, self.media = acd, queues, inbound, media
        self.node_id = node_id
        self.policy = policy or CallbackPolicy()
        self.command_timeout = command_timeout
        self.token = f"{node_id}/{uuidlib.uuid4().hex[:12]}"  # this process's claims
        self.registry = acd.callback_registry
        self.driving: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.placed = 0  # originates sent (tests, figures)
        self._legs: dict[str, _Leg] = {}
        self._nudges: dict[tuple[str, str], asyncio.Event] = {}
        self._queue_of: dict[str, str] = {}  # callback call id -> its queue (never changes)
        self._moved = asyncio.Event()
        self._moved_accounts: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        inbound.on_event = self._on_event
        inbound.subscription.events = list(dict.fromkeys([*inbound.subscription.events, *EVENTS]))
        if ("Event-Name", "BACKGROUND_JOB") not in inbound.subscription.filters:
            inbound.subscription.filters.insert(0, ("Event-Name", "BACKGROUND_JOB"))

    @classmethod
    def connect(
        cls,
        acd: AcdStore,
        queues: QueueSource,
        host: str,
        port: int,
        password: str,
        media: MediaConfig,
        **kw: Any,
    ) -> CallbackDialer:
        """A dialer with its own inbound connection (kept up by ``ResilientInbound``)."""
        inbound = ResilientInbound(host, port, password, subscription=Subscription())
        return cls(acd, queues, inbound, media, **kw)

    # -- life ------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.inbound.start()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="callbacks")

    async def stop(self) -> None:
        """Stop driving (claims are left to expire: another dialer adopts the callbacks)."""
        tasks = [t for t in (self._task, *self.driving.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.inbound.stop()

    async def _loop(self) -> None:
        while True:
            try:
                await self.scan()
            except Exception as exc:  # Redis down, a bad record: log, keep scanning
                log.warning("esl.callbacks.scan_failed", error=f"{type(exc).__name__}: {exc}")
            # until the next full pass, rescan at once the accounts whose queues moved here
            deadline = time.monotonic() + self.policy.poll_sec
            while (left := deadline - time.monotonic()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._moved.wait(), left)
                self._moved.clear()
                accounts, self._moved_accounts = self._moved_accounts, set()
                try:
                    await self.scan(accounts)
                except Exception as exc:
                    log.warning("esl.callbacks.scan_failed", error=f"{type(exc).__name__}: {exc}")

    async def scan(self, accounts: Collection[str] | None = None) -> int:
        """Claim the callbacks nobody drives whose turn it is (or that are out of the queue:
        talking, due for a retry) in ``accounts`` (default: every registered one); returns
        how many this pass started. Callbacks further back wait without a task: holding a
        thousand costs a few round trips per pass, not a thousand polls."""
        if accounts is None:
            accounts = [
                text(a) for a in await self._redis(self.acd.redis.zrange, self.registry, 0, -1)
            ]
        started = 0
        for account in accounts:
            for call_id in await self._redis(self._claimable, account):
                self._spawn(account, call_id)
                started += 1
        return started

    def _claimable(self, account: str) -> list[str]:
        """Claim the account's callbacks this dialer should drive now (a few round trips)."""
        waiting, states = self._work(account)
        if not waiting and not states:
            stale = int(
                (
                    time.time()
                    - self.policy.window_sec
                    - self.policy.attempts * self.policy.retry_sec
                )
                * 1000
            )
            _FORGET(self.acd.redis, [self.registry], [account, stale])
            return []
        unknown = [c for c in waiting if c not in self._queue_of]
        if unknown:
            if len(self._queue_of) > 100_000:
                self._queue_of.clear()
            records = self.acd.redis.hmget(f"{self.acd.base(account)}:calls", unknown)
            for call_id, raw in zip(unknown, records, strict=True):
                if raw is not None:
                    self._queue_of[call_id] = json.loads(raw)["q"]
        heads = {
            q: self.acd.offerable(account, q)
            for q in {self._queue_of[c] for c in waiting if c in self._queue_of}
        }

        def its_turn(call_id: str) -> bool:
            queue_id = self._queue_of.get(call_id)
            if queue_id is None:
                return False
            head = heads[queue_id]
            return head is None or call_id in head

        turn = [c for c in waiting if its_turn(c)]
        free = [c for c in dict.fromkeys([*states, *turn]) if (account, c) not in self.driving]
        return self._claim(account, free)

    def _claim(self, account: str, call_ids: list[str]) -> list[str]:
        """The callbacks among ``call_ids`` this dialer now drives (one round trip)."""
        if not call_ids:
            return []
        pipe = self.acd.redis.pipeline(transaction=False)
        px = int(self.policy.claim_sec * 1000)
        for call_id in call_ids:
            pipe.set(self._claim_key(account, call_id), self.token, nx=True, px=px)
        return [c for c, won in zip(call_ids, pipe.execute(), strict=True) if won]

    def _work(self, account: str) -> tuple[list[str], list[str]]:
        pipe = self.acd.redis.pipeline(transaction=False)
        pipe.zrange(f"{self.acd.base(account)}:cb", 0, -1)
        pipe.hkeys(self._state_key(account))
        waiting, states = pipe.execute()
        return [text(c) for c in waiting], [text(c) for c in states]

    def _spawn(self, account: str, call_id: str) -> None:
        key = (account, call_id)
        task = asyncio.get_running_loop().create_task(self._drive(account, call_id))
        self.driving[key] = task
        task.add_done_callback(lambda _: self.driving.pop(key, None))

    # -- one callback ----------------------------------------------------------------------------
    async def _drive(self, account: str, call_id: str) -> None:
        claim = self._claim_key(account, call_id)
        lost = asyncio.Event()
        keeper = asyncio.ensure_future(self._keep_claim(claim, lost))
        try:
            await self._serve(account, call_id, lost)
        except (AcdError, AcdConflict, PresenceError, EslError, OSError) as exc:
            log.warning("esl.callbacks.failed", account_id=account, call_id=call_id,
                        error=f"{type(exc).__name__}: {exc}")  # fmt: skip
        except Exception as exc:  # the claim runs out; another dialer (or this one) retries
            log.error("esl.callbacks.crashed", account_id=account, call_id=call_id,
                      error=f"{type(exc).__name__}: {exc}")  # fmt: skip
            return
        finally:
            keeper.cancel()
        with contextlib.suppress(Exception):
            await self._redis(_RELEASE, self.acd.redis, [claim], [self.token])

    async def _keep_claim(self, claim: str, lost: asyncio.Event) -> None:
        px = int(self.policy.claim_sec * 1000)
        while True:
            await asyncio.sleep(self.policy.claim_sec / 3)
            try:
                kept = await self._redis(_RENEW, self.acd.redis, [claim], [self.token, px])
            except Exception:  # Redis away for a moment: try again before the claim runs out
                continue
            if not int(kept):
                lost.set()
                return

    async def _serve(self, account: str, call_id: str, lost: asyncio.Event) -> None:
        while not lost.is_set():
            state = await self._state(account, call_id)
            if state is not None:
                if state["phase"] == "talk":
                    await self._adopt(account, call_id, state)
                    return
                due = (int(state["at"]) - time.time() * 1000) / 1000
                if due > 0:
                    await asyncio.sleep(min(due, self.policy.poll_sec))
                    continue
                cfg, _ = await self._queue(account, state["queue"])
                await self._acd(self.acd.requeue_callback, cfg, call_id, state["dial"],
                                int(state["attempts"]), self.policy.window_sec)  # fmt: skip
                await self._redis(self.acd.redis.hdel, self._state_key(account), call_id)
                continue
            caller = await self._redis(self._caller, account, call_id)
            if caller is None or caller.callback is None:
                return  # served, expired or cancelled meanwhile
            if callable_target(caller.callback) is None:  # never ring an agent for it
                cfg, _ = await self._queue(account, caller.queue_id)
                await self._acd(self.acd.leave, cfg, call_id, "callback_cancelled")
                log.warning("esl.callbacks.uncallable", account_id=account, call_id=call_id)
                return
            if not self.inbound.connected:  # no agent is rung for a call we cannot place
                await asyncio.sleep(self.policy.poll_sec)
                continue
            turn = (account, caller.queue_id)
            heads = await self._redis(self.acd.offerable, account, caller.queue_id)
            if heads is not None and call_id not in heads:  # not its turn: a scan brings it back
                return
            cfg, positions = await self._queue(account, caller.queue_id)
            offer = await self._acd(self.acd.offer, cfg, call_id, positions)
            if offer is None:
                await self._pause(turn)
                continue
            self._nudge(turn)  # the head moved: the next callback may be offered now
            try:
                await self._attempt(cfg, caller, offer)
            finally:
                self._nudge(turn)  # an agent was released (miss, wrap-up) or the head moved

    async def _pause(self, turn: tuple[str, str]) -> None:
        """Until the next poll, or sooner when another callback of the queue in this process
        moved its head or released an agent (one offer per poll would cap a queue's rate)."""
        nudge = self._nudges.setdefault(turn, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(nudge.wait(), self.policy.poll_sec)

    def _nudge(self, turn: tuple[str, str]) -> None:
        nudge = self._nudges.pop(turn, None)
        if nudge is not None:
            nudge.set()
        self._moved_accounts.add(turn[0])  # and look for the callbacks now at the head
        self._moved.set()

    async def _attempt(self, cfg: QueueConfig, caller: Caller, offer: Offer) -> None:
        """Ring the offered agents; on an answer, bridge to the caller and see it through."""
        call_id, attempt = caller.call_id, caller.attempts
        remaining = math.ceil((offer.lease_until - time.time() * 1000) / 1000)
        ring = max(1, min(cfg.agent_ring_timeout_sec, remaining))
        legs = {leg_uuid(call_id, attempt, u): u for u in offer.user_ids}
        for leg in legs:
            self._legs[leg] = _Leg()
            await self.inbound.add_filter("Unique-ID", leg)
        try:
            agent, leg, cause = await self._originate(cfg, caller, legs, ring)
            if agent is None:
                missed = await self._acd(self.acd.missed, cfg, call_id)
                await self._event(
                    cfg, call_id, "queue_callback_attempt", outcome="agent_no_answer",
                    agent_ids=list(missed), cause=cause, attempt=attempt + 1,
                )  # fmt: skip
                await asyncio.sleep(self.policy.poll_sec)  # not at once to the same refusal
                return
            try:
                await self._acd(self.acd.answered, cfg, call_id, agent)
            except NotOffered:  # its lease ran out meanwhile: it may not keep the call
                await self._api(f"uuid_kill {leg}")
                return
            state = {"phase": "talk", "queue": cfg.id, "dial": caller.callback,
                     "attempts": attempt, "agent": agent, "leg": leg}  # fmt: skip
            await self._save(cfg.account_id, call_id, state)
            await self._talk(cfg, call_id, state, self._legs[leg])
        finally:
            for leg in legs:
                self._legs.pop(leg, None)
                with contextlib.suppress(EslError, OSError):
                    await self.inbound.remove_filter("Unique-ID", leg)

    async def _originate(
        self, cfg: QueueConfig, caller: Caller, legs: dict[str, str], ring: int
    ) -> tuple[str | None, str, str]:
        """(agent who answered or None, its leg uuid, the cause when nobody did)."""
        command = "originate " + self.dial_string(cfg, caller, legs, ring)
        self.placed += 1
        try:
            client = await self.inbound.client(self.command_timeout)
            job = await client.bgapi(command, timeout=self.command_timeout)
            done = await job.result(timeout=ring + self.policy.job_grace_sec)
            reply = done.body.decode(errors="replace").strip()
        except (EslError, OSError, TimeoutError) as exc:
            # the job's answer was lost, not necessarily the call: a live leg answered
            for leg, agent in legs.items():
                with contextlib.suppress(EslError, OSError):
                    if (await self._api(f"uuid_exists {leg}")).strip() == "true":
                        return agent, leg, ""
            return None, "", f"no job result ({type(exc).__name__})"
        if reply.startswith("+OK"):
            answered = reply[3:].strip()
            winner = legs.get(answered)
            if winner is not None:
                return winner, answered, ""
            with contextlib.suppress(EslError, OSError):  # not one of ours: never keep it
                await self._api(f"uuid_kill {answered}")
            return None, "", "unknown leg answered"
        return None, "", reply.removeprefix("-ERR").strip() or "failed"

    def dial_string(self, cfg: QueueConfig, caller: Caller, legs: dict[str, str], ring: int) -> str:
        """``{common}[agent leg],[agent leg] &bridge({caller leg}…)``: the agents ring through
        Kamailio at once (ring_all) or alone; the caller is dialled only after one answers.
        FreeSWITCH leaves the media path once the two are bridged, as for a live caller."""
        media, account = self.media, cfg.account_id
        target = callable_target(caller.callback)
        if target is None:
            raise AcdError(f"callback {caller.call_id}: not a callable target")
        kind, number = target
        language = cfg.language or apps.DEFAULT_LANGUAGE  # no call, no account language here
        rung = [agent_legs.leg(cfg, user, leg, ring, language, media) for leg, user in legs.items()]
        common = (
            f"{{ignore_early_media=true,originate_timeout={ring},"
            f"origination_caller_id_number={number},origination_caller_id_name=Callback,"
            f"sipio_callback={caller.call_id},sipio_queue={cfg.id},bypass_media_after_bridge=true}}"
        )
        to_caller = (
            f"{{sip_h_X-Sipio-Account={account},sip_h_X-Sipio-Dial={kind}:{number},"
            f"sip_h_X-Sipio-Queue={cfg.id},call_timeout={self.policy.caller_ring_sec}}}"
            f"sofia/{media.sofia_profile}/{number}@{media.proxy}"
        )
        return f"{common}{','.join(rung)} &bridge({to_caller})"

    async def _talk(self, cfg: QueueConfig, call_id: str, state: dict[str, Any], leg: _Leg) -> None:
        """Until the agent's leg hangs up; then wrap-up, and the try's outcome."""
        attempt = int(state["attempts"]) + 1

        async def connected() -> None:
            await leg.bridged.wait()
            await self._event(cfg, call_id, "queue_callback_connected",
                              agent_id=state["agent"], attempt=attempt)  # fmt: skip

        watcher = asyncio.ensure_future(connected())
        try:
            ended = await self._until_gone(state["leg"], leg.hangup)
            if leg.bridged.is_set():
                await watcher
        finally:
            watcher.cancel()
        reached = leg.bridged.is_set() or bool(
            ended is not None and ended.variable("last_bridge_to")
        )
        await self._finish(cfg, call_id, state, reached)

    async def _adopt(self, account: str, call_id: str, state: dict[str, Any]) -> None:
        """A callback whose dialer died while the agent talked: follow the leg to its end.
        Whether the caller was reached before is unknown: it is not tried again."""
        cfg, _ = await self._queue(account, state["queue"])
        leg = self._legs.setdefault(state["leg"], _Leg())
        await self.inbound.add_filter("Unique-ID", state["leg"])
        try:
            ended = await self._until_gone(state["leg"], leg.hangup)
            reached = (
                True
                if leg.bridged.is_set() or (ended is not None and ended.variable("last_bridge_to"))
                else None
            )
            await self._finish(cfg, call_id, state, reached)
        finally:
            self._legs.pop(state["leg"], None)
            with contextlib.suppress(EslError, OSError):
                await self.inbound.remove_filter("Unique-ID", state["leg"])

    async def _until_gone(self, uuid: str, hangup: asyncio.Future[Event]) -> Event | None:
        """The leg's CHANNEL_HANGUP_COMPLETE, or None when ``uuid_exists`` finds it gone (its
        event was lost with a connection)."""
        give_up = time.monotonic() + TALK_HOURS
        while time.monotonic() < give_up:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(hangup), self.policy.check_sec)
            with contextlib.suppress(EslError, OSError):
                if (await self._api(f"uuid_exists {uuid}")).strip() == "false":
                    return None
        return None

    async def _finish(
        self, cfg: QueueConfig, call_id: str, state: dict[str, Any], reached: bool | None
    ) -> None:
        agent, attempt = state["agent"], int(state["attempts"]) + 1
        await self._acd(self.acd.finished, cfg, call_id, agent)
        retry = reached is False and attempt < self.policy.attempts
        outcome = {True: "connected", False: "caller_unreached", None: "ended"}[reached]
        if retry:
            due = int((time.time() + self.policy.retry_sec) * 1000)
            await self._save(
                cfg.account_id, call_id, {**state, "phase": "retry", "attempts": attempt, "at": due}
            )
        else:
            await self._redis(self.acd.redis.hdel, self._state_key(cfg.account_id), call_id)
        await self._event(cfg, call_id, "queue_callback_result", outcome=outcome, agent_id=agent,
                          attempt=attempt, retry=retry)  # fmt: skip

    # -- events ----------------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        uuid = event.get("Unique-ID") or ""
        leg = self._legs.get(uuid)
        if leg is None:
            return
        if event.name == "CHANNEL_BRIDGE":
            leg.bridged.set()
        elif event.name == "CHANNEL_HANGUP_COMPLETE" and not leg.hangup.done():
            leg.hangup.set_result(event)

    async def _event(self, cfg: QueueConfig, call_id: str, kind: str, **data: Any) -> None:
        event = {"type": kind, "call_id": call_id, "ts": int(time.time() * 1000),
                 "account_id": cfg.account_id, "queue_id": cfg.id, "emitter": "acd",
                 "controller": self.node_id, **data}  # fmt: skip
        log.info("esl.callbacks." + kind, **{k: v for k, v in event.items() if k != "type"})
        await self._redis(
            self.acd.redis.xadd, self.acd.events_key(cfg.account_id),
            {"e": json.dumps(event, separators=(",", ":"))},
        )  # fmt: skip

    # -- plumbing --------------------------------------------------------------------------------
    def _claim_key(self, account: str, call_id: str) -> str:
        return f"{self.acd.base(account)}:cbclaim:{call_id}"

    def _state_key(self, account: str) -> str:
        return f"{self.acd.base(account)}:cbstate"

    async def _state(self, account: str, call_id: str) -> dict[str, Any] | None:
        raw = await self._redis(self.acd.redis.hget, self._state_key(account), call_id)
        return None if raw is None else dict(json.loads(raw))

    async def _save(self, account: str, call_id: str, state: dict[str, Any]) -> None:
        await self._redis(self.acd.redis.hset, self._state_key(account), call_id, json.dumps(state))

    def _caller(self, account: str, call_id: str) -> Caller | None:
        raw = self.acd.redis.hget(f"{self.acd.base(account)}:calls", call_id)
        return None if raw is None else Caller.from_json(call_id, json.loads(raw))

    async def _queue(self, account: str, queue_id: str) -> tuple[QueueConfig, dict[str, int]]:
        setup = await self.queues.queue(account, queue_id)
        if setup is None:  # the queue was deleted: the callback still ends through the ACD
            return QueueConfig(queue_id, account), {}
        return QueueConfig.from_row(setup.row), dict(setup.positions)

    async def _api(self, command: str) -> str:
        return await self.inbound.api(command, timeout=self.command_timeout)

    async def _acd(self, method: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(method, *args)

    async def _redis(self, method: Callable[..., T], *args: Any, **kw: Any) -> T:
        return await asyncio.to_thread(method, *args, **kw)
