"""ng messages on the wire: ``<cookie> <bencoded dictionary>``.

bencode.py does the bencoding; this module only configures it for ng:

- Replies are decoded leniently: rtpengine writes dictionary keys in insertion order, not the
  sorted order strict decoders (bencode2) insist on, and bencode.py does not check the order.
- ng speaks text, bencode only byte strings. The fast path decodes every string as UTF-8 inside
  the library (one pass, plain dicts). An SDP with bytes that are not UTF-8 is rare but legal;
  it fails the fast path and is decoded again as bytes, then turned into text with
  ``surrogateescape`` so that sending it back (offer -> answer, say) is byte-for-byte lossless.
- Booleans are refused on encoding: ng has none, and bencode.py would silently send ``i1e``,
  which rtpengine ignores where it expects a flag word or ``"yes"``.

Streams (TCP) carry messages back to back with no length prefix: `message_end` finds where one
ends by walking the bencode structure, as rtpengine itself does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bencodepy

from control.rtpengine.errors import NgProtocolError

NgValue = Any
"""A value in an ng dictionary: str, bytes, int, list or dict of those."""

NgReply = dict[str, NgValue]


def _refuse_bool(value: bool, out: object) -> None:
    raise TypeError("ng has no booleans: use a flags list or 'yes'/'no'")


def _make_encoder() -> Callable[[object], bytes]:
    encoder = bencodepy.BencodeEncoder()
    encode_bytes = encoder.encode_bytes

    def encode_text(value: str, out: object) -> None:
        encode_bytes(value.encode("utf-8", "surrogateescape"), out)

    encoder.encode_func[bool] = _refuse_bool
    encoder.encode_func[str] = encode_text
    encode: Callable[[object], bytes] = encoder.encode
    return encode


_encode = _make_encoder()
_decode_text = bencodepy.BencodeDecoder(encoding="utf-8").decode
_decode_bytes = bencodepy.BencodeDecoder().decode


def bencoded(message: dict[str, NgValue]) -> bytes:
    """The bencoded body of a message; TypeError for values ng cannot carry."""
    try:
        body: bytes = _encode(message)
    except KeyError as exc:  # bencode.py dispatches on the exact type
        raise TypeError(f"ng cannot carry a value of type {exc.args[0].__name__}") from None
    return body


def encode(cookie: str, message: dict[str, NgValue]) -> bytes:
    return cookie.encode("ascii") + b" " + bencoded(message)


def _text(value: NgValue) -> NgValue:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, list):
        return [_text(item) for item in value]
    if isinstance(value, dict):
        return {_text(key): _text(item) for key, item in value.items()}
    return value


def decode_body(payload: bytes) -> NgReply:
    """The dictionary of a reply body; NgProtocolError for anything else."""
    try:
        body = _decode_text(payload)
    except bencodepy.BencodeDecodeError:
        try:  # not bencode at all, or strings that are not UTF-8: the slow path tells which
            body = _text(_decode_bytes(payload))
        except bencodepy.BencodeDecodeError as exc:
            raise NgProtocolError(f"reply is not bencoded: {exc}") from None
    if not isinstance(body, dict):
        raise NgProtocolError("reply is not a dictionary")
    return body


def split(message: bytes) -> tuple[str, bytes]:
    """Cookie and body of a message, without decoding the body (cheap: drop foreign replies)."""
    cookie, sep, payload = message.partition(b" ")
    if not sep or not cookie:
        raise NgProtocolError("message has no cookie")
    return cookie.decode("ascii", "replace"), payload


def decode(message: bytes) -> tuple[str, NgReply]:
    """Cookie and dictionary of a message; NgProtocolError on anything else."""
    cookie, payload = split(message)
    return cookie, decode_body(payload)


def message_end(buffer: bytes | bytearray) -> int | None:
    """Length of the first whole message in a stream buffer, or None while it is incomplete."""
    space = buffer.find(b" ")
    if space < 0:
        return None
    if space == 0:
        raise NgProtocolError("stream message has no cookie")
    pos, depth, size = space + 1, 0, len(buffer)
    while pos < size:
        lead = buffer[pos]
        if lead in b"dl":
            depth, pos = depth + 1, pos + 1
        elif lead == ord("e") and depth > 0:
            depth, pos = depth - 1, pos + 1
        elif lead == ord("i"):
            end = buffer.find(b"e", pos)
            if end < 0:
                return None
            pos = end + 1
        elif 0x30 <= lead <= 0x39:
            colon = buffer.find(b":", pos)
            if colon < 0:
                return None
            try:
                pos = colon + 1 + int(buffer[pos:colon])
            except ValueError:
                raise NgProtocolError("stream holds a malformed string length") from None
        else:
            raise NgProtocolError(f"stream holds no bencode at offset {pos}")
        if depth == 0:
            return pos if pos <= size else None
    return None
