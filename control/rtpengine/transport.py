"""The three ways rtpengine takes ng messages: UDP, TCP and WebSocket.

A transport moves whole messages and nothing else; cookies, retransmission and deadlines are
the client's. UDP is what Kamailio's own module uses and what we default to: no connection
state, and rtpengine's reply cache makes retransmissions safe. TCP (``--listen-tcp-ng``) and
WebSocket (``--listen-http``, subprotocol ``ng.rtpengine.com``) suit networks that drop or
rate-limit UDP; they are reliable, so the client only resends after a reconnect.

Two rtpengine 10.5 limits shape the stream transports: over TCP it closes a connection whose
unparsed input exceeds 1024 bytes, so a large offer must arrive in one segment (true on
loopback and LANs, not guaranteed across the Internet: prefer UDP or WebSocket there); and it
may push unsolicited messages (DTMF events) on TCP connections, which the client drops because
their cookies are not its own. The WebSocket client is a minimal RFC 6455 one on the standard
library: binary frames, client masking, ping/pong and close, nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import time
from typing import Literal, Protocol

from control.rtpengine.codec import message_end
from control.rtpengine.errors import NgConnectionError, NgProtocolError

TransportName = Literal["udp", "tcp", "ws"]
WS_SUBPROTOCOL = "ng.rtpengine.com"
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_MESSAGE = 1 << 20


class Transport(Protocol):
    reliable: bool

    def send(self, message: bytes) -> None: ...

    def receive(self, deadline: float) -> bytes | None:
        """One whole message, or None once ``deadline`` (time.monotonic) has passed."""
        ...

    def close(self) -> None: ...


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class UdpTransport:
    reliable = False

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.socket(_family(host), socket.SOCK_DGRAM)
        self.sock.connect((host, port))

    def send(self, message: bytes) -> None:
        try:
            self.sock.send(message)
        except ConnectionRefusedError:
            pass  # ICMP from an earlier datagram: the retransmission may find the node up
        except OSError as exc:
            raise NgConnectionError(f"cannot send: {exc}") from None

    def receive(self, deadline: float) -> bytes | None:
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                return self.sock.recv(65535)
            except TimeoutError:
                return None
            except ConnectionRefusedError:
                # ICMP port unreachable: nobody listens (yet). Keep waiting for the deadline so
                # a node that is starting still gets the next retransmission.
                time.sleep(min(left, 0.01))
        return None

    def close(self) -> None:
        self.sock.close()


class _Stream:
    """A connected stream socket with a read buffer; raises NgConnectionError when it breaks."""

    reliable = True

    def __init__(self, host: str, port: int, connect_timeout: float) -> None:
        self.address = (host, port)
        try:
            self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:
            raise NgConnectionError(f"cannot connect to {host}:{port}: {exc}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()

    def _send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise NgConnectionError(f"connection to {self.address} broke: {exc}") from None

    def _fill(self, deadline: float) -> bool:
        """Read more into the buffer; False when the deadline passed first."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError as exc:
            raise NgConnectionError(f"connection to {self.address} broke: {exc}") from None
        if not chunk:
            raise NgConnectionError(f"{self.address} closed the connection")
        self.buffer += chunk
        if len(self.buffer) > _MAX_MESSAGE:
            raise NgProtocolError("stream message exceeds 1 MiB")
        return True

    def _take(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def close(self) -> None:
        self.sock.close()


class TcpTransport(_Stream):
    def send(self, message: bytes) -> None:
        self._send_raw(message)

    def receive(self, deadline: float) -> bytes | None:
        while (end := message_end(self.buffer)) is None:
            if not self._fill(deadline):
                return None
        return self._take(end)


class WsTransport(_Stream):
    def __init__(self, host: str, port: int, connect_timeout: float, path: str = "/") -> None:
        super().__init__(host, port, connect_timeout)
        try:
            self._handshake(host, port, path, time.monotonic() + connect_timeout)
        except BaseException:
            self.close()
            raise

    def _handshake(self, host: str, port: int, path: str, deadline: float) -> None:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        self._send_raw(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {WS_SUBPROTOCOL}\r\n\r\n"
            ).encode("ascii")
        )
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if not self._fill(deadline):
                raise NgConnectionError(f"no WebSocket handshake from {host}:{port}")
        head = self._take(end + 4).decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head[1:] if line)
        }
        expected = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        if not head[0].startswith("HTTP/1.1 101") or headers.get("sec-websocket-accept") != (
            expected
        ):
            raise NgConnectionError(f"WebSocket upgrade refused by {host}:{port}: {head[0]}")
        if headers.get("sec-websocket-protocol") != WS_SUBPROTOCOL:
            raise NgConnectionError(f"{host}:{port} does not speak {WS_SUBPROTOCOL}")

    def _frame(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        mask = os.urandom(4)
        key = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
        self._send_raw(head + mask + masked)

    def send(self, message: bytes) -> None:
        self._frame(0x2, message)

    def _header(self) -> tuple[int, int] | None:
        """Header length and payload length of the buffered frame, once its header is in."""
        if len(self.buffer) < 2:
            return None
        if self.buffer[1] & 0x80:
            raise NgProtocolError("server sent a masked WebSocket frame")
        size = self.buffer[1] & 0x7F
        if size == 126:
            return (
                (4, struct.unpack_from("!H", self.buffer, 2)[0]) if len(self.buffer) >= 4 else None
            )
        if size == 127:
            return (
                (10, struct.unpack_from("!Q", self.buffer, 2)[0])
                if len(self.buffer) >= 10
                else None
            )
        return 2, size

    def _next_frame(self, deadline: float) -> tuple[bool, int, bytes] | None:
        """(final, opcode, payload) of the next frame, or None once the deadline passed."""
        while (header := self._header()) is None or len(self.buffer) < sum(header):
            if not self._fill(deadline):
                return None
        first = self.buffer[0]
        offset, size = header
        return bool(first & 0x80), first & 0x0F, self._take(offset + size)[offset:]

    def receive(self, deadline: float) -> bytes | None:
        parts: list[bytes] = []
        while (frame := self._next_frame(deadline)) is not None:
            final, opcode, payload = frame
            if opcode == 0x8:
                raise NgConnectionError(f"{self.address} closed the WebSocket")
            if opcode == 0x9:
                self._frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            parts.append(payload)
            if final:
                return b"".join(parts)
        return None


def connect(name: TransportName, host: str, port: int, connect_timeout: float) -> Transport:
    if name == "udp":
        return UdpTransport(host, port)
    if name == "tcp":
        return TcpTransport(host, port, connect_timeout)
    if name == "ws":
        return WsTransport(host, port, connect_timeout)
    raise ValueError(f"unknown ng transport {name!r}: use udp, tcp or ws")
