"""A FreeSWITCH stand-in for outbound sessions: it places calls into the controller the way
the ``socket`` dialplan application does and plays FreeSWITCH's part of the conversation.

Every frame it sends is a frame FreeSWITCH 1.11.1 sent in the captures, with only the values
that must change replaced (channel uuid and Call-ID, application name/data/uuid/response, the
channel variables the call has set), re-encoded with FreeSWITCH's URL encoding. Replies use
the recorded framings and texts. The order of events per application, hang-up sequences and
linger notices follow the captures (out01b for a call we hang up, out02c for a caller BYE).

What the peer models: ``connect``, ``myevents``, ``event``, ``filter`` (OR-ed, compared
case-insensitively like mod_event_socket; ``filter delete`` drops all), ``linger``/``nolinger``,
``resume``, ``api uuid_getvar``/``uuid_break``, ``sendmsg`` execute/hangup, ``exit``; the
applications answer, playback, speak, play_and_get_digits, set, multiset, record, bridge,
conference and voicemail, run one at a time; a lost socket with ``resume`` continues the
"dialplan" into the next controller address (the failover ``socket`` action), without it the
call is hung up. What the caller does is scripted per call by :class:`Caller`.

Queue holds: a ``playback`` of a ``local_stream://`` source lasts until ``api uuid_break``, the
caller's hang-up or ``playback_timeout_sec`` (then ``FILE PLAYED``, as mod_dptools reports a
broken playback); keys pressed during a playback (``Reaction.digits``) arrive as DTMF events.
A ``bridge`` dials its comma-separated legs; the script says which agent answers
(``Reaction.answered_by``, matched against the leg's user) and how long they talk: the answer
gives CHANNEL_BRIDGE with the ``Other-Leg-*`` headers of the chosen leg (its
``origination_uuid`` as ``Other-Leg-Unique-ID``), the end CHANNEL_UNBRIDGE, and the channel
keeps ``originate_disposition``, ``DIALSTATUS``, ``last_bridge_to`` and
``bridge_hangup_cause`` as FreeSWITCH leaves them. Bridge events are CHANNEL_BRIDGE frames
recorded in ``orig01_events_plain_ALL`` around this channel's own headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tests.esl.fswire import (
    Pairs,
    Recorded,
    api_frame,
    channel_frame,
    disconnect_notice,
    event_frame,
    fs_encode,
    linger_notice,
    read_command,
    recorded,
    reply_frame,
)

FULL_CALL = "out01b_socket_7000_myevents_plus_event_plain_linger5"
CALLER_BYE = "out02c_caller_bye_during_playback_7001_event_lock_linger3"
BRIDGES = "orig01_events_plain_ALL"
STREAM = "local_stream://"
MYEVENTS = {
    "CHANNEL_ANSWER", "CHANNEL_APPLICATION", "CHANNEL_BRIDGE", "CHANNEL_CREATE", "CHANNEL_DATA",
    "CHANNEL_DESTROY", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE", "CHANNEL_ORIGINATE", "CHANNEL_UUID", "CHANNEL_OUTGOING",
    "CHANNEL_PARK", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_STATE",
    "CHANNEL_UNBRIDGE", "CHANNEL_UNPARK", "DETECTED_SPEECH", "DTMF", "NOTALK", "TALK",
}  # fmt: skip
# Variables the capture session's own applications left behind: never copied from templates.
SESSION_RESULTS = (
    "pagd_digits", "read_result", "read_terminator_used", "record_", "playback_", "conference_",
    "digits_dialed", "silence_hits_exhausted", "current_application_response", "last_app",
    "last_arg",
)  # fmt: skip
RESPONSES = {"playback": "FILE PLAYED", "speak": "_none_"}


@dataclass
class Reaction:
    """What happens while one application runs."""

    digits: str = ""  # keys pressed during play_and_get_digits (a terminator ends them)
    variables: dict[str, str] = field(default_factory=dict)  # set when the app completes
    hangup: bool = False  # the caller hangs up during this application
    hold: asyncio.Event | None = None  # the application lasts until this is set
    delay: float = 0.0
    # bridge: the user id whose leg answers (None: nobody does within ``delay``), then talks
    # for ``talk`` s (or until ``hold`` is set) and hangs up
    answered_by: str | None = None
    talk: float = 0.0
    # bridge, when a SIP side dials the legs for real (tests/esl/fs_sip.py): resolved with the
    # user whose leg answered (None: nobody; ``variables`` then say why), instead of ``delay``
    ring: asyncio.Future[str | None] | None = None


@dataclass
class Caller:
    """The caller's script, by application: ``on[app]`` lists reactions for successive runs
    (the last one repeats); ``react`` may decide from the argument instead."""

    on: dict[str, list[Reaction]] = field(default_factory=dict)
    react: Callable[[str, str, int], Reaction | None] | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def reaction(self, app: str, arg: str) -> Reaction:
        n = self.counts.get(app, 0)
        self.counts[app] = n + 1
        if self.react is not None:
            chosen = self.react(app, arg, n)
            if chosen is not None:
                return chosen
        script = self.on.get(app)
        return script[min(n, len(script) - 1)] if script else Reaction()


@dataclass
class CallRecord:
    uuid: str
    call_id: str
    apps: list[tuple[str, str]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    connections: int = 0
    hangup_cause: str | None = None
    hung_up_by: str | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    # (sent EXECUTE_COMPLETE, next command arrived) pairs: the controller's turnaround
    turnarounds: list[float] = field(default_factory=list)
    bridged: list[str] = field(default_factory=list)  # agents (users) the caller talked to


class Channel:
    def __init__(
        self,
        peer: FreeSwitchPeer,
        headers: dict[str, str],
        caller: Caller,
        uuid: str | None = None,
        call_id: str | None = None,
        caller_number: str | None = None,
    ) -> None:
        self.peer, self.caller = peer, caller
        self.caller_number = caller_number
        self.uuid = uuid or str(uuidlib.uuid4())
        self.call_id = call_id or f"{uuidlib.uuid4().hex[:12]}@127.0.0.1"
        self.vars: dict[str, str] = {f"sip_h_{k}": v for k, v in headers.items()}
        self.answered = False
        self.hung_up = False
        self.record = CallRecord(self.uuid, self.call_id)
        self.seq = 0
        self.sessions: list[Session] = []  # the live socket connection(s)


class Session:
    """One socket connection of a channel (a channel may get several after failovers)."""

    def __init__(self, channel: Channel, writer: asyncio.StreamWriter) -> None:
        self.channel, self.writer = channel, writer
        self.myevents = False
        self.subscribed: set[str] = set()
        self.linger: int | None = None  # None: off; -1: forever
        self.filters: list[tuple[str, str]] = []  # OR-ed, as mod_event_socket does
        self.resume = False
        self.queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        self.running: str | None = None
        self.current: tuple[str, dict[str, str]] | None = None  # app, its event ids
        self.socket_uuid = str(uuidlib.uuid4())  # the socket application's own Application-UUID
        self.last_response = "_none_"
        self.closed = False
        self.last_complete: float | None = None
        # api uuid_break: the running playback stops (FreeSWITCH's CF_BREAK: a break sent just
        # before the playback starts stops it as it starts)
        self.broken = asyncio.Event()


class FreeSwitchPeer:
    def __init__(self, *, linger_scale: float = 0.01, app_latency: float = 0.0) -> None:
        """``linger_scale`` shrinks linger seconds; ``app_latency`` is the delay before a
        queued application starts (about 20 ms in the captures: the session thread picks the
        message up, so a second ``sendmsg`` sent at once is answered before it runs)."""
        self.full = recorded(FULL_CALL)
        self.bye = recorded(CALLER_BYE)
        self._bridge_templates: dict[str, Pairs] = {}
        self.channels: dict[str, Channel] = {}  # by Call-ID, for caller_hangup
        self.linger_scale = linger_scale
        self.app_latency = app_latency

    # --- placing calls --------------------------------------------------------------------------
    async def call(
        self,
        addresses: list[tuple[str, int]],
        headers: dict[str, str],
        caller: Caller | None = None,
        *,
        timeout: float = 20.0,
        uuid: str | None = None,
        call_id: str | None = None,
        caller_number: str | None = None,
    ) -> CallRecord:
        """Run one call through the ``socket`` action(s): the first address, then each next
        one when a controller vanishes with ``resume`` set. Returns when the call is over."""
        channel = Channel(self, headers, caller or Caller(), uuid, call_id, caller_number)
        self.channels[channel.call_id] = channel
        pending = list(addresses)
        while pending and not channel.hung_up:
            host, port = pending.pop(0)
            resumed = await asyncio.wait_for(self._session(channel, host, port), timeout)
            if not resumed:
                break
        if not channel.hung_up:  # end of the dialplan: FreeSWITCH hangs the call up
            channel.hung_up = True
            channel.record.hangup_cause = channel.record.hangup_cause or "NORMAL_CLEARING"
            channel.record.hung_up_by = channel.record.hung_up_by or "dialplan"
        channel.record.ended.set()
        return channel.record

    async def _session(self, channel: Channel, host: str, port: int) -> bool:
        """One socket connection; True when the dialplan should continue (resume)."""
        reader, writer = await asyncio.open_connection(host, port)
        channel.record.connections += 1
        session = Session(channel, writer)
        channel.sessions = [session]
        worker = asyncio.create_task(self._apps(session))
        try:
            while True:
                command = await read_command(reader)
                if command is None:
                    break
                if session.last_complete is not None:
                    channel.record.turnarounds.append(time.perf_counter() - session.last_complete)
                    session.last_complete = None
                channel.record.commands.append(command.raw.decode(errors="replace"))
                if not await self._command(session, command):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            session.closed = True
        if channel.hung_up:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            writer.close()
            return False
        # The controller is gone and the call is up: the running application finishes on
        # its own (its variables stick), then the dialplan resumes or the call is dropped.
        await self._drain(session)
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        writer.close()
        if session.resume:
            channel.vars["socket_resume"] = "true"
            return True
        await self._hangup(session, "NORMAL_CLEARING", by="dialplan")
        return False

    async def _drain(self, session: Session) -> None:
        while session.running is not None:
            await asyncio.sleep(0.005)

    # --- wire -----------------------------------------------------------------------------------
    def _send(self, session: Session, data: bytes) -> None:
        if not session.closed and not session.writer.is_closing():
            session.writer.write(data)  # one write per frame: frames never interleave

    def _emit(self, session: Session, name: str, **values: str) -> None:
        if not (session.myevents and name in MYEVENTS) and name not in session.subscribed:
            return
        if session.filters and all(h.lower() == "event-name" for h, _ in session.filters):
            if not any(name.lower() == v.lower() for _, v in session.filters):
                return  # decided without rendering: the benchmark's peer must stay cheap
            self._send(session, event_frame(self._render(session.channel, name, values)))
            return
        pairs = self._render(session.channel, name, values)
        if session.filters and not any(
            h.lower() == header.lower() and unquote(raw).lower() == value.lower()
            for header, value in session.filters
            for h, raw in pairs
        ):
            return
        self._send(session, event_frame(pairs))

    def _render(self, channel: Channel, name: str, values: dict[str, str]) -> Pairs:
        template, source = self._template(channel, name, values)
        channel.seq += 1
        out: Pairs = []
        seen: set[str] = set()
        names = {n for n, _ in template}
        last_var = max(
            (i for i, (n, _) in enumerate(template) if n.startswith("variable_")), default=-1
        )
        for i, (header, raw) in enumerate(template):
            key = header.removeprefix("variable_")
            if header in values:
                out.append((header, fs_encode(values[header])))
                seen.add(header)
            elif header == "Event-Sequence":
                out.append((header, str(channel.seq)))
            elif header.startswith("variable_") and key in channel.vars:
                out.append((header, fs_encode(channel.vars[key])))
                seen.add(header)
            elif header.startswith("variable_") and key.startswith(SESSION_RESULTS):
                pass
            elif header == "variable_sip_call_id":
                out.append((header, fs_encode(channel.call_id)))
            else:
                out.append((header, raw.replace(source.uuid, channel.uuid)))
            if i == last_var:
                for var, value in channel.vars.items():
                    if f"variable_{var}" not in names:
                        out.append((f"variable_{var}", fs_encode(value)))
        out += [(h, fs_encode(v)) for h, v in values.items() if h not in seen]
        return out

    def _template(
        self, channel: Channel, name: str, values: dict[str, str]
    ) -> tuple[Pairs, Recorded]:
        full, bye = self.full, self.bye
        if name == "CHANNEL_EXECUTE":
            app = "answer" if not channel.answered else "playback"
            return full.event(name, Application=app), full
        if name == "CHANNEL_EXECUTE_COMPLETE":
            if values.get("Application") == "socket":
                return full.event(name, Application="socket"), full
            if "Hangup-Cause" in values:
                return bye.event(name, Application="playback"), bye
            app = "answer" if not channel.answered else "playback"
            return full.event(name, Application=app), full
        if name == "CUSTOM":
            return full.event(name, Action=values.get("Action", "add-member")), full
        if name == "CHANNEL_STATE":
            return full.event(
                name, nth=0 if values.get("Channel-State") == "CS_HANGUP" else 1
            ), full
        if name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_UNPARK"):
            return bye.event(name), bye
        if name in ("CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE"):
            return self._bridge_template(name), full
        return full.event(name), full

    def _bridge_template(self, name: str) -> Pairs:
        """The recorded bridge event's own headers (Event-Calling-*, Bridge-*, Other-*)
        around this call's channel headers (out01b's, like every other event)."""
        if name not in self._bridge_templates:
            pairs = bridge_event(name)
            own = dict(pairs)
            channel = [
                (h, own.get(h, v) if h.startswith("Event-Calling") else v)
                for h, v in self.full.event("CHANNEL_EXECUTE", Application="playback")
                if not h.startswith("Application")
            ]
            bridge = [(h, v) for h, v in pairs if h.startswith("Bridge-")]
            other = [(h, v) for h, v in pairs if h.startswith("Other-")]
            out: Pairs = []
            for header, value in channel:
                if header == "Event-Name":
                    value = name
                out.append((header, value))
                if header == "Event-Sequence":
                    out += bridge
                elif header == "Caller-Privacy-Hide-Number":
                    out += other
            self._bridge_templates[name] = out
        return self._bridge_templates[name]

    def _reply(self, session: Session, text: str) -> None:
        self._send(session, reply_frame(text))

    # --- commands -------------------------------------------------------------------------------
    async def _command(self, session: Session, command: Any) -> bool:
        line: str = command.line
        channel = session.channel
        if line == "connect":
            self._send(session, channel_frame(self._connect_pairs(channel)))
        elif line.startswith("myevents"):
            session.myevents = True
            self._reply(session, "+OK Events Enabled")
        elif line.startswith("event "):
            session.subscribed |= set(line.split()[2:])
            self._reply(session, f"+OK event listener enabled {line.split()[1]}")
        elif line.startswith("linger"):
            parts = line.split()
            session.linger = int(parts[1]) if len(parts) > 1 else -1
            text = (
                "+OK will linger" if session.linger == -1 else f"+OK will linger {parts[1]} seconds"
            )
            self._reply(session, text)
        elif line.startswith("filter "):
            _, header, value = ([*line.split(" ", 2), "", ""])[:3]
            if header == "delete":
                session.filters = []
                self._reply(session, "+OK filter deleted. [all][]")
            else:
                session.filters.append((header, value))
                self._reply(session, f"+OK filter added. [{header}]=[{value}]")
        elif line == "nolinger":
            session.linger = None
            self._reply(session, "+OK will not linger")
        elif line == "resume":
            session.resume = True
            channel.vars["socket_resume"] = "true"
            self._reply(session, "+OK")
        elif line.startswith("api "):
            self._send(session, api_frame(self._api(channel, line[4:])))
        elif line.startswith("sendmsg"):
            target = line[7:].strip()
            if target and target != channel.uuid:
                self._reply(session, f"-ERR invalid session id [{target}]")
                return True
            self._reply(session, "+OK")
            self._sendmsg(session, command.headers)
        elif line == "exit":
            self._reply(session, "+OK bye")
            self._send(session, disconnect_notice(channel.uuid))
            return False
        else:
            self._reply(session, "-ERR command not found")
        return True

    def _connect_pairs(self, channel: Channel) -> Pairs:
        template = self.full.connect
        values = {}
        if channel.answered:
            values = {"Answer-State": "answered", "Channel-Call-State": "ACTIVE"}
        pairs: Pairs = []
        for header, raw in template:
            key = header.removeprefix("variable_")
            if header in values:
                pairs.append((header, values[header]))
            elif header == "variable_sip_call_id":
                pairs.append((header, fs_encode(channel.call_id)))
            elif header == "Caller-Caller-ID-Number" and channel.caller_number:
                pairs.append((header, fs_encode(channel.caller_number)))
            elif header.startswith("variable_") and key in channel.vars:
                continue  # re-added below with the channel's value
            else:
                pairs.append((header, raw.replace(self.full.uuid, channel.uuid)))
            if header == "variable_socket_host":
                pairs += [(f"variable_{k}", fs_encode(v)) for k, v in channel.vars.items()]
        return pairs

    def _api(self, channel: Channel, command: str) -> str:
        parts = command.split()
        if parts[:1] == ["uuid_getvar"] and len(parts) == 3:
            return channel.vars.get(parts[2], "_undef_")
        if parts[:1] == ["uuid_break"]:
            if len(parts) < 2 or parts[1] != channel.uuid:
                return "-ERR No such channel!\n"
            for session in channel.sessions:
                session.broken.set()
            return "+OK\n"
        return f"-ERR {parts[0] if parts else ''} Command not found!\n"

    def _sendmsg(self, session: Session, headers: dict[str, str]) -> None:
        what = headers.get("call-command")
        if what == "hangup":
            asyncio.get_running_loop().create_task(
                self._hangup(
                    session, headers.get("hangup-cause", "NORMAL_CLEARING"), by="controller"
                )
            )
        elif what == "execute":
            app = headers.get("execute-app-name", "")
            arg = headers.get("execute-app-arg", "")
            app_uuid = headers.get("Event-UUID") or str(uuidlib.uuid4())
            session.queue.put_nowait((app, arg, app_uuid))

    # --- applications ---------------------------------------------------------------------------
    async def _apps(self, session: Session) -> None:
        while True:
            app, arg, app_uuid = await session.queue.get()
            if self.app_latency:
                await asyncio.sleep(self.app_latency)
            if session.channel.hung_up:
                continue  # event-locked applications queued behind a hangup are dropped
            session.running = app
            try:
                await self._run(session, app, arg, app_uuid)
            finally:
                session.running = None

    async def _run(self, session: Session, app: str, arg: str, app_uuid: str) -> None:
        channel = session.channel
        channel.record.apps.append((app, arg))
        reaction = channel.caller.reaction(app, arg)
        ids = {"Application": app, "Application-UUID": app_uuid}
        if arg:
            ids["Application-Data"] = arg
        session.current = (app, ids)
        self._emit(session, "CHANNEL_EXECUTE", **ids, **{"variable_current_application": app})
        if app == "answer":
            self._emit(session, "CHANNEL_PROGRESS_MEDIA")
            channel.answered = True
            self._emit(session, "CHANNEL_ANSWER")
        elif app in ("playback", "speak", "play_and_get_digits"):
            self._emit(session, "PLAYBACK_START")
        elif app == "record":
            self._emit(session, "RECORD_START")
        elif app == "conference":
            for action in ("add-member", "floor-change", "start-talking"):
                self._emit(session, "CUSTOM", Action=action)
        # a scripted result (variables) ends a hold at once: the pre-ACD queue contract
        holding = app == "playback" and not reaction.variables
        holding = holding and (bool(reaction.digits) or arg.startswith(STREAM))
        if app == "bridge":
            await self._bridge(session, arg, reaction)
        elif holding:
            await self._hold(session, arg, reaction)
        else:
            if reaction.delay:
                await asyncio.sleep(reaction.delay)
            if reaction.hold is not None:
                await reaction.hold.wait()
            elif app == "conference" and not reaction.delay and not reaction.hangup:
                while not channel.hung_up:  # a conference lasts until someone hangs up
                    await asyncio.sleep(0.01)
        if channel.hung_up:  # our hang-up sequence already reported this application
            return
        if app == "play_and_get_digits":
            self._digits(session, arg, reaction.digits)
        elif app == "set":
            name, _, value = arg.partition("=")
            self._set(channel, name, value)
        elif app == "multiset":
            for item in arg.split(" "):
                name, _, value = item.partition("=")
                self._set(channel, name, value)
        elif app == "record":
            channel.vars.update({"record_seconds": "2", "record_ms": "2090"})
        channel.vars.update(reaction.variables)
        if reaction.hangup and not holding and app != "bridge":
            await self._hangup(session, "NORMAL_CLEARING", by="caller", running=(app, ids))
            return
        if app in ("playback", "speak"):
            self._emit(session, "PLAYBACK_STOP")
        elif app == "record":
            self._emit(session, "RECORD_STOP")
        response = RESPONSES.get(app, "_none_")
        channel.vars["current_application_response"] = session.last_response = response
        session.current = None
        self._emit(session, "CHANNEL_EXECUTE_COMPLETE", **ids, **{"Application-Response": response})
        session.last_complete = time.perf_counter()

    async def _hold(self, session: Session, arg: str, reaction: Reaction) -> None:
        """A playback the caller listens to until it is broken (``uuid_break``), times out
        (``playback_timeout_sec``), or, for a file, ends. After ``delay`` the scripted keys
        arrive as DTMF events, or the caller hangs up."""
        channel = session.channel
        limit = channel.vars.get("playback_timeout_sec", "")
        ends: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(session.broken.wait()),
            asyncio.ensure_future(self._until_hung_up(channel)),
        ]
        if reaction.hold is not None:
            ends.append(asyncio.ensure_future(reaction.hold.wait()))
        if limit.isdigit() and int(limit) > 0:
            ends.append(asyncio.ensure_future(asyncio.sleep(int(limit))))
        if not arg.startswith(STREAM) and reaction.hold is None:  # a file ends by itself
            ends.append(asyncio.ensure_future(asyncio.sleep(max(reaction.delay, 0.05) + 0.2)))
        try:
            if reaction.digits or reaction.hangup:
                await asyncio.wait(ends, timeout=reaction.delay, return_when="FIRST_COMPLETED")
                if not any(end.done() for end in ends):
                    if reaction.hangup:
                        await self._hangup(session, "NORMAL_CLEARING", by="caller")
                        return
                    for key in reaction.digits:
                        self._emit(session, "DTMF", **{"DTMF-Digit": key})
            await asyncio.wait(ends, return_when="FIRST_COMPLETED")
        finally:
            for end in ends:
                end.cancel()
            if ends[0].done():  # the break flag is consumed by the playback it stops
                session.broken.clear()

    async def _until_hung_up(self, channel: Channel) -> None:
        await channel.record.ended.wait()  # set with hung_up (no polling: holds are many)

    async def _bridge(self, session: Session, arg: str, reaction: Reaction) -> None:
        """Ring the legs for ``reaction.delay`` s; the leg of ``answered_by`` answers (or
        none does), talks, hangs up. Variables as FreeSWITCH leaves them on the A leg."""
        channel = session.channel
        legs = bridge_legs(arg)
        answered_by = reaction.answered_by
        if reaction.ring is not None:
            answered_by = await reaction.ring
        elif reaction.delay:
            await asyncio.sleep(reaction.delay)
        chosen = next((leg for leg in legs if leg.user == answered_by), None)
        if channel.hung_up:
            return
        if reaction.hangup:  # the caller gives up while the agents ring
            await self._hangup(session, "NORMAL_CLEARING", by="caller")
            return
        if chosen is None:
            status = "NO_ANSWER" if legs else "DESTINATION_OUT_OF_ORDER"
            channel.vars.update({"originate_disposition": status, "DIALSTATUS": "NOANSWER"})
            channel.vars.pop("bridge_hangup_cause", None)
            return
        other = {
            "Bridge-A-Unique-ID": channel.uuid, "Bridge-B-Unique-ID": chosen.uuid,
            "Other-Leg-Unique-ID": chosen.uuid, "Other-Leg-Destination-Number": chosen.user,
            "Other-Leg-Channel-Name": chosen.channel_name, "Other-Leg-Direction": "outbound",
            "Other-Leg-Caller-ID-Number": chosen.user,
        }  # fmt: skip
        channel.vars.update({"bridge_to": chosen.uuid, "bridge_uuid": chosen.uuid})
        self._emit(session, "CHANNEL_BRIDGE", **other)
        channel.record.bridged.append(chosen.user)
        if reaction.hold is not None:
            await reaction.hold.wait()
        elif reaction.talk:
            await asyncio.sleep(reaction.talk)
        if channel.hung_up:
            return
        for name in ("bridge_to", "bridge_uuid"):
            channel.vars.pop(name, None)
        channel.vars.update(
            {"originate_disposition": "SUCCESS", "DIALSTATUS": "SUCCESS",
             "last_bridge_to": chosen.uuid, "bridge_hangup_cause": "NORMAL_CLEARING",
             "last_bridge_hangup_cause": "NORMAL_CLEARING"}
        )  # fmt: skip
        self._emit(session, "CHANNEL_UNBRIDGE", **other, **{"Hangup-Cause": "NORMAL_CLEARING"})

    # --- hook for a SIP side (tests/esl/fs_sip.py) ----------------------------------------------
    async def caller_hangup(self, call_id: str) -> None:
        """The caller's BYE (or CANCEL): whatever runs ends as a caller hang-up."""
        channel = self.channels.get(call_id)
        if channel is None or channel.hung_up or not channel.sessions:
            return
        await self._hangup(channel.sessions[-1], "NORMAL_CLEARING", by="caller")

    def _set(self, channel: Channel, name: str, value: str) -> None:
        if value:
            channel.vars[name] = value
        else:
            channel.vars.pop(name, None)

    def _digits(self, session: Session, arg: str, pressed: str) -> None:
        args = arg.split(" ")
        terminators, var = args[4], args[7]
        self._emit(session, "PLAYBACK_STOP")  # the prompt ends (or is cut by the first key)
        keys = ""
        for key in pressed:
            self._emit(session, "DTMF", **{"DTMF-Digit": key})
            if key in terminators:
                break
            keys += key
        if keys:
            session.channel.vars[var] = keys
            session.channel.vars["read_result"] = "success"
        else:
            session.channel.vars.pop(var, None)
            session.channel.vars["read_result"] = "timeout"

    async def _hangup(
        self,
        session: Session,
        cause: str,
        *,
        by: str,
        running: tuple[str, dict[str, str]] | None = None,
    ) -> None:
        """out01b's order when we are told to hang up, out02c's on a caller BYE."""
        channel = session.channel
        if channel.hung_up:
            return
        channel.hung_up = True
        channel.record.hangup_cause, channel.record.hung_up_by = cause, by
        channel.vars["hangup_cause"] = cause
        gone = {"Hangup-Cause": cause}
        self._emit(session, "CHANNEL_HANGUP", **gone)
        if by != "caller" and session.linger is not None:
            self._linger_notice(session)
        running = running or session.current
        if running is not None:
            app, ids = running
            if app in ("playback", "speak"):
                self._emit(session, "PLAYBACK_STOP", **gone)
            if app == "conference":
                self._emit(session, "CUSTOM", **gone, Action="del-member")
            error = "PLAYBACK ERROR" if app in ("playback", "speak") else "_none_"
            session.last_response = error
            self._emit(session, "CHANNEL_EXECUTE_COMPLETE", **ids, **gone,
                       **{"Application-Response": error})  # fmt: skip
        self._emit(session, "CHANNEL_UNPARK", **gone)
        socket_app = {
            "Application": "socket", "Application-UUID": session.socket_uuid,
            "Application-Response": session.last_response,
        }  # fmt: skip
        self._emit(session, "CHANNEL_EXECUTE_COMPLETE", **gone, **socket_app)
        self._emit(session, "CHANNEL_STATE", **gone, **{"Channel-State": "CS_HANGUP"})
        self._emit(session, "CHANNEL_STATE", **gone, **{"Channel-State": "CS_REPORTING"})
        self._emit(session, "CHANNEL_HANGUP_COMPLETE", **gone)
        if by == "caller" and session.linger is not None:
            self._linger_notice(session)
        channel.record.ended.set()
        if session.linger is None:
            self._send(session, disconnect_notice(channel.uuid))
            await self._close(session)
        elif session.linger >= 0:
            await asyncio.sleep(session.linger * self.linger_scale)
            self._send(session, disconnect_notice(channel.uuid))
            await self._close(session)

    def _linger_notice(self, session: Session) -> None:
        name = dict(self.full.connect)["Channel-Name"].replace("%40", "@").replace("%3A", ":")
        self._send(session, linger_notice(session.channel.uuid, name, session.linger or 0))

    async def _close(self, session: Session) -> None:
        session.closed = True
        with contextlib.suppress(Exception):
            session.writer.close()


