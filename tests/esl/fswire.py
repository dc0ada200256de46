"""FreeSWITCH's side of the wire, for the test peer: frames built the way mod_event_socket
builds them, from frames it really sent (``../shared/fixtures/esl``).

Deliberately independent of the ``esl`` package (its own splitter and command reader), so the
peer cannot inherit a parsing mistake from the code it tests. ``test_peer_fidelity.py``
proves each builder against the recorded bytes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache

from tests.esl.transcripts import load

# switch_url_encode's unsafe set; bytes outside 0x20-0x7e are always encoded. Checked against
# every recorded header value by test_peer_fidelity.
UNSAFE = set(b'\r\n "#%&+:;<=>?@[\\]^`{|}')

Pairs = list[tuple[str, str]]  # header name, value as it goes on the wire (encoded)


@lru_cache(maxsize=65536)  # channel values repeat in every event: the benchmark's peer needs it
def fs_encode(value: str) -> str:
    out = []
    for byte in value.encode():
        if byte in UNSAFE or byte < 0x20 or byte > 0x7E:
            out.append(f"%{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


def split_frames(stream: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(header block, body) per frame, Content-Length framed (as verify_transcripts.py)."""
    while stream:
        end = stream.index(b"\n\n")
        block = stream[:end]
        length = 0
        for line in block.split(b"\n"):
            if line.startswith(b"Content-Length: "):
                length = int(line[16:])
        yield block, stream[end + 2 : end + 2 + length]
        stream = stream[end + 2 + length :]


def raw_pairs(block: bytes) -> Pairs:
    return [
        (name, value)
        for name, _, value in (line.partition(": ") for line in block.decode().split("\n"))
    ]


def reply_frame(text: str) -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def api_frame(body: str) -> bytes:
    data = body.encode()
    return f"Content-Type: api/response\nContent-Length: {len(data)}\n\n".encode() + data


def event_frame(pairs: Pairs, body: bytes = b"") -> bytes:
    text = "".join(f"{name}: {value}\n" for name, value in pairs) + "\n"
    data = text.encode() + body
    return f"Content-Length: {len(data)}\nContent-Type: text/event-plain\n\n".encode() + data


def channel_frame(pairs: Pairs) -> bytes:
    """The ``connect`` reply: the CHANNEL_DATA event serialised as the frame's own headers."""
    return ("".join(f"{name}: {value}\n" for name, value in pairs) + "\n").encode()


GOODBYE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def linger_notice(uuid: str, channel_name: str, seconds: int) -> bytes:
    return (
        "Content-Type: text/disconnect-notice\n"
        f"Controlled-Session-UUID: {uuid}\n"
        "Content-Disposition: linger\n"
        f"Channel-Name: {channel_name}\n"
        f"Linger-Time: {seconds}\n"
        "Content-Length: 0\n\n"
    ).encode()


def disconnect_notice(uuid: str, message: str = GOODBYE) -> bytes:
    data = message.encode()
    return (
        "Content-Type: text/disconnect-notice\n"
        f"Controlled-Session-UUID: {uuid}\n"
        "Content-Disposition: disconnect\n"
        f"Content-Length: {len(data)}\n\n"
    ).encode() + data


@dataclass(frozen=True)
class Command:
    line: str
    headers: dict[str, str]
    body: bytes
    raw: bytes


async def read_command(reader: asyncio.StreamReader) -> Command | None:
    """What mod_event_socket's read_packet accepts: lines up to an empty one (LF or CRLF),
    ``name: value`` headers, a body if Content-Length says so. None at EOF."""
    lines: list[bytes] = []
    raw = b""
    while True:
        line = await reader.readline()
        if not line:
            return None
        raw += line
        stripped = line.rstrip(b"\r\n")
        if not stripped:
            if lines:
                break
            continue  # leading blank lines are skipped, as FreeSWITCH does
        lines.append(stripped)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.decode().partition(":")
        headers[name] = value.lstrip(" ")
    body = b""
    length = int(headers.get("Content-Length", headers.get("content-length", "0")) or 0)
    if length:
        body = await reader.readexactly(length)
        raw += body
    return Command(lines[0].decode(), headers, body, raw)


# --- templates from the captures ----------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """A recorded session's frames: the connect reply and the events with their raw pairs."""

    uuid: str
    call_id_raw: str
    connect: Pairs
    events: tuple[Pairs, ...]
    _found: dict[tuple[object, ...], Pairs] = field(default_factory=dict, compare=False, hash=False)

    def event(self, name: str, nth: int = 0, **match: str) -> Pairs:
        key = (name, nth, *sorted(match.items()))
        if key not in self._found:
            self._found[key] = self._event(name, nth, **match)
        return self._found[key]

    def _event(self, name: str, nth: int, **match: str) -> Pairs:
        found = [
            pairs for pairs in self.events
            if dict(pairs).get("Event-Name") == name
            and all(dict(pairs).get(k) == fs_encode(v) for k, v in match.items())
        ]  # fmt: skip
        return found[nth]


@cache
def recorded(name: str) -> Recorded:
    frames = list(split_frames(load(name).fs_bytes))
    connect = raw_pairs(frames[0][0])
    events = []
    for block, body in frames:
        if b"Content-Type: text/event-plain" in block:
            events.append(raw_pairs(body[: body.index(b"\n\n")]))
    fields = dict(connect)
    return Recorded(fields["Unique-ID"], fields["variable_sip_call_id"], connect, tuple(events))


def sequence() -> Iterable[int]:
    return itertools.count(1000)
