"""The caller's side of a queue (SPEC 7): what the controller does with a call from the
moment a flow says ``enqueue`` until an agent takes it or an exit fires.

The ACD decisions (who rings, who is next, misses, wrap-up, exits at join) are
``control.live.acd.AcdStore``'s; this module is the FreeSWITCH half, one :class:`Hold` per
``enqueue`` command:

1. join (``queue_full`` / ``ewt`` deflect at once), ``no_agents`` when nobody could ever
   answer;
2. hold: music on hold in slices (``playback`` with ``playback_timeout_sec``, so that a hold
   whose controller died ends by itself and FreeSWITCH resumes into the next controller),
   interrupted with ``api uuid_break`` for position/EWT announcements, offers, keys;
3. every ``poll_sec`` ask the ACD for an offer; an offer ``bridge``s the agents through
   Kamailio (one leg per agent, all at once for ring_all) with the hold music as ringback.
   CHANNEL_BRIDGE says who answered (the leg's ``origination_uuid``, derived from the call
   and the agent); the bridge's end is the agent's wrap-up; a bridge nobody answered is a
   miss and the caller holds again;
4. exits while waiting: ``timeout``, ``abandon`` (caller hung up), ``no_agents``; in-queue
   options on DTMF (``route``, ``webhook``, ``deflect``, ``callback``, ``hangup``).

An exit the flow has an edge for (``exits`` in the command) is returned as the outcome; one
it has none for continues at the queue's own ``<exit>_dest_kind/_id`` target: the result's
``continueAt`` asks the controller to restart the interpreter there.

Takeover: a controller that picks the call up mid-queue runs the command again. If the
channel says the last bridge went to one of this queue's agents (``last_bridge_to`` is that
agent's leg uuid), the call was answered: the agent is released into wrap-up and the call
ends. Otherwise the caller re-joins with its original enqueue time; an agent still leased to
it is rung again for what is left of the lease (or released as a miss by the ACD's sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import uuid as uuidlib
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from sqlalchemy.exc import SQLAlchemyError

from control.core.acd import AcdError, NotOffered, Offer, QueueConfig
from control.core.flow import Command
from control.core.presence import PresenceError
from control.core.routing.media_dial import callback_dial
from control.live.acd import AcdConflict, AcdStore
from control.secrets import SecretStore, default_store
from control.secrets.errors import SecretStoreError
from esl import agent_legs, apps
from esl.callbacks import CallbackPolicy
from esl.client import Execution
from esl.connection import CommandError, EslError
from esl.controller import CONTINUE_AT
from esl.http_command import HttpRunner
from esl.outbound import OutboundSession
from esl.protocol import Event
from esl.queues_source import QueueOption, QueueSetup, QueueSource

if TYPE_CHECKING:
    from esl.controller import CallRun

log = structlog.get_logger("esl.queue")
T = TypeVar("T")

CALLER_HANGUP = "hangup"  # the interpreter's word for "the caller left" (abandon in a queue)
WATCHED = ("DTMF", "CHANNEL_BRIDGE")  # besides the controller's own two event kinds
LEG_NAMESPACE = uuidlib.UUID("6f1c7c62-3a55-4b55-9a43-2d1f0c3b7a10")
BRIDGE_HOURS = 12 * 3600.0
HEAD_READ = 64  # queue entries read to find the callers an offer may pick


@dataclass(frozen=True)
class QueueTimers:
    poll_sec: float = 0.5  # how often a holding caller asks the ACD for an agent
    hold_slice_sec: int = 60  # longest single MOH playback (bounds a hold nobody drives)
    viable_every_sec: float = 2.0  # how often ``no_agents`` is checked while holding
    stop_budget: float = 3.0  # a broken playback's completion


def leg_uuid(caller_uuid: str, user_id: str) -> str:
    """The agent leg's channel uuid for this caller: stable, so a controller taking the call
    over can tell from ``last_bridge_to`` which agent (if any) took it."""
    return str(uuidlib.uuid5(LEG_NAMESPACE, f"{caller_uuid}/{user_id}"))


class QueueFeature:
    """``CommandKind.ENQUEUE`` for :class:`esl.controller.Controller` (``features=``)."""

    def __init__(
        self,
        acd: AcdStore,
        queues: QueueSource,
        *,
        http: HttpRunner | None = None,
        timers: QueueTimers | None = None,
        secrets: Callable[[], SecretStore] = default_store,
        callbacks: CallbackPolicy | None = None,
    ) -> None:
        """``secrets``: where an option's ``webhook_secret_ref`` (its bearer token) is
        resolved, at use time; ``callbacks``: how long a callback keeps its place."""
        self.acd, self.queues = acd, queues
        self.callbacks = callbacks or CallbackPolicy()
        self.http = http or HttpRunner()
        self.timers = timers or QueueTimers()
        self.secrets = secrets
        self._watching: weakref.WeakSet[OutboundSession] = weakref.WeakSet()
        self._background: set[asyncio.Task[Any]] = set()
        self._viable: dict[tuple[str, str], tuple[float, int]] = {}
        self._heads: dict[tuple[str, str], tuple[float, frozenset[str] | None]] = {}
        self._reading: dict[tuple[str, str], asyncio.Future[frozenset[str] | None]] = {}
        self._nudges: dict[tuple[str, str], asyncio.Event] = {}

    async def run(self, call: CallRun, command: Command) -> tuple[str, dict[str, Any]]:
        queue_id = command.args.get("queueId")
        assert call.ctx is not None
        if not isinstance(queue_id, str) or not apps.SAFE_ID.match(queue_id):
            return "no_agents", {"reason": f"bad queue id {queue_id!r}"}
        try:
            setup = await self.queues.queue(call.ctx.account_id, queue_id)
        except SQLAlchemyError as exc:
            call.log.error("esl.queue.config_unavailable", error=type(exc).__name__)
            return "no_agents", {"reason": "config database unavailable"}
        if setup is None:
            call.log.warning("esl.queue.unknown", queue_id=queue_id)
            return "no_agents", {"reason": f"unknown queue {queue_id}"}
        try:
            cfg = QueueConfig.from_row(setup.row)
        except (TypeError, ValueError) as exc:
            call.log.warning("esl.queue.bad_config", queue_id=queue_id, error=str(exc))
            return "no_agents", {"reason": f"queue {queue_id} misconfigured"}
        if call.session not in self._watching:
            await asyncio.gather(*(call.session.filter("Event-Name", n) for n in WATCHED))
            self._watching.add(call.session)
        hold = Hold(self, call, command, setup, cfg)
        try:
            return await hold.run()
        except (AcdError, AcdConflict, PresenceError) as exc:
            # the ACD refused or kept conflicting: the caller leaves (best effort) by the
            # no_agents exit rather than holding with nobody to offer it
            call.log.warning("esl.queue.refused", queue_id=queue_id, error=str(exc))
            with contextlib.suppress(AcdError, AcdConflict, PresenceError, ValueError):
                await asyncio.to_thread(self.acd.leave, cfg, call.ctx.call_id, "no_agents")
            return "no_agents", {"reason": str(exc)}
        finally:
            await hold.close()

    async def may_be_offered(self, cfg: QueueConfig, call_id: str) -> bool:
        """Whether ``offer`` could pick this caller now. The ACD offers only the longest
        waiting caller not already ringing agents, so only the first (rings in progress + 1)
        callers of the queue can be it. That head is read once per half poll for all of this
        process's callers of the queue (``ZCARD`` of the leases and ``ZRANGE`` of the queue,
        one round trip) instead of each caller asking the ACD, whose snapshot reads every
        agent of the account."""
        key, now = (cfg.account_id, cfg.id), time.monotonic()
        cached = self._heads.get(key)
        if cached is None or now - cached[0] >= self.timers.poll_sec / 2:
            reading = self._reading.get(key)
            if reading is None:
                reading = asyncio.ensure_future(asyncio.to_thread(self._head, cfg))
                self._reading[key] = reading
                reading.add_done_callback(lambda _: self._reading.pop(key, None))
            head = await asyncio.shield(reading)
            cached = (now, head)
            if len(self._heads) > 10_000:
                self._heads.clear()
            self._heads[key] = cached
        head = cached[1]
        return head is None or call_id in head

    def nudge(self, cfg: QueueConfig) -> None:
        """Wake this process's callers of the queue now (the head moved, an agent was
        released) instead of at their next poll: one offer per poll would cap a queue at a
        couple of offers per second when many agents free up at once."""
        key = (cfg.account_id, cfg.id)
        self._heads.pop(key, None)
        nudge = self._nudges.pop(key, None)
        if nudge is not None:
            nudge.set()

    def nudged(self, cfg: QueueConfig) -> asyncio.Event:
        return self._nudges.setdefault((cfg.account_id, cfg.id), asyncio.Event())

    def _head(self, cfg: QueueConfig) -> frozenset[str] | None:
        return self.acd.offerable(cfg.account_id, cfg.id, HEAD_READ)

    async def viable(self, account_id: str, queue_id: str) -> int:
        """``AcdStore.viable_agents``, shared by this process's callers of the queue for a
        moment (it reads every agent of the account)."""
        key, now = (account_id, queue_id), time.monotonic()
        cached = self._viable.get(key)
        if cached is not None and now - cached[0] < self.timers.viable_every_sec / 2:
            return cached[1]
        count = await asyncio.to_thread(self.acd.viable_agents, account_id, queue_id)
        if len(self._viable) > 10_000:
            self._viable.clear()
        self._viable[key] = (now, count)
        return count

    def spawn(self, coro: Any) -> None:
        """Run off the call path (a webhook); a failure is logged, never raised at the call."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.warning("esl.queue.background_failed", error=f"{type(error).__name__}: {error}")


