"""FreeSWITCH's inbound event socket (port 8021) for the control-plane commands we send:
``conference <room> list | get count | mute | unmute | kick <member>`` and ``uuid_record``.

Framing is the captures' (``in01``: auth/request, ``-ERR invalid`` + a disconnect notice and a
close; ``in03``: ``+OK accepted``, api/response with Content-Length, ``exit`` → ``+OK bye`` +
notice + close). The texts of the answers are mod_conference's and mod_commands' own
(conference_api.c, ``conference_list``; ``session_record_function``): a member line is
``id;channel;uuid;caller name;caller number;flags;volume in;agc volume in;volume out;energy``,
an unknown room answers ``Conference <name> not found``, an unknown member ``Non-Existant ID
<n>``, a command ``OK mute <n>`` / ``OK unmute <n>`` / ``OK kicked <n>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid as uuidlib
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tests.esl.fs_originate import Originator
from tests.esl.fswire import (
    GOODBYE,
    Pairs,
    api_frame,
    event_frame,
    fs_encode,
    read_command,
    reply_frame,
)

T = TypeVar("T")


@dataclass
class Member:
    id: int
    uuid: str
    caller_name: str = "sipp"
    caller_number: str = "sipp"
    speak: bool = True
    moderator: bool = False

    def line(self) -> str:
        flags = (
            ["hear"] + (["speak"] if self.speak else []) + (["moderator"] if self.moderator else [])
        )
        channel = f"sofia/internal/{self.caller_number}@127.0.0.1:5080"
        return (
            f"{self.id};{channel};{self.uuid};{self.caller_name};{self.caller_number};"
            f"{'|'.join(flags)};0;0;0;300\n"
        )


@dataclass
class ConferenceRooms:
    rooms: dict[str, list[Member]] = field(default_factory=dict)
    channels: set[str] = field(default_factory=set)  # live channel uuids (uuid_record)
    recording: dict[str, list[str]] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)

    def api(self, command: str) -> str:
        self.commands.append(command)
        parts = command.split()
        if parts[:1] == ["conference"] and len(parts) >= 3:
            return self._conference(parts[1], parts[2:])
        if parts[:1] == ["uuid_record"]:
            return self._record(parts[1:])
        return f"-ERR {parts[0] if parts else ''} Command not found!\n"

    def _conference(self, name: str, args: list[str]) -> str:
        room = self.rooms.get(name.split("@")[0])
        if room is None:
            return f"Conference {name} not found\n"
        verb = args[0]
        if verb == "list":
            return "".join(m.line() for m in room)
        if verb == "get" and args[1:] == ["count"]:
            return str(len(room))
        if verb in ("mute", "unmute", "kick") and len(args) > 1:
            member = next((m for m in room if str(m.id) == args[1]), None)
            if member is None:
                return f"Non-Existant ID {args[1]}\n"
            if verb == "kick":
                room.remove(member)
                return f"OK kicked {member.id}\n"
            member.speak = verb == "unmute"
            return f"OK {verb} {member.id}\n"
        return f"Conference command '{verb}' not found.\n"

    def _record(self, args: list[str]) -> str:
        if len(args) < 3:
            return "-USAGE: <uuid> [start|stop] <path> [<limit>]\n"
        uuid, action, path = args[:3]
        if uuid not in self.channels:
            return "-ERR Cannot locate session!\n"
        files = self.recording.setdefault(uuid, [])
        if action == "start":
            files.append(path)
            return "+OK Success\n"
        if action == "stop" and (path in files or (path == "all" and files)):
            files[:] = [] if path == "all" else [f for f in files if f != path]
            return "+OK Success\n"
        return "-ERR Cannot stop record session!\n"


def inbound_notice() -> bytes:
    data = GOODBYE.encode()
    return f"Content-Type: text/disconnect-notice\nContent-Length: {len(data)}\n\n".encode() + data


@dataclass
class Listener:
    """One connection's ``event plain`` subscription and filters (OR-ed, as in ``orig02``)."""

    writer: asyncio.StreamWriter
    events: set[str] = field(default_factory=set)
    filters: list[tuple[str, str]] = field(default_factory=list)

    def wants(self, pairs: Pairs) -> bool:
        fields = dict(pairs)
        if fields.get("Event-Name") not in self.events and "ALL" not in self.events:
            return False
        return not self.filters or any(fields.get(h) == fs_encode(v) for h, v in self.filters)


