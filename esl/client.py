"""The ESL command set over one connection, common to inbound clients and outbound sessions.

Each method sends one command, waits for its reply within a time budget and turns ``-ERR``
into :class:`CommandError`. Two commands finish later than their reply:

* ``bgapi``: the result arrives as a BACKGROUND_JOB event carrying the ``Job-UUID``, possibly
  before the caller has read the reply, so recent unclaimed results are kept (bounded);
* ``sendmsg execute``: with ``event-lock`` and our ``Event-UUID``, the application's end is the
  CHANNEL_EXECUTE_COMPLETE whose ``Application-UUID`` is that id; the waiter is registered
  before the command is sent.
"""

from __future__ import annotations

import asyncio
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from esl.connection import CommandError, Connection
from esl.protocol import Event, Frame, encode_command, sendmsg_execute, sendmsg_hangup

KEEP_UNCLAIMED_JOBS = 1000


@dataclass
class Execution:
    """An application started by ``sendmsg``; ``complete`` resolves with its
    CHANNEL_EXECUTE_COMPLETE event."""

    app: str
    reply: Frame
    complete: asyncio.Future[Event]
    event_uuid: str | None


class BackgroundJob:
    def __init__(self, client: EslClient, job_uuid: str) -> None:
        self.client, self.job_uuid = client, job_uuid

    async def result(self, timeout: float | None = None) -> Event:
        """The BACKGROUND_JOB event; its body is the command's output (``-ERR ...`` on error)."""
        future = self.client._job_future(self.job_uuid)
        try:
            return await self.client.conn.wait(future, timeout or self.client.conn.timeout)
        finally:
            self.client._jobs.pop(self.job_uuid, None)


