"""Realistic SDP bodies and a tiny RTP endpoint for tests against a real rtpengine."""

from __future__ import annotations

import re
import socket
import struct
import time

CRLF = "\r\n"


def audio_sdp(user: str, address: str, port: int, *, codecs: str = "0 8 101") -> str:
    """What a desk phone offers: PCMU, PCMA, telephone-event, plain RTP/AVP."""
    lines = [
        "v=0",
        f"o={user} 2890844526 2890844526 IN IP4 {address}",
        "s=SIP Call",
        f"c=IN IP4 {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {codecs}",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]
    return CRLF.join(lines) + CRLF


def webrtc_sdp(user: str, address: str, port: int) -> str:
    """What a browser offers: ICE, DTLS-SRTP fingerprint, rtcp-mux, UDP/TLS/RTP/SAVPF, opus."""
    fingerprint = ":".join(f"{b:02X}" for b in range(32))
    lines = [
        "v=0",
        f"o=- 4611731400430051336 2 IN IP4 {address}",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic: WMS",
        f"m=audio {port} UDP/TLS/RTP/SAVPF 111 0 8",
        f"c=IN IP4 {address}",
        f"a=rtcp:{port} IN IP4 {address}",
        f"a=candidate:1 1 udp 2122260223 {address} {port} typ host generation 0",
        "a=ice-ufrag:Fh3k",
        "a=ice-pwd:8TQuVn7Ykh1pWWqg0b4tY9Vq",
        "a=ice-options:trickle",
        f"a=fingerprint:sha-256 {fingerprint}",
        "a=setup:actpass",
        "a=mid:0",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
    ]
    return CRLF.join(lines) + CRLF


def media_endpoint(sdp: str) -> tuple[str, int]:
    """The (address, port) an SDP asks media to be sent to (first audio stream)."""
    address = re.search(r"^c=IN IP[46] (\S+)", sdp, re.M)
    port = re.search(r"^m=audio (\d+) ", sdp, re.M)
    assert address and port, sdp
    return address.group(1), int(port.group(1))


class Phone:
    """A UDP socket standing for a phone's RTP port."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._seq = 0

    def sdp(self, user: str) -> str:
        return audio_sdp(user, "127.0.0.1", self.port, codecs="0 101")

    def send_rtp(self, to: tuple[str, int], count: int = 5, payload: bytes = b"\x55" * 160) -> None:
        for _ in range(count):
            self._seq += 1
            header = struct.pack("!BBHII", 0x80, 0, self._seq, self._seq * 160, 0x1234ABCD)
            self.sock.sendto(header + payload, to)
            time.sleep(0.02)

    def received(self, wait: float = 0.3) -> list[bytes]:
        """Every datagram that arrives within ``wait`` seconds."""
        packets: list[bytes] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                packets.append(self.sock.recv(2048))
            except TimeoutError:
                break
        return packets

    def close(self) -> None:
        self.sock.close()
