"""The per-call flow controller: FreeSWITCH's ``socket`` application connects, we run the flow.

For each call: read Kamailio's context from the ``connect`` reply, ask FreeSWITCH to
``resume`` the dialplan if we vanish, subscribe to the channel's events (filtered down to
application completions and hang-up), then loop:

1. save the session (state + the command about to run) to Redis, flushing trace events to
   ``sipio:events`` when the interpreter says so (write-ahead: a successor can pick up here);
2. run the command: dialplan applications via ``sendmsg`` (``esl/apps.py``), or an HTTP
   request (``esl/http_command.py``);
3. feed the result back into the interpreter with the command's ``seq`` echoed.

Takeover: when a controller dies, FreeSWITCH resumes the dialplan and its next ``socket``
action reaches another controller (or this one, restarted) with the same channel. That
controller finds the session in Redis, fences the old owner off (epoch), and continues:
the digits of a gather that finished meanwhile are read from the channel, other commands run
again (a prompt is heard twice), and a bridge that may already have happened ends the call
cleanly rather than ringing anyone twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from redis.exceptions import RedisError

from control.core.flow import (
    Command,
    CommandKind,
    FlowContext,
    FlowDocument,
    SessionState,
    Step,
    TraceEvent,
    drain_trace,
    start,
    step,
)
from esl import apps
from esl.client import Execution
from esl.connection import CommandError, EslError
from esl.context import CallContext, ContextError, read_context
from esl.flows import FlowSource, load_for_start, load_pinned
from esl.http_command import HttpRunner
from esl.outbound import ChannelData, OutboundSession
from esl.protocol import Event
from esl.session_store import SessionRecord, SessionStore, flow_step_event

log = structlog.get_logger("esl.controller")

# With filters, FreeSWITCH sends only these of the channel's ~20 event kinds (each one ~150
# headers it must serialise and we must parse); myevents still limits them to this channel.
WATCHED = ("CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP")
CONTINUE_AT = "continueAt"  # a feature's result data: where the call goes on (esl/queue.py)
MAX_CONTINUATIONS = 8  # queue exit → queue exit → ...: a misconfigured loop still ends
ENGINE_COMMANDS = frozenset(
    {CommandKind.PLAY, CommandKind.SAY, CommandKind.GATHER, CommandKind.RECORD,
     CommandKind.DIAL, CommandKind.ENQUEUE, CommandKind.CONFERENCE, CommandKind.VOICEMAIL}
)  # fmt: skip


@dataclass(frozen=True)
class ControllerConfig:
    node_id: str = field(default_factory=socket.gethostname)
    media: apps.MediaConfig = field(default_factory=apps.MediaConfig)
    linger_sec: int = 5  # keep the socket after hangup long enough for the last events
    command_timeout: float = 5.0  # every ESL command's reply
    hangup_grace: float = 2.0  # after CHANNEL_HANGUP, wait this long for the app's completion


class Feature(Protocol):
    """A command whose execution is more than a list of applications (the ACD's enqueue,
    voicemail, conference): it drives the channel itself through the call's :class:`CallRun`
    and returns the ``(outcome, data)`` the interpreter expects."""

    async def run(self, call: CallRun, command: Command) -> tuple[str, dict[str, Any]]: ...


@dataclass
class ControllerStats:
    calls: int = 0
    resumed: int = 0
    rejected: int = 0
    lost: int = 0  # another controller took the call over while we still held it
    commands: int = 0
    turnaround_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))


def _now() -> datetime:
    return datetime.now(UTC)


class Controller:
    """Dependencies shared by every call; :meth:`handle` is the outbound server's handler."""

    def __init__(
        self,
        store: SessionStore,
        flows: FlowSource,
        http: HttpRunner | None = None,
        config: ControllerConfig | None = None,
        *,
        clock: Callable[[], datetime] = _now,
        features: Mapping[CommandKind, Feature] | None = None,
    ) -> None:
        self.store, self.flows = store, flows
        self.features = dict(features or {})
        self.http = http or HttpRunner()
        self.config = config or ControllerConfig()
        self.clock = clock
        self.stats = ControllerStats()

    async def handle(self, session: OutboundSession) -> None:
        await CallRun(self, session).run()


class LostCall(Exception):
    """Another controller owns the call now (its epoch is newer than ours)."""


