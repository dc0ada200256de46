"""The test peer must be indistinguishable from FreeSWITCH: its encoder and frame builders
reproduce every recorded frame byte for byte, and driven with the capture tool's own commands
it answers with the recorded sequence of frames."""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

import pytest

from tests.esl.fswire import (
    GOODBYE,
    api_frame,
    disconnect_notice,
    event_frame,
    fs_encode,
    linger_notice,
    raw_pairs,
    recorded,
    reply_frame,
    split_frames,
)
from tests.esl.peer import CALLER_BYE, FULL_CALL, Caller, FreeSwitchPeer, Reaction
from tests.esl.transcripts import FS, TOOL, load, names

ALL = names()


@pytest.mark.parametrize("name", ALL)
def test_every_recorded_frame_is_rebuilt_byte_for_byte(name: str) -> None:
    stream = load(name).fs_bytes
    assert stream == load(name).bin(FS)
    rebuilt = 0
    for block, body in split_frames(stream):
        raw = block + b"\n\n" + body
        pairs = raw_pairs(block)
        fields = dict(pairs)
        kind = fields.get("Content-Type")
        if kind == "text/event-plain":
            end = body.index(b"\n\n")
            inner = raw_pairs(body[:end])
            assert event_frame(inner, body[end + 2 :]) == raw
            for _, value in inner:  # FreeSWITCH's URL encoding, value by value
                assert fs_encode(unquote(value)) == value
        elif kind == "command/reply" and set(fields) == {"Content-Type", "Reply-Text"}:
            assert reply_frame(fields["Reply-Text"]) == raw
        elif kind == "api/response":
            assert api_frame(body.decode()) == raw
        elif kind == "text/disconnect-notice" and fields.get("Content-Disposition") == "linger":
            channel = fields["Channel-Name"]
            uuid = fields["Controlled-Session-UUID"]
            assert linger_notice(uuid, channel, int(fields["Linger-Time"])) == raw
        elif kind == "text/disconnect-notice" and "Controlled-Session-UUID" in fields:
            assert disconnect_notice(fields["Controlled-Session-UUID"]) == raw
            assert body.decode() == GOODBYE
        else:
            continue
        rebuilt += 1
    assert rebuilt > 0


def test_connect_reply_values_reencode_exactly() -> None:
    for _, value in recorded(FULL_CALL).connect:
        assert fs_encode(unquote(value)) == value


def _key(block: bytes, body: bytes) -> tuple[str, ...]:
    """What a controller acts on in a frame (timestamps and counters aside)."""
    fields = {k: unquote(v) for k, v in raw_pairs(block)}
    kind = fields.get("Content-Type", "")
    if kind == "command/reply":
        return ("reply", fields["Reply-Text"])
    if kind == "api/response":
        return ("api", body.decode())
    if kind == "text/disconnect-notice":
        return ("notice", fields.get("Content-Disposition", ""), fields.get("Linger-Time", ""))
    event = {k: unquote(v) for k, v in raw_pairs(body[: body.index(b"\n\n")])}
    picked = ("Application", "Application-Response", "Action", "DTMF-Digit", "Hangup-Cause")
    state = event.get("Channel-State", "") if event["Event-Name"] == "CHANNEL_STATE" else ""
    return ("event", event["Event-Name"], state, *(event.get(k, "") for k in picked))