class EslClient:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._jobs: dict[str, asyncio.Future[Event]] = {}
        self._unclaimed: OrderedDict[str, Event] = OrderedDict()
        conn.on_event(self._on_job)

    # --- plumbing -------------------------------------------------------------------------------
    async def command(
        self,
        line: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        *,
        timeout: float | None = None,
    ) -> Frame:
        """Send a command; return its reply frame as it is, ``-ERR`` included."""
        return await self.conn.request(encode_command(line, headers, body), timeout)

    async def checked(
        self,
        line: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        """Send a command; return its Reply-Text, raise :class:`CommandError` unless ``+OK``."""
        reply = await self.command(line, headers, body, timeout=timeout)
        return _ok(reply)

    # --- api ------------------------------------------------------------------------------------
    async def api(self, command: str, *, timeout: float | None = None) -> str:
        """Blocking API command: its output text. FreeSWITCH reports failures in the text
        itself (``-ERR ...``), which is returned, not raised: callers know their commands."""
        reply = await self.command(f"api {command}", timeout=timeout)
        if reply.content_type == "command/reply":  # refused before it ran (e.g. not authed)
            _ok(reply)
        return reply.text

    async def bgapi(
        self, command: str, *, job_uuid: str | None = None, timeout: float | None = None
    ) -> BackgroundJob:
        headers = [("Job-UUID", job_uuid)] if job_uuid else []
        reply = await self.command(f"bgapi {command}", headers, timeout=timeout)
        _ok(reply)
        assigned = reply.get("Job-UUID") or job_uuid
        if not assigned:
            raise CommandError(f"bgapi reply without Job-UUID: {reply.reply_text}")
        return BackgroundJob(self, assigned)

    def _job_future(self, job_uuid: str) -> asyncio.Future[Event]:
        future = self._jobs.get(job_uuid)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._jobs[job_uuid] = future
            early = self._unclaimed.pop(job_uuid, None)
            if early is not None:
                future.set_result(early)
        return future

    def _on_job(self, event: Event) -> None:
        if event.name != "BACKGROUND_JOB":
            return
        job = event.get("Job-UUID") or ""
        future = self._jobs.get(job)
        if future is None:  # its caller has not asked yet (or never will): keep a few
            self._unclaimed[job] = event
            while len(self._unclaimed) > KEEP_UNCLAIMED_JOBS:
                self._unclaimed.popitem(last=False)
        elif not future.done():
            future.set_result(event)

    # --- events ---------------------------------------------------------------------------------
    async def events(self, names: Sequence[str], *, fmt: str = "plain") -> str:
        return await self.checked(" ".join(["event", fmt, *names]))

    async def nixevent(self, names: Sequence[str]) -> str:
        return await self.checked(" ".join(["nixevent", *names]))

    async def noevents(self) -> str:
        return await self.checked("noevents")

    async def filter(self, header: str, value: str) -> str:
        return await self.checked(f"filter {header} {value}")

    async def filter_delete(self, header: str, value: str | None = None) -> str:
        """``filter delete <header> [value]``; ``header="all"`` drops every filter."""
        return await self.checked(" ".join(p for p in ("filter delete", header, value) if p))

    async def log(self, level: int | str) -> str:
        return await self.checked(f"log {level}")

    async def nolog(self) -> str:
        return await self.checked("nolog")

    async def sendevent(
        self, name: str, headers: Sequence[tuple[str, str]] = (), body: bytes | None = None
    ) -> str:
        """Fire an event; returns the Event-UUID FreeSWITCH gave it."""
        text = await self.checked(f"sendevent {name}", headers, body)
        return text.removeprefix("+OK").strip()

    # --- call control ---------------------------------------------------------------------------
    async def execute(
        self,
        app: str,
        arg: str | None = None,
        *,
        uuid: str | None = None,
        event_lock: bool = True,
        event_uuid: str | None = None,
        tag: bool = True,
        timeout: float | None = None,
    ) -> Execution:
        """Queue ``app`` on a channel. ``uuid=None`` addresses the socket's own channel
        (outbound). The returned ``complete`` future is registered before sending; with
        ``tag`` (default) we choose the Event-UUID, so completion is matched exactly, otherwise
        by channel and application name."""
        if event_uuid is None and tag:
            event_uuid = str(uuidlib.uuid4())
        complete = self.conn.expect(_completion(app, uuid, event_uuid))
        data = sendmsg_execute(app, arg, uuid=uuid, event_lock=event_lock, event_uuid=event_uuid)
        try:
            reply = await self.conn.request(data, timeout)
            _ok(reply)
        except BaseException:
            complete.cancel()
            raise
        return Execution(app, reply, complete, event_uuid)

    async def hangup(self, cause: str | None = None, *, uuid: str | None = None) -> str:
        return _ok(await self.conn.request(sendmsg_hangup(cause, uuid=uuid)))

    async def exit(self, *, timeout: float | None = None) -> None:
        """``exit``: FreeSWITCH says ``+OK bye``, sends a disconnect notice and closes."""
        reply = await self.command("exit", timeout=timeout)
        _ok(reply)
        budget = timeout or self.conn.timeout
        try:
            async with asyncio.timeout(budget):
                await asyncio.shield(self.conn.closed)
        finally:
            await self.conn.close()


def _ok(reply: Frame) -> str:
    if not reply.ok:
        raise CommandError(reply.reply_text or reply.text or reply.content_type)
    return reply.reply_text


def _completion(app: str, uuid: str | None, event_uuid: str | None) -> _Match:
    return _Match(app, uuid, event_uuid)


@dataclass(frozen=True)
class _Match:
    app: str
    uuid: str | None
    event_uuid: str | None

    def __call__(self, event: Event) -> bool:
        if event.name != "CHANNEL_EXECUTE_COMPLETE":
            return False
        if self.event_uuid:
            return event.get("Application-UUID") == self.event_uuid
        if self.uuid and event.get("Unique-ID") != self.uuid:
            return False
        return event.get("Application") == self.app


def new_uuid() -> str:
    return str(uuidlib.uuid4())
