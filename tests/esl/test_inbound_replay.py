"""The inbound client against byte-exact replays of real FreeSWITCH sessions: each test drives
the client the way the capture tool drove FreeSWITCH, the replay checks every byte the client
sends against the capture, and the test checks what the client made of FreeSWITCH's bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from esl.connection import CommandError, Connection
from esl.inbound import AuthError, Backoff, InboundClient, ResilientInbound, Subscription
from esl.protocol import Event, Frame
from tests.esl.replay import ReplayServer
from tests.esl.transcripts import load

CUSTOM_HEADER = 'a b%c "q" <x> & \u00fc/\\'
CUSTOM_BODY = 'body line 1\nline2 with "quotes" & <xml> % \\ backslash \u00fc\n'.encode()
GOODBYE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def run(name: str, scenario: Callable[[ReplayServer], Awaitable[None]]) -> None:
    async def main() -> None:
        async with ReplayServer(load(name)) as server:
            await asyncio.wait_for(scenario(server), 10)
            await server.finished()
        server.results[0].check()

    asyncio.run(main())


async def client(server: ReplayServer) -> InboundClient:
    return await InboundClient.connect(server.host, server.port, "ClueCon")


def collect(c: InboundClient) -> list[Event]:
    seen: list[Event] = []
    c.conn.on_event(seen.append)
    return seen


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def sendevent(c: InboundClient) -> str:
    headers = [
        ("Event-Subclass", "esl::capture"),
        ("X-Test-Header", CUSTOM_HEADER),
        ("Content-Type", "text/plain"),
    ]
    return await c.sendevent("CUSTOM", headers, CUSTOM_BODY)


def test_wrong_password_is_refused_with_the_notice() -> None:
    async def scenario(server: ReplayServer) -> None:
        with pytest.raises(AuthError) as caught:
            await InboundClient.connect(server.host, server.port, "WrongPassword")
        assert caught.value.reply == "-ERR invalid"
        assert caught.value.notice == GOODBYE

    run("in01_auth_wrong_password", scenario)


def test_commands_before_auth_are_refused_and_the_connection_stays() -> None:
    async def scenario(server: ReplayServer) -> None:
        conn = await Connection.open(server.host, server.port)
        await conn.auth_request
        c = InboundClient(conn)
        with pytest.raises(CommandError, match="-ERR command not found"):
            await c.api("status")
        with pytest.raises(CommandError, match="-ERR command not found"):
            await c.events(["ALL"])
        await c.auth("ClueCon")
        await c.exit()
        assert conn.stats.notices[-1].text == GOODBYE

    run("in02_commands_before_auth", scenario)


def test_api_bgapi_unknown_pipelined_and_crlf() -> None:
    async def scenario(server: ReplayServer) -> None:
        c = await client(server)
        assert "FreeSWITCH (Version 1.11.1-release  64bit) is ready" in await c.api("status")
        assert "2 profiles 1 alias" in await c.api("sofia status")
        assert "DTMF-MODE        \trfc2833" in await c.api("sofia status profile external")
        missing = "-ERR unknown_cmd_xyz Command not found!\n"
        assert await c.api("unknown_cmd_xyz") == missing
        assert await c.api("unknown_cmd_xyz with some args") == missing
        version = "FreeSWITCH Version 1.11.1-release~64bit ( 64bit)\n"
        assert await c.api("version") == version
        assert await c.api("eval ${hostname}") == "vm"  # no trailing newline
        await c.events(["BACKGROUND_JOB"])
        job = await c.bgapi("status")
        assert job.job_uuid == "2425bf29-785f-49d8-a58b-2d357dad05e7"
        done = await job.result()
        assert done["Job-Command"] == "status" and done.body.startswith(b"UP 0 years")
        assert len(done.body) == 335
        own = "11111111-2222-3333-4444-555555555555"
        job = await c.bgapi("status", job_uuid=own)
        assert job.job_uuid == own and (await job.result())["Job-UUID"] == own
        job = await c.bgapi("unknown_cmd_xyz")
        assert (await job.result()).body == b"-ERR unknown_cmd_xyz Command not found!\n"
        assert (await c.command("foobar")).reply_text == "-ERR command not found"
        first, second = await asyncio.gather(c.api("version"), c.api("status"))
        assert first == version and second.startswith("UP 0 years")
        crlf = await c.conn.request(b"api version\r\n\r\n")
        assert crlf.text == version
        await c.exit()

    run("in03_auth_api_bgapi", scenario)


async def _events_session(server: ReplayServer, fmt: str, last: str) -> list[Event]:
    c = await client(server)
    seen = collect(c)
    assert await c.events(["ALL"], fmt=fmt) == f"+OK event listener enabled {fmt}"
    job = await c.bgapi("status")
    assert (await job.result()).body.startswith(b"UP 0 years")
    event_uuid = await sendevent(c)
    await until(lambda: any(e.name == last for e in seen))
    await c.exit()
    custom = [e for e in seen if e.name == "CUSTOM"]
    mine = next(e for e in custom if e.get("Event-UUID") == event_uuid)
    assert mine.format == fmt
    assert mine["Event-Subclass"] == "esl::capture"
    assert mine["X-Test-Header"] == CUSTOM_HEADER
    assert mine["Command"] == "sendevent CUSTOM"
    assert mine.body == CUSTOM_BODY
    twice = 1 if fmt == "xml" else 2  # xml puts the body's length outside <headers>
    assert [name for name, _ in mine.headers.pairs].count("Content-Length") == twice
    assert [e.name for e in seen] == server.results[0].transcript.timeline_events()
    return seen


@pytest.mark.parametrize(
    ("name", "fmt", "last"),
    [
        ("in04_event_plain_ALL", "plain", "RE_SCHEDULE"),
        ("in05_event_json_ALL", "json", "RE_SCHEDULE"),
        ("in06_event_xml_ALL", "xml", "CUSTOM"),
    ],
)
def test_events_in_every_format_decode_to_the_same_values(name: str, fmt: str, last: str) -> None:
    async def scenario(server: ReplayServer) -> None:
        seen = await _events_session(server, fmt, last)
        if fmt != "xml":
            heartbeat = next(e for e in seen if e.name == "HEARTBEAT")
            assert heartbeat["FreeSWITCH-IPv6"] == "fd00::2"  # %3A decoded in plain, raw in json

    run(name, scenario)


def test_filters_nixevent_noevents_and_linger_on_inbound() -> None:
    async def scenario(server: ReplayServer) -> None:
        c = await client(server)
        seen = collect(c)
        await c.events(["BACKGROUND_JOB", "CUSTOM", "esl::capture"])
        added = await c.filter("Event-Name", "BACKGROUND_JOB")
        assert added == "+OK filter added. [Event-Name]=[BACKGROUND_JOB]"
        await (await c.bgapi("status")).result()
        await sendevent(c)  # filtered out: only BACKGROUND_JOB passes
        deleted = await c.filter_delete("Event-Name", "BACKGROUND_JOB")
        assert deleted == "+OK filter deleted. [Event-Name][BACKGROUND_JOB]"
        await c.filter_delete("Event-Name", "NOPE")
        await c.filter("Unique-ID", "00000000-0000-0000-0000-000000000000")
        assert await c.filter_delete("all") == "+OK filter deleted. [all][]"
        assert (await c.command("filter")).reply_text == "-ERR command not found"
        assert await c.nixevent(["BACKGROUND_JOB"]) == "+OK events nixed"
        await c.bgapi("status")  # reply only: the event is no longer subscribed
        await sendevent(c)
        await until(lambda: [e.name for e in seen] == ["BACKGROUND_JOB", "CUSTOM"])
        await c.nixevent(["ALL"])
        assert await c.noevents() == "+OK no longer listening for events"
        with pytest.raises(CommandError, match="-ERR not listening for events"):
            await c.noevents()
        for line in ("linger", "nolinger", "linger 5"):
            assert (await c.command(line)).reply_text == "-ERR not controlling a session"
        await c.exit()

    run("in07_filter_nixevent_noevents_linger_exit", scenario)


def test_log_frames_until_nolog() -> None:
    async def scenario(server: ReplayServer) -> None:
        c = await client(server)
        logs: list[Frame] = []
        c.conn.on_log(logs.append)
        assert await c.log(7) == "+OK log level 7 [7]"
        assert await c.api("log INFO esl_capture hello from log api") == "+OK\n"
        assert await c.api("reloadxml") == "+OK [Success]\n"
        await until(lambda: len(logs) == 2)
        assert logs[0]["Log-Level"] == "6" and logs[0]["User-Data"] == ""
        assert logs[0]["Log-File"] == "mod_commands.c"
        assert logs[0].text.endswith("esl_capture hello from log api\n")
        assert await c.nolog() == "+OK no longer logging"
        await c.api("log INFO esl_capture after nolog")
        await c.exit()
        assert len(logs) == 2

    run("in08_log7", scenario)


def test_shutdown_notice_closes_the_connection() -> None:
    async def scenario(server: ReplayServer) -> None:
        c = await client(server)
        assert await c.api("fsctl shutdown") == "+OK\n"
        await asyncio.wait_for(c.conn.closed, 5)
        assert c.conn.stats.notices[-1].text == "The system is being shut down.\n"
        await c.conn.close()

    run("in09_shutdown_api_fsctl_shutdown", scenario)


def test_reconnect_with_backoff_resubscribes_after_a_shutdown() -> None:
    """The shutdown watcher capture, served twice: the client sees FreeSWITCH go away, comes
    back with backoff, authenticates and subscribes again with the very same bytes."""
    watcher = load("in09_shutdown_watcher_event_plain_ALL")

    async def main() -> None:
        async with ReplayServer(watcher, watcher) as server:
            seen: list[str] = []
            keeper = ResilientInbound(
                server.host, server.port, "ClueCon",
                subscription=Subscription(events=["ALL"]),
                on_event=lambda e: seen.append(e.name),
                backoff=Backoff(first=0.05, cap=0.2),
            )  # fmt: skip
            await keeper.start()
            await server.finished(2, timeout=10)
            await until(lambda: seen.count("UNPUBLISH") == 2)
            await keeper.stop()
        for result in server.results:
            result.check()
        assert keeper.connects == 2
        assert seen == watcher.timeline_events() * 2
        assert seen.count("SHUTDOWN") == 2 and seen.count("MODULE_UNLOAD") == 88

    asyncio.run(main())


def test_originate_bridge_kill_and_their_errors() -> None:
    async def scenario(server: ReplayServer) -> None:
        c = await client(server)
        a = await c.api("originate loopback/9998/public &park()")
        assert a == "+OK eb3428f5-eb7a-40f7-90da-7d4acfe42f80\n"
        b = await c.api(
            "originate {origination_uuid=bbbbbbbb-0000-4000-8000-000000000002,"
            "origination_caller_id_number=4321}loopback/9998/public &park()"
        )
        assert b == "+OK bbbbbbbb-0000-4000-8000-000000000002\n"
        assert (await c.api("show channels")).startswith("uuid,direction,created")
        a_id, b_id = a.split()[1], b.split()[1]
        assert await c.api(f"uuid_bridge {a_id} {b_id}") == f"+OK {b_id}\n"
        assert "4321" in await c.api("show calls")
        assert await c.api(f"uuid_kill {a_id}") == "+OK\n"
        assert await c.api(f"uuid_kill {b_id}") == "-ERR No such channel!\n"
        zero, one = "00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000001"
        assert await c.api(f"uuid_kill {zero}") == "-ERR No such channel!\n"
        assert await c.api(f"uuid_bridge {zero} {one}") == "-ERR Invalid uuid\n"
        failed = await c.api("originate loopback/nonexistent_ext/public &park()")
        assert failed == "-ERR NORMAL_CLEARING\n"
        assert await c.api("show channels") == "\n0 total.\n"
        await c.exit()

    run("orig01_commands", scenario)


def test_every_event_of_a_busy_all_subscription_arrives_in_order() -> None:
    transcript = load("orig01_events_plain_ALL")
    expected = transcript.timeline_events()

    async def scenario(server: ReplayServer) -> None:
        c = await client(server)
        seen = collect(c)
        await c.events(["ALL"])
        await until(lambda: len(seen) == len(expected))
        await c.exit()
        assert [e.name for e in seen] == expected
        bridged = [e for e in seen if e.name == "CHANNEL_BRIDGE"]
        assert bridged and all(e["Unique-ID"] for e in bridged)

    run("orig01_events_plain_ALL", scenario)


def test_sendmsg_execute_with_event_lock_then_hangup_by_uuid() -> None:
    uuid = "cccccccc-0000-4000-8000-000000000003"
    subset = [
        "CHANNEL_CREATE",
        "CHANNEL_ANSWER",
        "CHANNEL_PARK",
        "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_DESTROY",
        "PLAYBACK_START",
        "PLAYBACK_STOP",
        "BACKGROUND_JOB",
    ]

    async def scenario(server: ReplayServer) -> None:
        c = await client(server)
        seen = collect(c)
        await c.events(subset)
        await c.filter("Unique-ID", uuid)
        await c.filter("Event-Name", "BACKGROUND_JOB")
        parked = c.conn.expect(lambda e: e.name == "CHANNEL_PARK")
        job = await c.bgapi(f"originate {{origination_uuid={uuid}}}loopback/9998/public &park()")
        assert (await job.result()).body == f"+OK {uuid}\n".encode()
        await parked
        play = await c.execute("playback", "tone_stream://%(400,0,500)", uuid=uuid, tag=False)
        done = await play.complete
        assert done["Application-Response"] == "FILE PLAYED"
        destroyed = c.conn.expect(lambda e: e.name == "CHANNEL_DESTROY")
        await c.hangup("USER_BUSY", uuid=uuid)
        assert (await destroyed)["Hangup-Cause"] == "USER_BUSY"
        with pytest.raises(CommandError, match=rf"-ERR invalid session id \[{uuid}\]"):
            await c.hangup(uuid=uuid)
        await c.exit()
        park_done = [
            e for e in seen
            if e.name == "CHANNEL_EXECUTE_COMPLETE" and e["Application"] == "park"
        ]  # fmt: skip
        assert park_done[0]["Application-Response"] == "FILE PLAYED"  # stale, as captured

    run("orig02_inbound_sendmsg_filter_bgapi_originate", scenario)
