"""Outbound ESL: FreeSWITCH's ``socket`` application connects to us, one TCP connection per
call, and we control that channel.

The first command must be ``connect``; its reply is the whole channel as headers (the
CHANNEL_DATA event serialised as a command/reply, values URL-encoded), which is where the
context Kamailio attached to the INVITE arrives (``variable_sip_h_X-Sipio-*``). The session
then tracks the channel's life from its events: CHANNEL_HANGUP marks the caller gone, a
``Content-Disposition: linger`` notice says FreeSWITCH will close soon, ``disconnect`` that it
is closing now.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from esl.client import EslClient
from esl.connection import DEFAULT_TIMEOUT, CommandError, Connection
from esl.protocol import Event, Frame

log = structlog.get_logger("esl.outbound")


class ChannelData:
    """The ``connect`` reply: every channel header, decoded."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame

    def get(self, name: str) -> str | None:
        return self.frame.get(name)

    def var(self, name: str) -> str | None:
        return self.frame.get(f"variable_{name}")

    @property
    def uuid(self) -> str:
        return self.frame.get("Unique-ID") or self.frame.get("Channel-Unique-ID") or ""

    @property
    def answered(self) -> bool:
        return self.frame.get("Answer-State") == "answered"


class OutboundSession(EslClient):
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self.channel: ChannelData | None = None
        self.hangup_cause: str | None = None
        self.hung_up = asyncio.Event()
        self.linger_notice: Frame | None = None
        conn.on_event(self._track)
        conn.on_notice(self._notice)

    @property
    def uuid(self) -> str:
        return self.channel.uuid if self.channel else ""

    async def connect(self, *, timeout: float | None = None) -> ChannelData:
        reply = await self.command("connect", timeout=timeout)
        if not reply.ok:
            raise CommandError(reply.reply_text)
        self.channel = ChannelData(reply)
        if reply.get("Answer-State") == "hangup":
            self.hung_up.set()
        return self.channel

    async def myevents(self, fmt: str | None = None) -> str:
        return await self.checked(f"myevents {fmt}" if fmt else "myevents")

    async def linger(self, seconds: int | None = None) -> str:
        """Keep the socket after hangup to get the last events; ``None`` lingers forever."""
        return await self.checked("linger" if seconds is None else f"linger {seconds}")

    async def nolinger(self) -> str:
        return await self.checked("nolinger")

    async def resume(self) -> str:
        """If this socket drops while the call is up, FreeSWITCH continues the dialplan
        (where the next ``socket`` action reaches another controller) instead of parking."""
        return await self.checked("resume")

    async def getvar(self, name: str) -> str:
        return await self.api(f"uuid_getvar {self.uuid} {name}")

    def _track(self, event: Event) -> None:
        if event.name == "CHANNEL_HANGUP" and not self.hung_up.is_set():
            self.hangup_cause = event.get("Hangup-Cause")
            self.hung_up.set()

    def _notice(self, frame: Frame) -> None:
        if frame.get("Content-Disposition") == "linger":
            self.linger_notice = frame
            self.hung_up.set()  # sent when the channel goes down, sometimes before the event


Handler = Callable[[OutboundSession], Awaitable[None]]


class OutboundServer:
    """Accepts FreeSWITCH's ``socket`` connections and runs ``handler`` for each."""

    def __init__(
        self, handler: Handler, host: str = "127.0.0.1", port: int = 8084, *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:  # fmt: skip
        self.handler, self.host, self.port, self.timeout = handler, host, port, timeout
        self.active: set[asyncio.Task[None]] = set()
        self.handled = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        sockname = self._server.sockets[0].getsockname()
        self.port = int(sockname[1])
        return self.host, self.port

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def stop(self, grace: float = 0.0) -> None:
        """Stop accepting; let running calls finish within ``grace`` s, then cut them."""
        if self._server is not None:
            self._server.close()
        if self.active and grace > 0:
            await asyncio.wait(set(self.active), timeout=grace)
        for task in set(self.active):
            task.cancel()
        for task in set(self.active):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.active.add(task)
        conn = Connection(reader, writer, timeout=self.timeout)
        try:
            await self.handler(OutboundSession(conn))
        except Exception:
            log.exception("esl.outbound.handler_failed")
        finally:
            self.handled += 1
            self.active.discard(task)
            await conn.close()
