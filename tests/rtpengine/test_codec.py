"""The codec layer: cookies, lenient bencode, lossless text, stream framing, typed errors."""

from __future__ import annotations

import pytest

from control.rtpengine import (
    NgCallNotFound,
    NgCommandError,
    NgOverloaded,
    NgProtocolError,
    NgUnsupportedCommand,
)
from control.rtpengine.codec import bencoded, decode, encode, message_end
from control.rtpengine.errors import check_reply


def test_encode_decode_round_trip_keeps_text_and_numbers() -> None:
    datagram = encode("c1", {"command": "offer", "flags": ["trust-address"], "ttl": 5, "sdp": "é"})
    cookie, body = decode(datagram)
    assert cookie == "c1"
    assert body == {"command": "offer", "flags": ["trust-address"], "ttl": 5, "sdp": "é"}


def test_unsorted_keys_as_rtpengine_writes_them_are_accepted() -> None:
    # rtpengine appends "result" last, after "sdp": not the sorted order bencode requires.
    cookie, body = decode(b"k9 d3:sdp3:v=06:result2:oke")
    assert (cookie, body) == ("k9", {"sdp": "v=0", "result": "ok"})


def test_bytes_that_are_not_utf8_survive_a_round_trip() -> None:
    raw = b"s=caf\xe9\r\n"  # Latin-1 in an SDP: legal bytes, not UTF-8
    _, body = decode(b"c d3:sdp" + str(len(raw)).encode() + b":" + raw + b"e")
    assert isinstance(body["sdp"], str)
    assert bencoded({"sdp": body["sdp"]}) == b"d3:sdp" + str(len(raw)).encode() + b":" + raw + b"e"


def test_booleans_and_unknown_types_are_refused() -> None:
    with pytest.raises(TypeError, match="booleans"):
        encode("c", {"flags": True})
    with pytest.raises(TypeError, match="float"):
        encode("c", {"ptime": 20.0})


@pytest.mark.parametrize("garbage", [b"", b"nocookie", b"c1 not-bencode", b"c1 li1ee", b" d1:ae"])
def test_garbage_replies_raise_protocol_error(garbage: bytes) -> None:
    with pytest.raises(NgProtocolError):
        decode(garbage)


def test_stream_framing_finds_message_boundaries() -> None:
    first = encode("a1", {"result": "ok", "calls": ["x", "y"], "n": -3, "d": {"k": "v"}})
    second = encode("a2", {"result": "pong"})
    stream = first + second
    assert message_end(stream) == len(first)
    assert message_end(stream[len(first) :]) == len(second)
    for cut in (1, 3, len(first) // 2, len(first) - 1):  # inside cookie, length, string, end
        assert message_end(first[:cut]) is None
    with pytest.raises(NgProtocolError):
        message_end(b"a1 x")
    with pytest.raises(NgProtocolError):
        message_end(b" d1:ae")


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ({"result": "error", "error-reason": "Unknown call-id"}, NgCallNotFound),
        ({"result": "error", "error-reason": "Unknown call-ID"}, NgCallNotFound),
        ({"result": "error", "error-reason": "Unrecognized command"}, NgUnsupportedCommand),
        ({"result": "error", "error-reason": "unsupported"}, NgUnsupportedCommand),
        ({"result": "error", "error-reason": "Ran out of ports"}, NgOverloaded),
        ({"result": "load limit", "message": "CPU usage limit exceeded"}, NgOverloaded),
        ({"result": "error", "error-reason": "Failed to parse SDP"}, NgCommandError),
        ({"result": "error"}, NgCommandError),
        ({}, NgProtocolError),
        ({"result": "maybe"}, NgProtocolError),
    ],
)
def test_replies_map_to_typed_errors(reply: dict[str, str], error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        check_reply("offer", reply)
    assert type(raised.value) is error


def test_success_replies_pass() -> None:
    check_reply("ping", {"result": "pong"})
    check_reply("offer", {"result": "ok", "warning": "unknown SDP attribute"})
