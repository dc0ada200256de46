"""ESL wire format: framing, header decoding, event bodies and command encoding. Pure, no I/O.

What FreeSWITCH 1.11 puts on the wire (see ``docs/esl.md`` and the captured transcripts):

* a frame is a header block ending in an empty line (``\\n`` only), then exactly
  ``Content-Length`` bytes of body if that header is present; frames are not aligned with
  reads, so the parser is incremental;
* header values are URL-encoded per header (``%0A`` can hide inside a value), so a block is
  split into lines first and each value is decoded afterwards, never the block as a whole;
* ``text/event-plain`` bodies are a second header block (URL-encoded too) plus the event's own
  body after an inner ``Content-Length``; ``text/event-json`` is one JSON object whose values
  are plain strings and whose keys may repeat; ``text/event-xml`` keeps URL-encoded values
  inside XML elements and XML-escapes the body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote
from xml.etree import ElementTree

MAX_HEADER_BYTES = 1 << 20  # FreeSWITCH's own client-side limit is 10 MB; channels are ~6 kB
MAX_BODY_BYTES = 16 << 20


class ProtocolError(ValueError):
    """The peer sent something that is not ESL; the connection cannot be trusted any more."""


Headers = list[tuple[str, str]]


class Frame:
    """One ESL frame. ``pairs`` keeps every header in order (decoded); lookups take the first
    occurrence, as FreeSWITCH's own ``esl_event_get_header`` does.

    Values read off the wire stay URL-encoded until asked for (``encoded=True``): a channel
    event carries ~150 headers and the controller reads five of them.
    """

    __slots__ = ("_encoded", "_index", "_pairs", "_raw", "body")

    def __init__(
        self, pairs: Iterable[tuple[str, str]], body: bytes = b"", *, encoded: bool = False
    ) -> None:
        self._raw = tuple(pairs)
        self.body = body
        self._encoded = encoded
        self._pairs: tuple[tuple[str, str], ...] | None = None if encoded else self._raw
        self._index: dict[str, str] | None = None  # built at the first lookup

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]], body: bytes = b"") -> Frame:
        return cls(pairs, body)

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        if self._pairs is None:
            self._pairs = tuple((name, decode_value(value)) for name, value in self._raw)
        return self._pairs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frame) and (self.pairs, self.body) == (other.pairs, other.body)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Frame({self.content_type or self.get('Event-Name')!r}, {len(self._raw)} headers)"

    def get(self, name: str, default: str | None = None) -> str | None:
        """Header names compare case-insensitively, as in FreeSWITCH; the exact spelling,
        which is what FreeSWITCH always sends, is the fast path."""
        if self._index is None:
            index: dict[str, str] = {}
            for key, value in self._raw:
                index.setdefault(key, value)
            self._index = index
        raw = self._index.get(name)
        if raw is None:
            wanted = name.lower()
            raw = next((v for k, v in self._raw if k.lower() == wanted), None)
        if raw is None:
            return default
        return decode_value(raw) if self._encoded else raw

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    @property
    def content_type(self) -> str:
        return self.get("Content-Type") or ""

    @property
    def reply_text(self) -> str:
        return self.get("Reply-Text") or ""

    @property
    def ok(self) -> bool:
        """A command/reply that succeeded (``+OK ...``); api/response bodies say it themselves."""
        return self.reply_text.startswith("+OK")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def decode_value(raw: str) -> str:
    """FreeSWITCH's URL encoding: ``%XX`` only; ``+`` is a literal plus (it is sent as %2B)."""
    return unquote(raw, errors="replace") if "%" in raw else raw


def parse_header_block(block: bytes, *, decode: bool = True) -> Headers:
    """Split first, decode each value after: a ``%0A`` inside a value stays inside it."""
    text = block.decode("utf-8", "replace")
    pairs: Headers = []
    for line in text.split("\n"):
        name, sep, value = line.partition(": ")  # what FreeSWITCH writes
        if not sep:
            if not line:
                continue
            name, sep, value = line.partition(":")  # "User-Data:" style, tolerated
            if not sep:
                raise ProtocolError(f"header line without a colon: {line[:80]!r}")
        pairs.append((name, decode_value(value) if decode else value))
    return pairs


