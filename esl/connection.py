"""One ESL TCP connection under asyncio, shared by the inbound client and outbound sessions.

FreeSWITCH answers commands strictly in order, with ``command/reply`` or ``api/response``
frames, and interleaves events, logs and disconnect notices between them. So the reader keeps a
FIFO of reply futures and hands everything else to listeners and one-shot waiters, all on the
reader task: nothing can slip between a reply and the event that follows it.

Every request has a timeout. A timed-out request keeps its place in the FIFO, so a late reply
is consumed and dropped instead of being taken for the answer to the next command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from esl.protocol import EVENT_TYPES, Event, Frame, FrameParser, ProtocolError, parse_event

log = structlog.get_logger("esl")

DEFAULT_TIMEOUT = 5.0
READ_CHUNK = 64 * 1024
REPLY_TYPES = ("command/reply", "api/response")


class EslError(Exception):
    """Base class of what this package raises about the ESL peer."""


class ConnectionClosed(EslError):
    """The socket closed (or was closed) before the answer arrived."""


class CommandTimeout(EslError, TimeoutError):
    """No answer within the command's time budget."""


class CommandError(EslError):
    """FreeSWITCH answered ``-ERR ...``."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


EventListener = Callable[[Event], None]
FrameListener = Callable[[Frame], None]


@dataclass
class _Waiter:
    predicate: Callable[[Event], bool]
    future: asyncio.Future[Event]


@dataclass
class Stats:
    frames: int = 0
    events: int = 0
    late_replies: int = 0
    notices: list[Frame] = field(default_factory=list)


def _quiet(future: asyncio.Future[Any]) -> None:
    """Mark an exception as retrieved: nobody may be waiting on an abandoned future."""
    if not future.cancelled():
        future.exception()


class Connection:
    """Frames in, requests out. Create with :meth:`open` (client) or from a server's streams."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.reader, self.writer = reader, writer
        self.timeout = timeout
        self.stats = Stats()
        self._parser = FrameParser()
        self._replies: deque[asyncio.Future[Frame]] = deque()
        self._abandoned: set[asyncio.Future[Frame]] = set()
        self._waiters: list[_Waiter] = []
        self._listeners: list[EventListener] = []
        self._log_listeners: list[FrameListener] = []
        self._notice_listeners: list[FrameListener] = []
        loop = asyncio.get_running_loop()
        self.auth_request: asyncio.Future[Frame] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._task = loop.create_task(self._read_loop(), name="esl-reader")

    @classmethod
    async def open(cls, host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT) -> Connection:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            raise CommandTimeout(f"connect to {host}:{port} timed out") from None
        return cls(reader, writer, timeout=timeout)

    # --- listeners ------------------------------------------------------------------------------
    def on_event(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def on_log(self, listener: FrameListener) -> None:
        self._log_listeners.append(listener)

    def on_notice(self, listener: FrameListener) -> None:
        """``text/disconnect-notice`` frames (linger, disconnect, shutdown)."""
        self._notice_listeners.append(listener)

    def expect(self, predicate: Callable[[Event], bool]) -> asyncio.Future[Event]:
        """A future for the first event matching ``predicate`` from now on. Register it
        *before* sending the command that causes the event, or it can be missed."""
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_quiet)
        if self.closed.done():
            future.set_exception(ConnectionClosed("connection closed"))
        else:
            self._waiters.append(_Waiter(predicate, future))
        return future

    # --- requests -------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return not self.closed.done()

    def _submit(self, data: bytes) -> asyncio.Future[Frame]:
        if self.closed.done():
            raise ConnectionClosed("connection closed")
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_quiet)
        self._replies.append(future)  # same tick as the write: replies stay in order
        self.writer.write(data)
        return future

    async def request(self, data: bytes, timeout: float | None = None) -> Frame:
        """Send one encoded command and return its reply frame (whatever its Reply-Text)."""
        future = self._submit(data)
        budget = self.timeout if timeout is None else timeout
        try:
            await self.writer.drain()
            async with asyncio.timeout(budget):
                return await asyncio.shield(future)
        except TimeoutError:
            self._abandoned.add(future)
            raise CommandTimeout(f"no reply within {budget}s to {data[:40]!r}") from None
        except (ConnectionError, OSError) as exc:
            raise ConnectionClosed(str(exc)) from None

    async def write(self, data: bytes) -> None:
        """Send bytes that get no reply (nothing in ESL does, except ``exit``'s close)."""
        if self.closed.done():
            raise ConnectionClosed("connection closed")
        self.writer.write(data)
        await self.writer.drain()

    async def wait(self, future: asyncio.Future[Event], timeout: float) -> Event:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            raise CommandTimeout(f"no matching event within {timeout}s") from None

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail_all("connection closed")

    def abort(self) -> None:
        """Drop the socket at once (no FIN handshake): what a crash looks like to the peer."""
        transport = self.writer.transport
        transport.abort()

    # --- reader ---------------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        reason = "peer closed the connection"
        try:
            while True:
                data = await self.reader.read(READ_CHUNK)
                if not data:
                    break
                for frame in self._parser.feed(data):
                    self._dispatch(frame)
        except ProtocolError as exc:
            reason = f"protocol error: {exc}"
            log.warning("esl.protocol_error", error=str(exc))
            self.writer.close()
        except (ConnectionError, OSError) as exc:
            reason = f"socket error: {exc}"
        finally:
            self._fail_all(reason)

    def _fail_all(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        error = ConnectionClosed(reason)
        while self._replies:
            future = self._replies.popleft()
            if not future.done():
                future.set_exception(error)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)
        if not self.auth_request.done():
            self.auth_request.set_exception(error)
            _quiet(self.auth_request)

    def _dispatch(self, frame: Frame) -> None:
        self.stats.frames += 1
        kind = frame.content_type
        if kind in REPLY_TYPES:
            self._reply(frame)
        elif kind in EVENT_TYPES:
            self._event(parse_event(frame))
        elif kind == "auth/request":
            if not self.auth_request.done():
                self.auth_request.set_result(frame)
        elif kind in ("text/disconnect-notice", "text/rude-rejection"):
            self.stats.notices.append(frame)
            for listener in list(self._notice_listeners):
                listener(frame)
        elif kind == "log/data":
            for log_listener in list(self._log_listeners):
                log_listener(frame)
        else:
            log.info("esl.unknown_frame", content_type=kind)

    def _reply(self, frame: Frame) -> None:
        if not self._replies:
            log.warning("esl.unexpected_reply", reply=frame.reply_text[:80])
            return
        future = self._replies.popleft()
        if future in self._abandoned:  # its caller timed out: this late frame was its reply
            self._abandoned.discard(future)
            self.stats.late_replies += 1
        if not future.done():
            future.set_result(frame)

    def _event(self, event: Event) -> None:
        self.stats.events += 1
        if self._waiters:
            keep = []
            for waiter in self._waiters:
                if waiter.future.done():
                    continue
                if waiter.predicate(event):
                    waiter.future.set_result(event)
                else:
                    keep.append(waiter)
            self._waiters = keep
        for listener in list(self._listeners):
            listener(event)
