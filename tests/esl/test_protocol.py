"""The wire format on its own: framing under any chunking, per-header decoding, encoding
refusals, and the connection's timeouts and reply alignment."""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esl.connection import CommandTimeout, Connection, ConnectionClosed
from esl.protocol import (
    MAX_HEADER_BYTES,
    FrameParser,
    ProtocolError,
    encode_command,
    parse_event,
    sendmsg_execute,
)
from tests.esl.peer import FULL_CALL
from tests.esl.transcripts import FS, load, names

STREAMS = {name: load(name).stream(FS) for name in names()}


def frames_of(data: bytes, cuts: list[int]) -> list[tuple[tuple[tuple[str, str], ...], bytes]]:
    parser = FrameParser()
    out = []
    last = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out += [(f.pairs, f.body) for f in parser.feed(data[last:cut])]
        last = cut
    assert parser.buffered == 0
    return out


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(sorted(STREAMS)),
    cuts=st.lists(st.floats(0, 1), max_size=40),
)
def test_any_chunking_gives_the_same_frames(name: str, cuts: list[float]) -> None:
    data = STREAMS[name]
    whole = frames_of(data, [])
    assert frames_of(data, [int(c * len(data)) for c in cuts]) == whole


def test_byte_by_byte_equals_whole_for_the_biggest_outbound_capture() -> None:
    data = STREAMS[FULL_CALL]
    assert frames_of(data, list(range(len(data)))) == frames_of(data, [])


def test_values_are_decoded_per_header_not_per_block() -> None:
    """The SDP in the connect reply carries %0D%0A: decoded per header it stays one value;
    decoding the block first (greenswitch's way) splits it into bogus header lines."""
    data = STREAMS[FULL_CALL]
    connect = FrameParser().feed(data)[0]
    sdp = connect["variable_switch_r_sdp"]
    assert sdp.startswith("v=0\r\no=user1 ") and sdp.count("\r\n") == 10
    assert connect["Reply-Text"] == "+OK\n"
    block = data[: data.index(b"\n\n")].decode()
    naive = [line for line in unquote(block).split("\n") if ": " not in line and line.strip()]
    assert naive  # e.g. "s=-\r", "t=0 0\r": the whole-block approach corrupts the headers


def test_plus_and_percent_survive() -> None:
    frame = FrameParser().feed(b"Content-Type: command/reply\nReply-Text: +OK a%2Bb%25c\n\n")[0]
    assert frame.reply_text == "+OK a+b%c" and frame.ok


def test_json_and_xml_events_keep_duplicates_and_bodies() -> None:
    frames = FrameParser().feed(STREAMS["in05_event_json_ALL"])
    custom = next(parse_event(f) for f in frames if b'"CUSTOM"' in f.body)
    assert [n for n, _ in custom.headers.pairs].count("Content-Length") == 2
    assert custom["X-Test-Header"].endswith("\u00fc/\\")


@pytest.mark.parametrize(
    "data",
    [
        b"Content-Length: -1\n\n",
        b"Content-Length: many\n\n",
        b"no colon here\n\n",
        b"Content-Length: 999999999999\n\n",
    ],
)
def test_malformed_frames_are_refused(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameParser().feed(data)


def test_an_endless_header_block_is_refused() -> None:
    parser = FrameParser()
    with pytest.raises(ProtocolError, match="too large"):
        parser.feed(b"X: " + b"a" * (MAX_HEADER_BYTES + 10))


@pytest.mark.parametrize("bad", ["a\nexit", "a\rb"])
def test_line_breaks_cannot_smuggle_commands(bad: str) -> None:
    with pytest.raises(ValueError, match="one line"):
        encode_command("api status", [("X", bad)])
    with pytest.raises(ValueError, match="one line"):
        sendmsg_execute("playback", bad)
    with pytest.raises(ValueError):
        encode_command(f"api {bad}")


def test_body_gets_its_content_length_last() -> None:
    assert encode_command("sendevent CUSTOM", [("A", "b")], b"xyz") == (
        b"sendevent CUSTOM\nA: b\nContent-Length: 3\n\nxyz"
    )


async def _server(behaviour: str) -> tuple[asyncio.Server, int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\n\n")  # first command: never answered in time
        if behaviour == "close":
            writer.close()
            return
        await reader.readuntil(b"\n\n")  # second command
        await asyncio.sleep(0.2)
        writer.write(b"Content-Type: command/reply\nReply-Text: +OK first\n\n")
        writer.write(b"Content-Type: command/reply\nReply-Text: +OK second\n\n")
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


def test_a_timed_out_reply_does_not_answer_the_next_command() -> None:
    async def main() -> None:
        server, port = await _server("late")
        conn = await Connection.open("127.0.0.1", port)
        with pytest.raises(CommandTimeout):
            await conn.request(b"first\n\n", timeout=0.05)
        second = await conn.request(b"second\n\n", timeout=2)
        assert second.reply_text == "+OK second"  # the late "+OK first" was dropped
        assert conn.stats.late_replies == 1
        await conn.close()
        server.close()

    asyncio.run(main())


def test_waiting_requests_fail_when_the_socket_closes() -> None:
    async def main() -> None:
        server, port = await _server("close")
        conn = await Connection.open("127.0.0.1", port)
        waiter = conn.expect(lambda e: True)
        with pytest.raises(ConnectionClosed):
            await conn.request(b"first\n\n", timeout=2)
        with pytest.raises(ConnectionClosed):
            await waiter
        with pytest.raises(ConnectionClosed):
            await conn.request(b"again\n\n")
        await conn.close()
        server.close()

    asyncio.run(main())
