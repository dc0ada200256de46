"""Inbound ESL: we connect to FreeSWITCH's event socket (port 8021) and authenticate.

:class:`InboundClient` is one authenticated connection. :class:`ResilientInbound` keeps one up:
it reconnects with capped exponential backoff plus jitter, and re-applies the event
subscription and filters after every reconnect, because FreeSWITCH forgets both with the
socket. Commands issued while it is down wait for the next connection within their budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from esl.client import EslClient
from esl.connection import (
    CommandError,
    CommandTimeout,
    Connection,
    ConnectionClosed,
    EslError,
)
from esl.protocol import Event

log = structlog.get_logger("esl.inbound")


class AuthError(EslError):
    """Wrong password: FreeSWITCH answered ``-ERR invalid``, sent a disconnect notice and
    closed the socket; ``notice`` is that notice's text when it arrived."""

    def __init__(self, reply: str, notice: str | None = None) -> None:
        super().__init__(reply)
        self.reply, self.notice = reply, notice


class InboundClient(EslClient):
    @classmethod
    async def connect(
        cls, host: str, port: int, password: str, *, timeout: float = 5.0
    ) -> InboundClient:
        conn = await Connection.open(host, port, timeout=timeout)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(conn.auth_request)
            client = cls(conn)
            await client.auth(password)
        except TimeoutError:
            await conn.close()
            raise CommandTimeout("no auth/request from FreeSWITCH") from None
        except BaseException:
            await conn.close()
            raise
        return client

    async def auth(self, password: str) -> None:
        reply = await self.command(f"auth {password}")
        if reply.ok:
            return
        with contextlib.suppress(TimeoutError):  # FreeSWITCH closes right after, with a notice
            async with asyncio.timeout(1.0):
                await asyncio.shield(self.conn.closed)
        notices = self.conn.stats.notices
        raise AuthError(reply.reply_text, notices[-1].text if notices else None)


@dataclass
class Subscription:
    """What a connection should listen to; re-applied in this order after each reconnect."""

    events: list[str] = field(default_factory=list)
    fmt: str = "plain"
    filters: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Backoff:
    first: float = 0.1
    cap: float = 10.0
    factor: float = 2.0
    jitter: float = 0.2  # +-20 %: reconnect storms from many controllers spread out

    def delays(self) -> Callable[[], float]:
        current = self.first

        def next_delay() -> float:
            nonlocal current
            delay = current * random.uniform(1 - self.jitter, 1 + self.jitter)
            current = min(self.cap, current * self.factor)
            return delay

        return next_delay


class ResilientInbound:
    """Keeps an authenticated, subscribed inbound connection; ``on_event`` sees every event
    of every connection in order."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        subscription: Subscription | None = None,
        on_event: Callable[[Event], None] | None = None,
        backoff: Backoff | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.host, self.port, self.password = host, port, password
        self.subscription = subscription or Subscription()
        self.on_event = on_event
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self.connects = 0
        self.last_error: str | None = None
        self._client: InboundClient | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="esl-inbound")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.conn.close()

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def client(self, timeout: float | None = None) -> InboundClient:
        """The live client, waiting for a reconnect if needed."""
        budget = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(budget):
                await self._ready.wait()
        except TimeoutError:
            raise ConnectionClosed(f"not connected: {self.last_error}") from None
        assert self._client is not None
        return self._client

    async def api(self, command: str, *, timeout: float | None = None) -> str:
        client = await self.client(timeout)
        return await client.api(command, timeout=timeout)

    async def subscribe(self, events: Sequence[str]) -> None:
        self.subscription.events = list(dict.fromkeys([*self.subscription.events, *events]))
        if self._ready.is_set() and self._client is not None:
            await self._client.events(self.subscription.events, fmt=self.subscription.fmt)

    async def add_filter(self, header: str, value: str) -> None:
        self.subscription.filters.append((header, value))
        if self._ready.is_set() and self._client is not None:
            await self._client.filter(header, value)

    async def remove_filter(self, header: str, value: str) -> None:
        with contextlib.suppress(ValueError):
            self.subscription.filters.remove((header, value))
        if self._ready.is_set() and self._client is not None:
            await self._client.filter_delete(header, value)

    async def _run(self) -> None:
        delay = self.backoff.delays()
        while True:
            try:
                client = await InboundClient.connect(
                    self.host, self.port, self.password, timeout=self.timeout
                )
            except AuthError:
                raise  # a wrong password does not fix itself: stop retrying, loudly
            except (EslError, OSError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(delay())
                continue
            try:
                await self._apply(client)
            except (CommandError, EslError, OSError) as exc:
                self.last_error = f"subscribe failed: {exc}"
                await client.conn.close()
                await asyncio.sleep(delay())
                continue
            self._client, self.connects = client, self.connects + 1
            delay = self.backoff.delays()  # a good connection resets the backoff
            self._ready.set()
            log.info("esl.inbound.connected", host=self.host, port=self.port, n=self.connects)
            await asyncio.shield(client.conn.closed)
            self._ready.clear()
            self.last_error = "connection lost"
            log.warning("esl.inbound.lost", host=self.host, port=self.port)
            await client.conn.close()
            await asyncio.sleep(delay())

    async def _apply(self, client: InboundClient) -> None:
        if self.on_event is not None:
            client.conn.on_event(self.on_event)
        sub = self.subscription
        if sub.events:
            await client.events(sub.events, fmt=sub.fmt)
        for header, value in sub.filters:
            await client.filter(header, value)