class Hold:
    """One caller in one queue, from join to an outcome."""

    def __init__(
        self, feature: QueueFeature, call: CallRun, command: Command, setup: QueueSetup,
        cfg: QueueConfig,
    ) -> None:  # fmt: skip
        assert call.ctx is not None
        self.f, self.call, self.command, self.setup, self.cfg = feature, call, command, setup, cfg
        self.ctx = call.ctx
        self.session = call.session
        self.media = call.cfg.media
        self.timers = feature.timers
        self.exits = {str(e) for e in command.args.get("exits") or ()}
        self.language = cfg.language or call.fctx.language
        self.playing: Execution | None = None
        self.held = False  # the hold variables are set on the channel
        self._moh_started = 0.0
        self._moh_pause_until = 0.0
        self._dtmf: asyncio.Future[Event] | None = None
        self._gone: asyncio.Future[Any] | None = None

    # --- the whole hold -------------------------------------------------------------------------
    async def run(self) -> tuple[str, dict[str, Any]]:
        cfg, call_id = self.cfg, self.ctx.call_id
        taken = await self._taken_over()
        if taken is not None:
            return taken
        join = await self._acd(self.f.acd.join, cfg, call_id, self.setup.members)
        if join.exit is not None:
            await self._trace(
                "deflected", exit=join.exit, position=join.position, ewt_sec=join.ewt_sec
            )
            return self._exit(join.exit)
        detail = "rejoined" if join.rejoined else "joined"
        await self._trace(detail, position=join.position, ewt_sec=join.ewt_sec, ready=join.ready)
        if await self.f.viable(self.ctx.account_id, cfg.id) == 0:
            return await self._leave("no_agents")
        waiting = await self._acd(self.f.acd.waiting, cfg, call_id)
        waited = (waiting.waited_ms if waiting else 0) / 1000
        await self._set_hold_variables()
        return await self._hold(waited)

    async def _hold(self, waited: float) -> tuple[str, dict[str, Any]]:
        cfg, loop = self.cfg, asyncio.get_running_loop()
        began = loop.time() - waited
        deadline = began + cfg.max_wait_sec
        announce = math.inf
        if cfg.announce_position and cfg.announce_interval_sec >= 0:
            announce = began + cfg.announce_first_sec
            interval = max(cfg.announce_interval_sec, 1)
            while announce < loop.time():
                announce += interval
        viable_at = loop.time() + self.timers.viable_every_sec
        self._dtmf = self._expect_dtmf()
        first_poll = True  # instant connect: ask the ACD itself right after joining
        while True:
            if self.session.hung_up.is_set():
                return await self._leave("abandon")
            now = loop.time()
            if now >= deadline:
                return await self._leave("timeout")
            if now >= viable_at:
                viable_at = now + self.timers.viable_every_sec
                if await self.f.viable(self.ctx.account_id, cfg.id) == 0:
                    return await self._leave("no_agents")
            offer = None
            if first_poll or await self.f.may_be_offered(cfg, self.ctx.call_id):
                offer = await self._acd(
                    self.f.acd.offer, cfg, self.ctx.call_id, self.setup.positions
                )
            first_poll = False
            if offer is not None:
                self.f.nudge(cfg)  # the head moved: the next caller may be offered now
                await self._stop_moh()
                try:
                    rung = await self._ring(offer)
                finally:
                    self.f.nudge(cfg)  # agents released (a miss, a wrap-up) or the head moved
                if rung is not None:
                    return rung
                continue
            if self._dtmf.done():
                digit = _digit(self._dtmf)
                self._dtmf = self._expect_dtmf()
                option = self.setup.options.get(digit)
                await self._trace("key", digit=digit, action=option.action if option else None)
                if option is not None:
                    await self._stop_moh()
                    chosen = await self._option(option)
                    if chosen is not None:
                        return chosen
                    continue
            if now >= announce:
                announce = now + max(cfg.announce_interval_sec, 1)
                await self._stop_moh()
                await self._announce()
                continue
            if (
                self.playing is None or self.playing.complete.done()
            ) and now >= self._moh_pause_until:
                await self._start_moh()
            await self._idle(min(self.timers.poll_sec, max(deadline - now, 0.0)))

    async def _idle(self, seconds: float) -> None:
        """Sleep until the next poll, a key, the caller's hang-up or the MOH's end."""
        assert self._dtmf is not None
        watched: set[asyncio.Future[Any]] = {self._dtmf}
        if self._gone is None:  # one waiter for the whole hold, not one per poll
            self._gone = asyncio.ensure_future(self.session.hung_up.wait())
        watched.add(self._gone)
        if self.playing is not None and not self.playing.complete.done():
            watched.add(self.playing.complete)
        nudged = asyncio.ensure_future(self.f.nudged(self.cfg).wait())
        watched.add(nudged)
        try:
            await asyncio.wait(watched, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            nudged.cancel()
        ended = self.playing is not None and self.playing.complete.done()
        if ended and time.monotonic() - self._moh_started < 1.0:  # a missing file: no busy loop
            self._moh_pause_until = asyncio.get_running_loop().time() + 1.0

    async def close(self) -> None:
        for waiter in (self._dtmf, self._gone):
            if waiter is not None:
                waiter.cancel()
        if self.playing is not None and not self.playing.complete.done():
            await self._stop_moh()

    # --- exits ----------------------------------------------------------------------------------
    async def _leave(self, exit: str) -> tuple[str, dict[str, Any]]:
        """The caller leaves the queue without an agent through ``exit``."""
        await self._stop_moh()
        await self._acd(self.f.acd.leave, self.cfg, self.ctx.call_id, exit)
        await self._trace("exit", exit=exit)
        await self._clear_hold_variables()
        return self._exit(exit)

    def _exit(self, exit: str) -> tuple[str, dict[str, Any]]:
        outcome = CALLER_HANGUP if exit == "abandon" else exit
        data: dict[str, Any] = {"queueId": self.cfg.id}
        if exit in self.exits:
            return outcome, data
        target = self.setup.exit_target(exit)
        # a caller who hung up can only go on where no caller is needed (a flow that logs it)
        if target is not None and (exit != "abandon" or target[0] == "flow"):
            data[CONTINUE_AT] = {"kind": target[0], "id": target[1]}
        return outcome, data

    # --- agents ---------------------------------------------------------------------------------
    async def _ring(self, offer: Offer) -> tuple[str, dict[str, Any]] | None:
        """Bridge the caller to the offered agents; None when nobody answered (hold again)."""
        cfg, ctx = self.cfg, self.ctx
        remaining = (offer.lease_until - time.time() * 1000) / 1000
        ring = max(1, min(cfg.agent_ring_timeout_sec, math.ceil(remaining)))
        legs = {leg_uuid(ctx.uuid, user): user for user in offer.user_ids}
        bridged = self.session.conn.expect(
            lambda e: e.name == "CHANNEL_BRIDGE" and _answerer(e, legs) is not None
        )
        try:
            execution = await self.session.execute(
                "bridge", self._dial(offer.user_ids, ring), uuid=self.ctx.uuid
            )
        except (CommandError, apps.PlanError) as exc:
            bridged.cancel()
            self.call.log.info("esl.queue.bridge_refused", error=str(exc))
            await self._acd(self.f.acd.missed, cfg, ctx.call_id)
            await asyncio.sleep(self.timers.poll_sec)  # not at once to the same refusal
            return None
        await self._trace("ring", agents=list(offer.user_ids), ring_sec=ring)
        gone: asyncio.Future[Any] = asyncio.ensure_future(self.session.hung_up.wait())
        watched: set[asyncio.Future[Any]] = {bridged, execution.complete, gone}
        try:
            await asyncio.wait(
                watched,
                timeout=ring + 30,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            gone.cancel()
        if bridged.done() and not bridged.cancelled():
            return await self._talk(bridged.result(), legs, execution)
        bridged.cancel()
        if self.session.hung_up.is_set():
            return await self._leave("abandon")
        done = execution.complete.result() if execution.complete.done() else None
        cause = (done.variable("originate_disposition") if done else None) or "no completion"
        missed = await self._acd(self.f.acd.missed, cfg, ctx.call_id)
        await self._trace("no_answer", agents=list(missed), cause=cause)
        return None

    async def _talk(
        self, event: Event, legs: dict[str, str], execution: Execution
    ) -> tuple[str, dict[str, Any]] | None:
        cfg, ctx = self.cfg, self.ctx
        agent = _answerer(event, legs) or ""
        try:
            await self._acd(self.f.acd.answered, cfg, ctx.call_id, agent)
        except NotOffered:  # its lease ran out meanwhile: it may not keep the caller
            await self._trace("answer_refused", agent=agent)
            await self.session.api(f"uuid_kill {event.get('Other-Leg-Unique-ID')}")
            await self.call._completion(execution, self.timers.stop_budget + 5)
            return None
        await self._trace("answered", agent=agent)
        await self.call._completion(execution, BRIDGE_HOURS)
        await self._acd(self.f.acd.finished, cfg, ctx.call_id, agent)
        await self._trace("finished", agent=agent)
        return "answered", {"queueId": cfg.id, "agentId": agent}

    def _dial(self, users: tuple[str, ...], ring: int) -> str:
        """One leg per agent through Kamailio, like ``apps._dial``; the caller hears the hold
        music as ringback; after the answer FreeSWITCH leaves the media path
        (``bypass_media_after_bridge``, set on the caller's leg with the hold variables)."""
        ctx, media = self.ctx, self.media
        legs = [
            agent_legs.leg(self.cfg, user, leg_uuid(ctx.uuid, user), ring, self.language, media)
            for user in users
        ]
        common = f"{{call_timeout={ring},ignore_early_media=true,hangup_after_bridge=false}}"
        return common + ",".join(legs)

    async def _taken_over(self) -> tuple[str, dict[str, Any]] | None:
        """A controller that died left the caller bridged to one of our agents (the bridge
        is over: FreeSWITCH resumed the dialplan only then): record it and end the call."""
        channel = self.session.channel
        last = channel.var("last_bridge_to") if channel is not None else None
        if not last:
            return None
        agent = next((u for u in self.setup.members if leg_uuid(self.ctx.uuid, u) == last), None)
        if agent is None:
            return None
        with contextlib.suppress(NotOffered):  # recorded before it died, or its lease swept
            await self._acd(self.f.acd.answered, self.cfg, self.ctx.call_id, agent)
        await self._acd(self.f.acd.finished, self.cfg, self.ctx.call_id, agent)
        await self._trace("taken_over_after_bridge", agent=agent)
        return "answered", {
            "queueId": self.cfg.id,
            "agentId": agent,
            "detail": "controller_takeover",
        }

    # --- in-queue options (SPEC 7.5) ------------------------------------------------------------
    async def _option(self, option: QueueOption) -> tuple[str, dict[str, Any]] | None:
        action = option.action
        if action == "callback":
            return await self._callback(option)
        if action in ("webhook", "deflect") and option.webhook_url:
            waiting = await self._acd(self.f.acd.waiting, self.cfg, self.ctx.call_id)
            self.f.spawn(self._webhook(option, waiting.position if waiting else None))
        if option.prompt_media_id:
            await self._play([{"media": option.prompt_media_id}])
        if action == "deflect" or (action == "webhook" and option.stay_in_queue):
            return None
        if action == "route" and option.dest_kind:
            return await self._leave_for("route", {"kind": option.dest_kind, "id": option.dest_id})
        reason = "route" if action == "webhook" else "hangup"
        return await self._leave_for(reason, {"kind": "hangup"})

    async def _leave_for(self, reason: str, target: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        await self._stop_moh()
        await self._acd(self.f.acd.leave, self.cfg, self.ctx.call_id, reason)
        await self._trace("option_exit", reason=reason, target=target)
        await self._clear_hold_variables()
        return reason, {"queueId": self.cfg.id, CONTINUE_AT: target}

    async def _webhook(self, option: QueueOption, position: int | None) -> None:
        headers = {}
        if option.webhook_secret_ref:
            try:
                token = await asyncio.to_thread(self.f.secrets().resolve, option.webhook_secret_ref)
                headers["Authorization"] = f"Bearer {token}"
            except (SecretStoreError, ValueError) as exc:  # sent without; the value never logged
                self.call.log.warning("esl.queue.webhook_secret", error=type(exc).__name__)
        body = {
            "event": "in_queue_option", "accountId": self.ctx.account_id,
            "queueId": self.cfg.id, "callId": self.ctx.call_id, "digit": option.digit,
            "action": option.action, "label": option.label,
            "callerNumber": self.ctx_variable("caller_number"),
            "position": position,
        }  # fmt: skip
        args = {"method": "POST", "url": option.webhook_url, "headers": headers, "body": body}
        outcome, data = await self.f.http.run(args)
        status = data.get("status") if outcome == "response" else None
        await self._trace("webhook", digit=option.digit, outcome=outcome, status=status)

    async def _callback(self, option: QueueOption) -> tuple[str, dict[str, Any]] | None:
        """Courtesy callback: the caller keeps their place (enqueue time) in the ACD, marked
        with the number to call back, and hangs up; a dialer (esl/callbacks.py) calls back
        when an agent takes it. A caller without a number we can call keeps holding."""
        dial = callback_dial(str(self.ctx_variable("caller_number") or ""))
        if dial is None:
            await self._trace("callback_unavailable", reason="caller number not callable")
            return None
        policy = self.f.callbacks
        waiting = await self._acd(
            self.f.acd.callback, self.cfg, self.ctx.call_id, dial, policy.window_sec
        )
        if waiting is None:  # no longer waiting (swept meanwhile): nothing to keep
            return await self._leave("timeout")
        await self._trace("callback", position=waiting.position, waited_ms=waiting.waited_ms)
        if option.prompt_media_id:
            await self._play([{"media": option.prompt_media_id}])
        await self._clear_hold_variables()
        return "callback", {"queueId": self.cfg.id, CONTINUE_AT: {"kind": "hangup"}}

    def ctx_variable(self, name: str) -> Any:
        return self.ctx.call_variables().get(name)

    # --- media ----------------------------------------------------------------------------------
    def _moh(self) -> str:
        cfg = self.cfg
        custom = (
            cfg.moh_media_id if cfg.moh_media_id and apps.SAFE_ID.match(cfg.moh_media_id) else None
        )
        if cfg.moh_mode == "file" and custom:
            return f"{self.media.media_root}/{self.ctx.account_id}/{custom}.wav"
        return f"local_stream://{custom}" if custom else self.media.moh

    async def _set_hold_variables(self) -> None:
        if self.held:
            return
        values = (
            f"sipio_queue={self.cfg.id} playback_terminators=none "
            f"playback_timeout_sec={self.timers.hold_slice_sec} transfer_ringback={self._moh()} "
            "bypass_media_after_bridge=true hangup_after_bridge=false"
        )
        await self.call.run_apps([apps.AppCall("multiset", values)], self.call.cfg.command_timeout)
        self.held = True

    async def _clear_hold_variables(self) -> None:
        if not self.held or self.session.hung_up.is_set():
            return
        values = "sipio_queue= playback_timeout_sec= transfer_ringback= bypass_media_after_bridge="
        await self.call.run_apps([apps.AppCall("multiset", values)], self.call.cfg.command_timeout)
        self.held = False

    async def _start_moh(self) -> None:
        if self.session.hung_up.is_set():
            return
        try:
            self.playing = await self.session.execute("playback", self._moh(), uuid=self.ctx.uuid)
            self._moh_started = time.monotonic()
        except CommandError as exc:
            self.call.log.info("esl.queue.moh_refused", error=str(exc))
            self.playing = None

    async def _stop_moh(self) -> None:
        """``uuid_break`` ends the playback (FreeSWITCH reports it FILE PLAYED); its
        completion is awaited so the next application does not queue behind it."""
        playing, self.playing = self.playing, None
        if playing is None or playing.complete.done() or self.session.hung_up.is_set():
            return
        try:
            await self.session.api(f"uuid_break {self.ctx.uuid}")
        except (EslError, OSError) as exc:
            self.call.log.info("esl.queue.break_failed", error=str(exc))
        await self.call._completion(playing, self.timers.stop_budget)

    async def _announce(self) -> None:
        waiting = await self._acd(self.f.acd.waiting, self.cfg, self.ctx.call_id)
        if waiting is None:
            return
        prompts: list[dict[str, Any]] = [
            {"system": "queue_position"}, {"system": f"number_{min(waiting.position, 99)}"},
        ]  # fmt: skip
        if waiting.ewt_sec > 0:
            minutes = min(max(1, math.ceil(waiting.ewt_sec / 60)), 99)
            prompts += [{"system": "queue_wait"}, {"system": f"number_{minutes}"},
                        {"system": "minutes"}]  # fmt: skip
        await self._trace("announce", position=waiting.position, ewt_sec=waiting.ewt_sec)
        await self._play(prompts)

    async def _play(self, prompts: list[dict[str, Any]]) -> None:
        try:
            files = apps.prompt_files(prompts, self.ctx.account_id, self.language, self.media)
        except apps.PlanError as exc:
            self.call.log.warning("esl.queue.bad_prompt", error=str(exc))
            return
        await self.call.run_apps([apps.AppCall("playback", files)], apps.HOUR)

    def _expect_dtmf(self) -> asyncio.Future[Event]:
        return self.session.conn.expect(lambda e: e.name == "DTMF")

    # --- plumbing -------------------------------------------------------------------------------
    async def _acd(self, method: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(method, *args)

    async def _trace(self, detail: str, **data: Any) -> None:
        self.call.log.info("esl.queue." + detail, queue_id=self.cfg.id, **data)
        data = {"queue_id": self.cfg.id, "detail": detail, **data}
        data["controller"] = self.call.cfg.node_id
        await self._event(
            "queue_step", {"emitter": "flow", "node_id": self.command.node_id, "data": data}
        )

    async def _event(self, kind: str, body: dict[str, Any]) -> None:
        event = {"type": kind, "call_id": self.ctx.call_id, "ts": int(time.time() * 1000),
                 "account_id": self.ctx.account_id, **body}  # fmt: skip
        store = self.call.ctl.store
        await store.redis.xadd(
            store.stream, {"e": json.dumps(event, separators=(",", ":"), default=str)}
        )


def _answerer(event: Event, legs: dict[str, str]) -> str | None:
    """The agent whose leg answered: by the leg uuid we chose, else by the number dialled
    (the agent's user id) should the uuid not have been honoured."""
    by_uuid = legs.get(event.get("Other-Leg-Unique-ID") or "")
    if by_uuid is not None:
        return by_uuid
    number = event.get("Other-Leg-Destination-Number")
    return number if number in legs.values() else None


def _digit(future: asyncio.Future[Event]) -> str:
    if future.cancelled() or future.exception() is not None:
        return ""
    return future.result().get("DTMF-Digit") or ""