class FrameParser:
    """Incremental: feed any chunking of the stream, get whole frames back in order."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: Headers | None = None
        self._need = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while True:
            if self._pending is None:
                end = self._buf.find(b"\n\n")
                if end < 0:
                    if len(self._buf) > MAX_HEADER_BYTES:
                        raise ProtocolError("header block too large")
                    return frames
                if end == 0:  # stray blank line between frames: skip it
                    del self._buf[:2]
                    continue
                headers = parse_header_block(bytes(self._buf[:end]), decode=False)
                del self._buf[: end + 2]
                self._pending, self._need = headers, _content_length(headers)
            if len(self._buf) < self._need:
                return frames
            body = bytes(self._buf[: self._need])
            del self._buf[: self._need]
            frames.append(Frame(self._pending, body, encoded=True))
            self._pending, self._need = None, 0

    @property
    def buffered(self) -> int:
        return len(self._buf)


def _content_length(headers: Headers) -> int:
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                length = int(value)
            except ValueError:
                raise ProtocolError(f"bad Content-Length {value!r}") from None
            if not 0 <= length <= MAX_BODY_BYTES:
                raise ProtocolError(f"Content-Length {length} out of range")
            return length
    return 0


# --- events --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """A FreeSWITCH event, whatever format it came in."""

    headers: Frame  # the event's own headers (decoded) and body
    format: str  # plain | json | xml

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name") or ""

    @property
    def body(self) -> bytes:
        return self.headers.body

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def __getitem__(self, name: str) -> str:
        return self.headers[name]

    def variable(self, name: str) -> str | None:
        return self.headers.get(f"variable_{name}")


EVENT_TYPES = {
    "text/event-plain": "plain",
    "text/event-json": "json",
    "text/event-xml": "xml",
}


def parse_event(frame: Frame) -> Event:
    kind = EVENT_TYPES.get(frame.content_type)
    if kind == "plain":
        return Event(_plain(frame.body), kind)
    if kind == "json":
        return Event(_json(frame.body), kind)
    if kind == "xml":
        return Event(_xml(frame.body), kind)
    raise ProtocolError(f"not an event frame: {frame.content_type!r}")


def _plain(data: bytes) -> Frame:
    end = data.find(b"\n\n")
    block, rest = (data, b"") if end < 0 else (data[:end], data[end + 2 :])
    headers = parse_header_block(block, decode=False)
    length = None
    for name, value in headers:  # the inner length is the last one (sendevent can add two)
        if name.lower() == "content-length" and value.isdigit():
            length = int(value)
    body = rest if length is None else rest[:length]
    return Frame(headers, body, encoded=True)


def _json(data: bytes) -> Frame:
    try:
        pairs = json.loads(data, object_pairs_hook=list)
    except ValueError as exc:
        raise ProtocolError(f"bad JSON event: {exc}") from None
    if not isinstance(pairs, list):
        raise ProtocolError("JSON event is not an object")
    headers: Headers = []
    body = b""
    for name, value in pairs:
        text = value if isinstance(value, str) else json.dumps(value)
        if name == "_body":
            body = text.encode()
        else:
            headers.append((str(name), text))
    return Frame.of(headers, body)


def _xml(data: bytes) -> Frame:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise ProtocolError(f"bad XML event: {exc}") from None
    headers: Headers = []
    block = root.find("headers")
    for element in block if block is not None else ():
        headers.append((element.tag, element.text or ""))  # still URL-encoded inside the XML
    body = b""
    body_element = root.find("body")
    if body_element is not None:
        body = (body_element.text or "").encode()
        length = root.findtext("Content-Length")
        if length and length.isdigit():  # FreeSWITCH pads the element with "\n  "
            body = body[: int(length)]
    return Frame(headers, body, encoded=True)


# --- commands ------------------------------------------------------------------------------------


def _line(value: str, what: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"{what} must be one line: {value[:60]!r}")
    return value


def encode_command(
    command: str, headers: Sequence[tuple[str, str]] = (), body: bytes | None = None
) -> bytes:
    """``command`` line, ``name: value`` lines, blank line, optional body. Values are sent as
    they are (FreeSWITCH does not URL-decode what it reads); line breaks are refused, so call
    data can never smuggle a second command in."""
    lines = [_line(command, "command")]
    for name, value in headers:
        if not name or ":" in name:
            raise ValueError(f"bad header name {name!r}")
        lines.append(f"{_line(name, 'header name')}: {_line(value, name)}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\n".join(lines) + "\n\n").encode() + (body or b"")


def sendmsg_execute(
    app: str,
    arg: str | None = None,
    *,
    uuid: str | None = None,
    event_lock: bool = False,
    event_uuid: str | None = None,
) -> bytes:
    """``sendmsg`` executing one dialplan application; ``Event-UUID`` becomes the
    Application-UUID of its CHANNEL_EXECUTE(_COMPLETE) events."""
    headers = [("call-command", "execute"), ("execute-app-name", app)]
    if arg is not None:
        headers.append(("execute-app-arg", arg))
    if event_lock:
        headers.append(("event-lock", "true"))
    if event_uuid:
        headers.append(("Event-UUID", event_uuid))
    return encode_command(f"sendmsg {uuid}" if uuid else "sendmsg", headers)


def sendmsg_hangup(cause: str | None = None, *, uuid: str | None = None) -> bytes:
    headers = [("call-command", "hangup")]
    if cause:
        headers.append(("hangup-cause", cause))
    return encode_command(f"sendmsg {uuid}" if uuid else "sendmsg", headers)