class InboundFreeSwitch:
    """Serves the event socket on a free loopback port, in its own thread and loop (the API
    under test is synchronous and runs its own short-lived loops). With an ``originator``
    it also takes ``event``/``filter`` subscriptions and ``bgapi originate``."""

    def __init__(
        self,
        rooms: ConferenceRooms | None = None,
        password: str = "ClueCon",
        originator: Originator | None = None,
    ) -> None:
        self.rooms, self.password = rooms or ConferenceRooms(), password
        self.originator = originator
        self.listeners: list[Listener] = []
        self.commands: list[str] = []
        self.host, self.port = "127.0.0.1", 0
        self.auth_failures = 0
        if originator is not None:
            originator.emit = self._emit
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._tasks: set[asyncio.Future[None]] = set()

    @contextlib.contextmanager
    def running(self) -> Iterator[InboundFreeSwitch]:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._session, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for listener in list(self.listeners):
            listener.writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the stand-in's loop (a SIP UA its originates use lives there)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the stand-in's loop (``Originator.hang_up`` from a test)."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(5)

    def _emit(self, pairs: Pairs, body: bytes) -> None:
        for listener in self.listeners:
            if listener.wants(pairs) and not listener.writer.is_closing():
                listener.writer.write(event_frame(pairs, body))

    def _command(self, listener: Listener, line: str) -> bytes:
        """The subscription and background commands (orig02's replies)."""
        verb, _, rest = line.partition(" ")
        if verb == "event":
            fmt, _, names = rest.partition(" ")
            listener.events.update(names.split())
            return reply_frame(f"+OK event listener enabled {fmt}")
        if verb == "filter" and rest.startswith("delete "):
            header, _, value = rest[7:].partition(" ")
            with contextlib.suppress(ValueError):
                listener.filters.remove((header, value))
            return reply_frame(f"+OK filter deleted. [{header}][{value}]")
        if verb == "filter":
            header, _, value = rest.partition(" ")
            listener.filters.append((header, value))
            return reply_frame(f"+OK filter added. [{header}]=[{value}]")
        if verb == "bgapi" and self.originator is not None and rest.startswith("originate "):
            job = str(uuidlib.uuid4())
            task = asyncio.ensure_future(self.originator.originate(job, rest[len("originate ") :]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n".encode()
        return reply_frame("-ERR command not found")

    def _api(self, command: str) -> str:
        self.commands.append(command)
        if self.originator is not None:
            answer = self.originator.api(command)
            if answer is not None:
                return answer
        return self.rooms.api(command)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Content-Type: auth/request\n\n")
        authed = False
        listener = Listener(writer)
        self.listeners.append(listener)
        try:
            while True:
                command = await read_command(reader)
                if command is None:
                    break
                line = command.line
                if line.startswith("auth "):
                    if line[5:] == self.password:
                        authed = True
                        writer.write(reply_frame("+OK accepted"))
                        continue
                    self.auth_failures += 1
                    writer.write(reply_frame("-ERR invalid") + inbound_notice())
                    break
                if not authed:
                    writer.write(reply_frame("-ERR command not found"))
                elif line.startswith("api "):
                    writer.write(api_frame(self._api(line[4:])))
                elif line == "exit":
                    writer.write(reply_frame("+OK bye") + inbound_notice())
                    break
                else:
                    writer.write(self._command(listener, line))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.listeners.remove(listener)
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()
