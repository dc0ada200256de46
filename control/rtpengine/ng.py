"""One rtpengine node over the ng protocol: cookies, retransmission, deadlines, typed errors.

A request carries a cookie and the reply echoes it. UDP loses and duplicates datagrams, so a
request is retransmitted with the *same* cookie after waits that double and add up to
``timeout`` (rtpengine caches replies per cookie and answers a retransmission without running
the command twice); replies with another cookie (late answers to an earlier request, events
pushed on TCP) are dropped. Stream transports are reliable: the request is sent again only
after a reconnect, which the cookie makes just as safe.

The client is blocking on purpose: a Kamailio worker calls it inline and must get its answer,
or `NgTimeout`, within a bound it chose (``timeout``). It is safe to share between threads
(each thread gets its own socket, so replies never cross) and across ``fork()`` (a child
opens its own socket and its cookies carry its own pid), which is what the asyncio wrapper
and Kamailio's forked workers need.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

from control.rtpengine.codec import NgReply, NgValue, decode, decode_body, encode, split
from control.rtpengine.commands import CallCommands
from control.rtpengine.errors import (
    NgCallNotFound,
    NgCommandError,
    NgConnectionError,
    NgError,
    NgOverloaded,
    NgProtocolError,
    NgTimeout,
    NgUnavailable,
    NgUnsupportedCommand,
    check_reply,
)
from control.rtpengine.transport import Transport, TransportName, connect

__all__ = [
    "NgCallNotFound",
    "NgClient",
    "NgCommandError",
    "NgConnectionError",
    "NgError",
    "NgOverloaded",
    "NgProtocolError",
    "NgTimeout",
    "NgUnavailable",
    "NgUnsupportedCommand",
    "NgValue",
    "decode",
    "encode",
]


class NgClient(CallCommands):
    """One rtpengine node. ``timeout`` bounds every command, retransmissions included."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 1.0,
        attempts: int = 3,
        transport: TransportName = "udp",
        name: str | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.address = (host, port)
        self.timeout = timeout
        self.attempts = attempts
        self.transport = transport
        self.name = name or f"{transport}:{host}:{port}"
        self._nonce = os.urandom(3).hex()
        self._seq = itertools.count(1)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Transport] = []
        self._generation = 0

    def __repr__(self) -> str:
        return f"NgClient({self.name!r})"

    def __enter__(self) -> NgClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every thread's socket; the client reopens one on next use."""
        with self._lock:
            held, self._open = self._open, []
            self._generation += 1  # other threads notice and reopen
        for transport in held:
            transport.close()

    def _transport(self) -> Transport:
        """This thread's socket; a new one after fork() or close()."""
        held: tuple[int, int, Transport] | None = getattr(self._local, "held", None)
        owner = (os.getpid(), self._generation)
        if held is not None and held[:2] == owner:
            return held[2]
        opened = connect(self.transport, *self.address, connect_timeout=self.timeout)
        self._local.held = (*owner, opened)
        with self._lock:
            self._open.append(opened)
        return opened

    def _drop(self) -> None:
        held: tuple[int, int, Transport] | None = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            with self._lock:
                if held[2] in self._open:
                    self._open.remove(held[2])
            held[2].close()

    def _cookie(self) -> str:
        # The pid keeps cookies of forked workers apart even when they share a nonce.
        return f"{os.getpid():x}{self._nonce}_{next(self._seq)}"

    def _waits(self) -> list[float]:
        """Per-attempt waits doubling each time and adding up to ``timeout``."""
        total = (2**self.attempts) - 1
        return [self.timeout * (2**i) / total for i in range(self.attempts)]

    def command(self, command: str, **params: NgValue) -> NgReply:
        """Send one ng command (``call_id=`` becomes ``call-id``); return the reply or raise."""
        return self.request(command, {key.replace("_", "-"): v for key, v in params.items()})

    def request(self, command: str, message: dict[str, NgValue]) -> NgReply:
        """Send ``message`` (ng key spelling) as ``command``; return the reply or raise."""
        cookie = self._cookie()
        datagram = encode(cookie, {**message, "command": command})
        deadline = time.monotonic() + self.timeout
        failure: NgUnavailable | None = None
        for wait in self._waits():
            try:
                transport = self._transport()
                transport.send(datagram)
                failure = None
                until = deadline if transport.reliable else time.monotonic() + wait
                reply = self._await(transport, cookie, min(until, deadline))
            except NgConnectionError as exc:
                self._drop()
                failure = exc
                time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
                continue
            if reply is not None:
                check_reply(command, reply)
                return reply
            if transport.reliable:
                break  # connected, yet silent until the deadline: the node is stuck
        if failure is not None:
            raise NgConnectionError(f"rtpengine {self.name}: {failure}")
        raise NgTimeout(f"rtpengine {self.name} did not answer {command!r} within {self.timeout}s")

    def _await(self, transport: Transport, cookie: str, deadline: float) -> NgReply | None:
        try:
            while (message := transport.receive(deadline)) is not None:
                try:
                    got, payload = split(message)
                except NgProtocolError:
                    if transport.reliable:
                        raise
                    continue  # a stray datagram: not ours
                if got == cookie:
                    return decode_body(payload)
        except NgProtocolError:
            if transport.reliable:
                self._drop()  # a stream out of step cannot be trusted any more
            raise
        return None

    def _send(self, command: str, call_id: str, params: dict[str, NgValue]) -> tuple[str, NgReply]:
        return self.name, self.request(command, {**params, "call-id": call_id})

    def ping(self) -> bool:
        return self.request("ping", {}).get("result") == "pong"

    def list_calls(self, limit: int | None = None) -> list[str]:
        """Call-IDs the node holds (rtpengine returns at most ``limit``, 32 by default)."""
        calls = self.request("list", {} if limit is None else {"limit": limit}).get("calls")
        if not isinstance(calls, list):
            raise NgProtocolError("list reply has no calls")
        return [str(call) for call in calls]

    def statistics(self) -> NgReply:
        """The node's counters: ``currentstatistics`` (sessions), ``totalstatistics`` and more."""
        stats = self.request("statistics", {}).get("statistics")
        if not isinstance(stats, dict):
            raise NgProtocolError("statistics reply has no statistics")
        return stats
