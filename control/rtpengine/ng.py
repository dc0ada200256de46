"""rtpengine ng protocol over UDP.

A message is ``<cookie> <bencoded dictionary>``; the reply echoes the cookie. UDP loses and
duplicates datagrams, so a request is retransmitted with the *same* cookie (rtpengine caches
replies per cookie and answers a retransmission without repeating the command) and replies whose
cookie is not ours are dropped (late answers to an earlier request).

Replies are decoded leniently (bencode.py): rtpengine writes dictionary keys in insertion
order, not the sorted order strict decoders such as bencode2 insist on.

The client is blocking and tiny on purpose: a Kamailio worker calls it inline with short
timeouts, and asyncio services run it in a thread executor.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from typing import Any

import bencode

NgValue = Any


class NgError(Exception):
    """Any failure talking to rtpengine."""


class NgTimeout(NgError):
    """No reply after every retransmission: the node is down or unreachable."""


class NgProtocolError(NgError):
    """The node answered with something that is not an ng reply."""


class NgCommandError(NgError):
    """rtpengine understood the command and refused it (``result: error``)."""

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(f"rtpengine refused {command!r}: {reason}")
        self.command = command
        self.reason = reason


def _text(value: NgValue) -> NgValue:
    """bencode has only byte strings; ng speaks text, so turn them back (losslessly)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, list):
        return [_text(item) for item in value]
    if isinstance(value, dict):
        return {_text(key): _text(item) for key, item in value.items()}
    return value


def _bytes(value: NgValue) -> NgValue:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bool):
        raise TypeError("ng has no booleans: use flags lists or 'yes'/'no' strings")
    if isinstance(value, (list, tuple)):
        return [_bytes(item) for item in value]
    if isinstance(value, dict):
        return {_bytes(str(key)): _bytes(item) for key, item in value.items()}
    return value


def encode(cookie: str, message: dict[str, NgValue]) -> bytes:
    payload: bytes = bencode.bencode(_bytes(message))
    return cookie.encode("ascii") + b" " + payload


def decode(datagram: bytes) -> tuple[str, dict[str, NgValue]]:
    """Split a datagram into cookie and dictionary; raise NgProtocolError on anything else."""
    cookie, sep, payload = datagram.partition(b" ")
    if not sep or not cookie:
        raise NgProtocolError("reply has no cookie")
    try:
        body = bencode.bdecode(payload)
    except Exception as exc:  # BencodeDecodeError, and ValueError/IndexError on truncation
        raise NgProtocolError(f"reply is not bencoded: {exc}") from None
    if not isinstance(body, dict):
        raise NgProtocolError("reply is not a dictionary")
    decoded = _text(body)
    assert isinstance(decoded, dict)
    return cookie.decode("ascii", "replace"), decoded


class NgClient:
    """One rtpengine node over ng/UDP. Not thread-safe: keep one per worker or per thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 1.0,
        attempts: int = 3,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.address = (host, port)
        self.timeout = timeout
        self.attempts = attempts
        self._prefix = f"{os.getpid():x}{os.urandom(3).hex()}"
        self._seq = itertools.count(1)
        self._sock: socket.socket | None = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.connect(self.address)
            self._sock = sock
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> NgClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _waits(self) -> list[float]:
        """Per-attempt waits doubling each time and adding up to ``timeout``."""
        total = (2**self.attempts) - 1
        return [self.timeout * (2**i) / total for i in range(self.attempts)]

    def command(self, command: str, **params: NgValue) -> dict[str, NgValue]:
        """Send one ng command; return the reply (``result`` is ``ok``, ``pong`` or ``warning``)."""
        message = {key.replace("_", "-"): value for key, value in params.items()}
        message["command"] = command
        cookie = f"{self._prefix}_{next(self._seq)}"
        datagram = encode(cookie, message)
        sock = self._socket()
        for wait in self._waits():
            try:
                sock.send(datagram)
            except OSError as exc:
                raise NgError(f"cannot send to rtpengine {self.address}: {exc}") from None
            deadline = time.monotonic() + wait
            reply = self._receive(sock, cookie, deadline)
            if reply is not None:
                return self._checked(command, reply)
        raise NgTimeout(f"rtpengine {self.address[0]}:{self.address[1]} did not answer {command!r}")

    @staticmethod
    def _receive(sock: socket.socket, cookie: str, deadline: float) -> dict[str, NgValue] | None:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65535)
            except TimeoutError:
                return None
            except ConnectionRefusedError:
                # ICMP port unreachable from an earlier send: nobody listens (yet); keep waiting
                # for the deadline so a node that is starting gets its retransmission.
                time.sleep(min(left, 0.01))
                continue
            got, body = decode(data)
            if got == cookie:
                return body
        return None

    @staticmethod
    def _checked(command: str, reply: dict[str, NgValue]) -> dict[str, NgValue]:
        result = reply.get("result")
        if result == "error":
            raise NgCommandError(command, str(reply.get("error-reason", "no reason given")))
        if result is None:
            raise NgProtocolError(f"reply to {command!r} has no result")
        return reply

    def ping(self) -> bool:
        return self.command("ping").get("result") == "pong"
