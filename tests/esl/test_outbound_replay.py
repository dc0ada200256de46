"""Outbound sessions against byte-exact replays of FreeSWITCH's ``socket`` application: the
replay connects to our server as FreeSWITCH did and checks every byte our session sends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from esl.outbound import OutboundServer, OutboundSession
from esl.protocol import Event, Frame
from tests.esl.replay import replay_outbound
from tests.esl.transcripts import load

LINGER_EVENTS = (
    "PLAYBACK_START PLAYBACK_STOP RECORD_START RECORD_STOP CUSTOM conference::maintenance"
)
PAGD = "1 3 1 7000 # tone_stream://%(300,0,600) silence_stream://250 pagd_digits \\d+ 3000"


def run(name: str, handler: Callable[[OutboundSession], Awaitable[None]]) -> None:
    outcome: list[BaseException] = []

    async def guarded(session: OutboundSession) -> None:
        try:
            await asyncio.wait_for(handler(session), 10)
        except BaseException as exc:
            outcome.append(exc)
            raise

    async def main() -> None:
        server = OutboundServer(guarded, "127.0.0.1", 0)
        host, port = await server.start()
        result = await asyncio.wait_for(replay_outbound(load(name), host, port), 15)
        await server.stop(grace=5)
        if outcome:
            raise outcome[0]
        result.check()
        assert server.handled == 1

    asyncio.run(main())


def collect(session: OutboundSession) -> list[Event]:
    seen: list[Event] = []
    session.conn.on_event(seen.append)
    return seen


def notices(session: OutboundSession) -> list[Frame]:
    return session.conn.stats.notices


async def full_call(session: OutboundSession, *, linger: int | None, subscribe: bool) -> None:
    """The capture tool's call: answer, locked playback, digits, getvar, record, conference,
    then our own hangup."""
    channel = await session.connect()
    uuid = channel.uuid
    assert channel.get("Reply-Text") == "+OK\n"  # %2BOK%0A, decoded per header
    assert channel.get("Socket-Mode") == "async" and channel.get("Control") == "full"
    assert channel.get("Content-Type") == "command/reply"  # last header, after the channel
    assert channel.var(
        "sip_call_id",
    ) and "@127.0.0.1" in (channel.var("sip_call_id") or "")
    assert channel.get("Caller-Destination-Number") == "7000"
    assert channel.var("current_application_data") == "127.0.0.1:8084 async full"
    assert not channel.answered
    seen = collect(session)
    assert await session.myevents() == "+OK Events Enabled"
    if subscribe:
        await session.events(LINGER_EVENTS.split())
    said = await session.linger(linger)
    assert said == ("+OK will linger" if linger is None else f"+OK will linger {linger} seconds")
    answer = await session.execute("answer", event_lock=False, tag=False)
    assert (await answer.complete)["Application-Response"] == "_none_"
    play = await session.execute(
        "playback", "tone_stream://%(500,0,440)", uuid=uuid,
        event_uuid="aaaaaaaa-0000-4000-8000-000000000001",
    )  # fmt: skip
    played = await play.complete
    assert played["Application-UUID"] == "aaaaaaaa-0000-4000-8000-000000000001"
    assert played["Application-Response"] == "FILE PLAYED"
    assert played["Application-Data"] == "tone_stream://%(500,0,440)"
    digits = await session.execute(
        "play_and_get_digits", PAGD, uuid=uuid, event_lock=False, tag=False
    )
    got = await digits.complete
    assert got.variable("pagd_digits") == "12" and got.variable("read_result") == "success"
    assert [e["DTMF-Digit"] for e in seen if e.name == "DTMF"] == ["1", "2", "#"]
    assert await session.getvar("pagd_digits") == "12"
    record = await session.execute(
        "record", "/var/lib/fs/recs/rec.wav 2", uuid=uuid, event_lock=False, tag=False
    )
    recorded = await record.complete
    assert recorded.variable("record_seconds") == "2"
    if subscribe:
        talking = session.conn.expect(lambda e: e.get("Action") == "start-talking")
    else:
        talking = session.conn.expect(
            lambda e: e.name == "CHANNEL_EXECUTE" and e["Application"] == "conference"
        )
    conference = await session.execute(
        "conference", "esl_capture@default", uuid=uuid, event_lock=False, tag=False
    )
    await talking
    done = session.conn.expect(lambda e: e.name == "CHANNEL_HANGUP_COMPLETE")
    await session.hangup("NORMAL_CLEARING", uuid=uuid)
    await session.hung_up.wait()
    assert session.hangup_cause == "NORMAL_CLEARING"
    assert (await conference.complete)["Hangup-Cause"] == "NORMAL_CLEARING"
    await done
    linger_notice = notices(session)[0]
    assert linger_notice["Content-Disposition"] == "linger"
    assert linger_notice["Linger-Time"] == ("-1" if linger is None else str(linger))
    assert linger_notice["Controlled-Session-UUID"] == uuid
    if linger is not None:
        await asyncio.wait_for(session.conn.closed, 5)  # FreeSWITCH closes after lingering
        assert notices(session)[-1]["Content-Disposition"] == "disconnect"


def test_full_call_with_bare_linger_until_we_close() -> None:
    async def handler(session: OutboundSession) -> None:
        await full_call(session, linger=None, subscribe=False)  # we close: FS never would

    run("out01a_socket_7000_myevents_only_bare_linger", handler)


def test_full_call_with_playback_record_conference_events_and_linger_5() -> None:
    async def handler(session: OutboundSession) -> None:
        seen = collect(session)
        await full_call(session, linger=5, subscribe=True)
        names = [e.name for e in seen]
        for name in ("PLAYBACK_START", "PLAYBACK_STOP", "RECORD_START", "RECORD_STOP"):
            assert name in names
        actions = [e["Action"] for e in seen if e.name == "CUSTOM"]
        assert actions == ["add-member", "floor-change", "start-talking", "del-member"]

    run("out01b_socket_7000_myevents_plus_event_plain_linger5", handler)


async def caller_hangs_up(session: OutboundSession, *, linger: int | None, lock: bool) -> None:
    channel = await session.connect()
    seen = collect(session)
    await session.myevents()
    await session.events(LINGER_EVENTS.split())
    if linger is not None:
        await session.linger(linger)
    await (await session.execute("answer", uuid=channel.uuid, event_lock=False, tag=False)).complete
    first = await session.execute(
        "playback", "tone_stream://%(10000,0,440)", uuid=channel.uuid, event_lock=lock, tag=False
    )
    await session.execute(
        "playback", "tone_stream://%(1000,0,880)", uuid=channel.uuid, event_lock=lock, tag=False
    )
    await session.hung_up.wait()
    assert session.hangup_cause == "NORMAL_CLEARING"
    await asyncio.wait_for(session.conn.closed, 5)
    results = [
        e["Application-Response"] for e in seen
        if e.name == "CHANNEL_EXECUTE_COMPLETE" and e["Application"] == "playback"
    ]  # fmt: skip
    # Without event-lock the second playback ran nested and finished first; with it, it was
    # dropped when the caller left. Either way the long one ends in PLAYBACK ERROR.
    assert results == (["PLAYBACK ERROR"] if lock else ["FILE PLAYED", "PLAYBACK ERROR"])
    assert (await first.complete)["Application-Response"] in results
    dispositions = [n["Content-Disposition"] for n in notices(session)]
    assert dispositions == (["disconnect"] if linger is None else ["linger", "disconnect"])


def test_caller_bye_during_playback_with_linger() -> None:
    async def handler(session: OutboundSession) -> None:
        await caller_hangs_up(session, linger=3, lock=False)

    run("out02a_caller_bye_during_playback_7001_linger3", handler)


def test_caller_bye_during_playback_without_linger() -> None:
    async def handler(session: OutboundSession) -> None:
        await caller_hangs_up(session, linger=None, lock=False)

    run("out02b_caller_bye_during_playback_7001_no_linger", handler)


def test_caller_bye_with_event_lock_drops_the_queued_playback() -> None:
    async def handler(session: OutboundSession) -> None:
        await caller_hangs_up(session, linger=3, lock=True)

    run("out02c_caller_bye_during_playback_7001_event_lock_linger3", handler)