@dataclass(frozen=True)
class Leg:
    user: str
    uuid: str
    channel_name: str


def bridge_legs(arg: str) -> list[Leg]:
    """``{global}[leg vars]sofia/<profile>/<user>@<host>,[...]...``: the legs a bridge dials
    (``origination_uuid`` names a leg, as FreeSWITCH honours it)."""
    if arg.startswith("{"):
        arg = arg[arg.index("}") + 1 :]
    legs, depth, current = [], 0, ""
    for char in arg + ",":
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            legs.append(current)
            current = ""
        else:
            current += char
    found = []
    for leg in filter(None, legs):
        options, dial = "", leg
        if leg.startswith("["):
            options, dial = leg[1 : leg.index("]")], leg[leg.index("]") + 1 :]
        pairs = dict(item.partition("=")[::2] for item in options.split(",") if item)
        user = dial.rsplit("/", 1)[-1].split("@", 1)[0]
        uuid = pairs.get("origination_uuid") or str(uuidlib.uuid4())
        found.append(Leg(user, uuid, dial))
    return found


def bridge_event(name: str) -> Pairs:
    """The recorded CHANNEL_BRIDGE / CHANNEL_UNBRIDGE (orig01: uuid_bridge of two channels)."""
    from tests.esl.fswire import raw_pairs, split_frames
    from tests.esl.transcripts import load

    for block, body in split_frames(load(BRIDGES).fs_bytes):
        if b"text/event-plain" in block:
            pairs = raw_pairs(body[: body.index(b"\n\n")])
            if dict(pairs).get("Event-Name") == name:
                return pairs
    raise LookupError(name)


def sipio_headers(
    account: str, target: str, variables: dict[str, Any] | None = None
) -> dict[str, str]:
    """The SIP headers Kamailio's ``media()`` adds, as FreeSWITCH keeps them (name → value)."""
    import json

    headers = {"X-Sipio-Account": account, "X-Sipio-Target": target}
    if variables:
        headers["X-Sipio-Vars"] = json.dumps(variables, separators=(",", ":"))
    return headers