class CallRun:
    def __init__(self, ctl: Controller, session: OutboundSession) -> None:
        self.ctl, self.session, self.cfg = ctl, session, ctl.config
        self.ctx: CallContext | None = None
        self.epoch = 0
        self.doc: FlowDocument | None = None
        self.fctx = FlowContext()
        self.context: dict[str, Any] = {}
        self.log = log
        self._turnaround: float | None = None  # when the last result came in (perf_counter)

    # --- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        session = self.session
        try:
            channel = await session.connect(timeout=self.cfg.command_timeout)
            try:
                self.ctx = ctx = read_context(channel)
            except ContextError as exc:
                self.ctl.stats.rejected += 1
                log.warning("esl.call.rejected", uuid=channel.uuid, reason=str(exc))
                await self._hangup("CALL_REJECTED")
                return
            self.log = log.bind(call_id=ctx.call_id, account_id=ctx.account_id)
            await asyncio.gather(  # one round trip: replies come back in order
                session.resume(),
                session.myevents(),
                *(session.filter("Event-Name", name) for name in WATCHED),
                session.linger(self.cfg.linger_sec),
            )
            first = await self._begin(ctx, channel)
            if first is None:
                return
            if not ctx.answered and not session.hung_up.is_set():
                await self.run_apps([apps.AppCall("answer")], self.cfg.command_timeout * 4)
            await self._loop(first)
        except LostCall:
            self.ctl.stats.lost += 1
            self.log.warning("esl.call.lost_ownership")
        except (EslError, OSError) as exc:  # FreeSWITCH or the socket went away mid-call
            self.log.warning("esl.call.connection_lost", error=str(exc))
        except RedisError as exc:  # no session store: let the next controller try
            self.log.error("esl.call.store_unavailable", error=f"{type(exc).__name__}: {exc}")

    async def _begin(self, ctx: CallContext, channel: ChannelData) -> Step | None:
        store = self.ctl.store
        record = await store.load(ctx.account_id, ctx.call_id)
        self.epoch = await store.claim(ctx.account_id, ctx.call_id, self.cfg.node_id)
        now = self.ctl.clock()
        if record is None or record.state is None:
            loaded = await load_for_start(
                self.ctl.flows, ctx.account_id, ctx.target_kind, ctx.target_id, ctx.flow_version
            )
            if loaded is None:
                await store.forget(ctx.account_id, ctx.call_id)
                await self._unavailable(ctx, f"{ctx.target_kind}:{ctx.target_id}")
                return None
            self.doc, self.fctx = loaded
            self.ctl.stats.calls += 1
            self.context = {"uuid": ctx.uuid, "target": f"{ctx.target_kind}:{ctx.target_id}"}
            self.log.info("esl.call.start", flow=self.doc.id, version=self.doc.version)
            return start(
                self.doc, now, self.fctx, call_id=ctx.call_id,
                variables=ctx.call_variables(), trigger="inbound",
            )  # fmt: skip
        state = record.state
        loaded = await load_pinned(self.ctl.flows, ctx.account_id, state.flow_id, state.pins)
        if loaded is None:
            await self._unavailable(ctx, f"pinned flow {state.flow_id}")
            return None
        self.doc, self.fctx = loaded
        self.context = {**record.context, "uuid": ctx.uuid}
        self.ctl.stats.resumed += 1
        self.log.info("esl.call.takeover", previous_owner=record.owner, epoch=self.epoch)
        return self._takeover(state, record.pending, channel, now)

    def _takeover(
        self,
        state: SessionState,
        pending: dict[str, Any] | None,
        channel: ChannelData,
        now: datetime,
    ) -> Step:
        assert self.doc is not None
        command = _command(pending) if pending else None
        # a feature's hand-off (a transfer into a queue) resumes itself; other ended flows stop
        handoff = command is not None and command.kind in self.ctl.features
        if (state.ended and not handoff) or command is None:
            reason = "ended" if state.ended else "nothing_pending"
            return Step(Command(CommandKind.HANGUP, {"cause": "normal_clearing", "reason": reason},
                                state.seq, state.node_id), state)  # fmt: skip
        if command.kind is CommandKind.GATHER:
            digits = apps.digits_from_channel(
                command, {k.removeprefix("variable_"): v for k, v in channel.frame.pairs}
            )
            if digits:  # the caller answered while no controller was listening
                return step(self.doc, state, "digits", {"digits": digits}, now, self.fctx,
                            seq=command.seq)  # fmt: skip
        if command.kind is CommandKind.DIAL:
            return _end(state, command, now, "controller_takeover")
        return Step(command, state)  # run it again

    async def _unavailable(self, ctx: CallContext, what: str) -> None:
        """No flow to run: one traced event and a clean hang-up."""
        event = {
            "type": "flow_step", "call_id": ctx.call_id, "ts": int(time.time() * 1000),
            "account_id": ctx.account_id, "node_id": None, "outcome": None,
            "data": {"step": "end", "detail": "flow_unavailable", "target": what,
                     "controller": self.cfg.node_id},
        }  # fmt: skip
        await self.ctl.store.redis.xadd(self.ctl.store.stream, {"e": _json(event)})
        self.log.warning("esl.call.flow_unavailable", target=what)
        await self._hangup("NORMAL_TEMPORARY_FAILURE")

    # --- the command loop -----------------------------------------------------------------------
    async def _loop(self, current: Step) -> None:
        assert self.ctx is not None and self.doc is not None
        while True:
            state, command = current.state, current.command
            events: list[TraceEvent] = []
            if current.flush or state.ended:
                events, state = drain_trace(state)
            final = command.kind in (CommandKind.HANGUP, CommandKind.NOOP)
            await self._save(state, None if final else command.to_json(), events)
            if final:
                await self._hangup(apps.hangup_cause(command))
                return
            outcome, data = await self._perform(command)
            target = data.get(CONTINUE_AT)
            if isinstance(target, dict):  # a queue exit the flow left to the queue's target
                current = await self._continue_at(state, command, outcome, target)
                continue
            if state.ended:  # a hand-off that ends the flow (voicemail, transfer...) is done
                await self._save(state, None, [])
                await self._hangup("NORMAL_CLEARING")
                return
            started = time.perf_counter()
            current = step(self.doc, state, outcome, data, self.ctl.clock(), self.fctx,
                           seq=command.seq)  # fmt: skip
            self._turnaround = started

    async def _continue_at(
        self, state: SessionState, command: Command, outcome: str, target: dict[str, Any]
    ) -> Step:
        """Restart the interpreter on a route target (``target_flow``: entry → transfer, or
        the flow itself): the flow so far ends with a traced reason naming the target, and
        the new one numbers on from it (commands and trace events stay unique per call).
        ``kind: hangup`` just ends the call."""
        assert self.ctx is not None
        kind, target_id = str(target.get("kind") or ""), str(target.get("id") or "")
        reason = f"{command.kind.value}_{outcome}:{kind}" + (f":{target_id}" if target_id else "")
        ended = _end(state, command, self.ctl.clock(), reason)
        hops = int(self.context.get("continued", 0)) + 1
        loaded = None
        if kind != "hangup" and hops <= MAX_CONTINUATIONS and apps.SAFE_ID.match(target_id):
            account = self.ctx.account_id
            loaded = await load_for_start(self.ctl.flows, account, kind, target_id, None)
        if loaded is None:
            return ended
        old = ended.state
        self.doc, self.fctx = loaded
        self.context = {**self.context, "continued": hops, "target": f"{kind}:{target_id}"}
        self.log.info("esl.call.continue_at", target=f"{kind}:{target_id}", reason=reason)
        fresh = start(self.doc, self.ctl.clock(), self.fctx, call_id=old.call_id,
                      variables=old.variables, trigger="inbound")  # fmt: skip
        new = fresh.state.copy()
        new.trace = list(old.trace) + [
            replace(e, seq=e.seq + old.trace_seq) for e in fresh.state.trace
        ]
        new.trace_seq += old.trace_seq
        new.seq += old.seq + 1
        new.steps += old.steps
        new.started_ms = old.started_ms
        return Step(replace(fresh.command, seq=new.seq), new)

    async def _save(
        self, state: SessionState, pending: dict[str, Any] | None, trace: list[TraceEvent]
    ) -> None:
        ctx = self.ctx
        assert ctx is not None
        node = self.cfg.node_id
        events = [flow_step_event(e, ctx.call_id, ctx.account_id, node) for e in trace]
        record = SessionRecord(
            ctx.account_id, ctx.call_id, self.epoch, node, state, pending, self.context
        )
        if not await self.ctl.store.save(record, events):
            raise LostCall(ctx.call_id)

    async def _perform(self, command: Command) -> tuple[str, dict[str, Any]]:
        assert self.ctx is not None
        self.ctl.stats.commands += 1
        if self._turnaround is not None:  # step + Redis save: the controller's own latency
            self.ctl.stats.turnaround_ms.append((time.perf_counter() - self._turnaround) * 1000)
            self._turnaround = None
        if command.kind is CommandKind.HTTP:
            return await self.ctl.http.run(command.args)
        if command.kind not in ENGINE_COMMANDS:
            return "error", {"reason": f"unknown command {command.kind.value}"}
        if self.session.hung_up.is_set():
            return "hangup", {}
        feature = self.ctl.features.get(command.kind)
        if feature is not None:
            return await feature.run(self, command)
        try:
            plan = apps.plan(command, self.ctx.account_id, self.ctx.uuid, self.cfg.media)
        except apps.PlanError as exc:
            self.log.warning("esl.call.bad_command", command=command.kind.value, error=str(exc))
            return "error", {"reason": str(exc)}
        done = await self.run_apps(list(plan.calls), plan.budget)
        return apps.result(command, done, self.session.hung_up.is_set())

    async def run_apps(self, calls: list[apps.AppCall], budget: float) -> Event | None:
        done: Event | None = None
        for call in calls:
            if self.session.hung_up.is_set():
                return None
            try:
                execution = await self.session.execute(call.app, call.arg, uuid=self.ctx_uuid)
            except CommandError as exc:  # e.g. the channel is already gone
                self.log.info("esl.call.execute_refused", app=call.app, error=str(exc))
                return None
            done = await self._completion(execution, budget)
            if done is None:
                return None
        return done

    @property
    def ctx_uuid(self) -> str | None:
        return self.ctx.uuid if self.ctx else None

    async def _completion(self, execution: Execution, budget: float) -> Event | None:
        """The application's CHANNEL_EXECUTE_COMPLETE; after a hangup, only a short grace
        (an event-locked application queued behind the caller's hangup never completes)."""
        hung_up: asyncio.Future[Any] = asyncio.ensure_future(self.session.hung_up.wait())
        watched: set[asyncio.Future[Any]] = {execution.complete, hung_up}
        try:
            await asyncio.wait(watched, timeout=budget, return_when=asyncio.FIRST_COMPLETED)
            if not execution.complete.done() and hung_up.done():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.cfg.hangup_grace):
                        await asyncio.shield(execution.complete)
            if execution.complete.done():
                return execution.complete.result()  # raises ConnectionClosed if the socket died
            self.log.warning("esl.call.app_timeout", app=execution.app, budget=budget)
            return None
        finally:
            hung_up.cancel()

    async def _hangup(self, cause: str) -> None:
        session = self.session
        if session.hung_up.is_set() or not session.conn.is_open:
            return
        with contextlib.suppress(EslError, OSError):
            await session.hangup(cause, uuid=self.ctx_uuid)
            async with asyncio.timeout(self.cfg.hangup_grace):
                await session.hung_up.wait()


def _command(pending: dict[str, Any]) -> Command:
    args = {k: v for k, v in pending.items() if k not in ("command", "seq", "nodeId")}
    return Command(
        CommandKind(pending["command"]), args, int(pending["seq"]), pending.get("nodeId")
    )


def _end(state: SessionState, command: Command, now: datetime, reason: str) -> Step:
    """End a call the interpreter still thinks is waiting, with a traced reason."""
    ended = state.copy()
    ms = int(now.timestamp() * 1000)
    ended.trace.append(
        TraceEvent(
            seq=ended.trace_seq, ts=ms, type="end", flow_id=ended.current_flow,
            version=ended.pins.get(ended.current_flow, 0), node_id=command.node_id,
            kind=command.kind.value, detail=reason,
        )
    )  # fmt: skip
    ended.trace_seq += 1
    ended.ended, ended.end_reason, ended.awaiting = True, reason, None
    ended.seq += 1
    hangup = Command(CommandKind.HANGUP, {"cause": "normal_clearing", "reason": reason},
                     ended.seq, command.node_id)  # fmt: skip
    return Step(hangup, ended)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)