async def _drive(name: str, caller: Caller) -> tuple[list[tuple[str, ...]], bytes]:
    """Play the capture tool against the peer: each recorded command is sent once the peer has
    sent as many frames as FreeSWITCH had when the tool sent it."""
    transcript = load(name)
    plan: list[tuple[int, bytes]] = []
    fs_so_far = b""
    for record in transcript.records:
        if record.type == "data" and record.dir == FS:
            fs_so_far += record.data
        elif record.type == "data" and record.dir == TOOL:
            plan.append((_complete_frames(fs_so_far), record.data))
    frames: list[tuple[str, ...]] = []
    first: list[bytes] = []
    done = asyncio.Event()

    async def tool(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        steps = list(plan)
        while True:
            while steps and len(frames) >= steps[0][0]:
                writer.write(steps.pop(0)[1])
            chunk = await reader.read(65536)
            if not chunk:
                break
            buffer += chunk
            while (frame := _next_frame(buffer)) is not None:
                block, body, used = frame
                first.append(block + b"\n\n" + body)
                frames.append(_key(block, body))
                buffer = buffer[used:]
                while steps and len(frames) >= steps[0][0]:
                    writer.write(steps.pop(0)[1])
        writer.close()
        done.set()

    server = await asyncio.start_server(tool, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    peer = FreeSwitchPeer(linger_scale=0.01, app_latency=0.02)  # the captured latency
    try:
        source = recorded(name)
        call = peer.call(
            [("127.0.0.1", port)], {}, caller, uuid=source.uuid, call_id=unquote(source.call_id_raw)
        )
        await asyncio.wait_for(call, 10)
        await asyncio.wait_for(done.wait(), 5)
    except TimeoutError:
        raise AssertionError(f"stalled after {frames[-3:]}") from None
    server.close()
    return frames, first[0]


def _complete_frames(stream: bytes) -> int:
    count = 0
    while True:
        end = stream.find(b"\n\n")
        if end < 0:
            return count
        length = 0
        for line in stream[:end].split(b"\n"):
            if line.startswith(b"Content-Length: "):
                length = int(line[16:])
        if len(stream) < end + 2 + length:
            return count
        stream = stream[end + 2 + length :]
        count += 1


def _next_frame(buffer: bytes) -> tuple[bytes, bytes, int] | None:
    end = buffer.find(b"\n\n")
    if end < 0:
        return None
    length = 0
    for line in buffer[:end].split(b"\n"):
        if line.startswith(b"Content-Length: "):
            length = int(line[16:])
    if len(buffer) < end + 2 + length:
        return None
    return buffer[:end], buffer[end + 2 : end + 2 + length], end + 2 + length


def _recorded_keys(name: str) -> list[tuple[str, ...]]:
    return [_key(block, body) for block, body in split_frames(load(name).fs_bytes)]


def test_full_call_answers_as_freeswitch_did() -> None:
    caller = Caller(on={"play_and_get_digits": [Reaction(digits="12#")]})
    frames, connect = asyncio.run(_drive(FULL_CALL, caller))
    assert frames == _recorded_keys(FULL_CALL)
    # The connect reply is the recorded one with only the channel's identity changed.
    original = next(split_frames(load(FULL_CALL).fs_bytes))[0] + b"\n\n"
    source = recorded(FULL_CALL)
    pairs = dict(raw_pairs(connect[:-2]))
    expected = original.replace(source.uuid.encode(), pairs["Unique-ID"].encode()).replace(
        source.call_id_raw.encode(), pairs["variable_sip_call_id"].encode()
    )
    assert connect == expected


def test_caller_bye_with_event_lock_as_freeswitch_did() -> None:
    caller = Caller(on={"playback": [Reaction(hangup=True)]})
    frames, _ = asyncio.run(_drive(CALLER_BYE, caller))
    assert frames == _recorded_keys(CALLER_BYE)


def _command_replies(name: str) -> list[tuple[bytes, bytes]]:
    """(command as the tool sent it, FreeSWITCH's command/reply frame), in order."""
    commands = [c + b"\n\n" for c in load(name).bin(TOOL).split(b"\n\n") if c]
    replies = [
        block + b"\n\n" + body
        for block, body in split_frames(load(name).fs_bytes)
        if b"Content-Type: command/reply" in block
    ]
    return list(zip(commands[1:], replies[1:], strict=False))  # past auth


@pytest.mark.parametrize(
    "name",
    ["orig02_inbound_sendmsg_filter_bgapi_originate", "in07_filter_nixevent_noevents_linger_exit"],
)
def test_inbound_stand_in_answers_subscriptions_as_freeswitch_did(name: str) -> None:
    """The callback dialer's stand-in: ``event``, ``filter``, ``filter delete`` and ``bgapi``
    replies byte for byte (a bgapi's Job-UUID is the stand-in's own)."""
    from tests.esl.fs_inbound import InboundFreeSwitch
    from tests.esl.fs_originate import Originator

    wanted = [
        (c, r) for c, r in _command_replies(name)
        if c.startswith((b"event plain", b"filter ", b"bgapi originate"))
        and not c.startswith(b"filter delete all")
    ]  # fmt: skip
    assert wanted

    async def exchange(port: int) -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readuntil(b"\n\n")
        writer.write(b"auth ClueCon\n\n")
        await reader.readuntil(b"\n\n")
        got = []
        for command, _ in wanted:
            if command.startswith(b"bgapi originate"):  # ours: a dial string it can place
                command = b"bgapi originate {x=1}[origination_uuid=u1]sofia/internal/a@h &bridge({y=2}sofia/internal/b@h)\n\n"
            writer.write(command)
            got.append(await reader.readuntil(b"\n\n"))
        writer.close()
        return got

    with InboundFreeSwitch(originator=Originator()).running() as fs:
        got = asyncio.run(exchange(fs.port))
    for (command, recorded_reply), reply in zip(wanted, got, strict=True):
        if command.startswith(b"bgapi"):
            job = dict(raw_pairs(reply[:-2]))["Job-UUID"]
            old = dict(raw_pairs(recorded_reply[:-2]))["Job-UUID"]
            assert reply == recorded_reply.replace(old.encode(), job.encode())
        else:
            assert reply == recorded_reply, command


def test_inbound_stand_in_background_job_is_the_recorded_frame() -> None:
    """Built from the capture with the capture's own values, the BACKGROUND_JOB frame is the
    recorded one byte for byte (the stand-in only swaps Job-UUID, argument and body)."""
    from tests.esl.fs_originate import Originator

    name = "orig02_inbound_sendmsg_filter_bgapi_originate"
    frames = [b + b"\n\n" + body for b, body in split_frames(load(name).fs_bytes)]
    raw = next(f for f in frames if b"Event-Name: BACKGROUND_JOB" in f)
    _, body = next(split_frames(raw))
    inner = dict(raw_pairs(body[: body.index(b"\n\n")]))
    sent: list[bytes] = []
    originator = Originator()
    originator.emit = lambda pairs, data: sent.append(event_frame(pairs, data))
    originator._job(
        inner["Job-UUID"],
        unquote(inner["Job-Command-Arg"]),
        body[body.index(b"\n\n") + 2 :].decode(),
    )
    assert sent == [raw]
