"""Conference rooms: joining through the controller feature (PIN, max_members, recording) with
the outbound peer, and controlling rooms and call recording through the inbound event socket
stand-in (``fs_inbound.py``)."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import structlog
from sqlalchemy import Engine, insert

from control.core.flow import CommandKind
from control.db import make_engine
from control.db import models as m
from control.db.migrate import upgrade
from control.secrets import SecretStore
from control.secrets.local import LocalBackend
from esl.apps import MediaConfig
from esl.conference import (
    ConferenceFeature,
    ConferenceStore,
    ControlError,
    EslTarget,
    MediaControl,
    NotFound,
    parse_members,
)
from esl.controller import Controller, ControllerConfig
from esl.flows import StaticFlowSource
from esl.outbound import OutboundServer
from esl.session_store import STREAM, SessionStore
from tests.esl.fs_inbound import ConferenceRooms, InboundFreeSwitch, Member
from tests.esl.harness import new_account
from tests.esl.peer import Caller, CallRecord, Channel, FreeSwitchPeer, Reaction, sipio_headers
from tests.harness.redis_server import OwnRedis

PIN = "771204"


class RoomsPeer(FreeSwitchPeer):
    """The outbound peer, answering ``api conference …`` over the call's socket from rooms."""

    def __init__(self, rooms: ConferenceRooms) -> None:
        super().__init__()
        self.rooms = rooms

    def _api(self, channel: Channel, command: str) -> str:
        if command.startswith("conference "):
            return self.rooms.api(command)
        return super()._api(channel, command)


@dataclass
class World:
    account: str
    engine: Engine
    root: Path
    secrets: SecretStore
    redis_url: str

    def room(self, conf_id: str, **values: Any) -> None:
        with self.engine.begin() as c:
            c.execute(
                insert(m.Conference).values(
                    id=conf_id, account_id=self.account, name=conf_id, **values
                )
            )


@pytest.fixture
def world(tmp_path: Path, own_redis: OwnRedis) -> Iterator[World]:
    db_url = f"sqlite:///{tmp_path / 'config.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    account = new_account()
    with engine.begin() as c:
        c.execute(insert(m.Account).values(id=account, name="conf test"))
    secrets = SecretStore(LocalBackend(tmp_path / "secrets"), cache_ttl=0)
    yield World(account, engine, tmp_path, secrets, own_redis.url)
    engine.dispose()


@asynccontextmanager
async def controller(world: World) -> AsyncIterator[tuple[str, int]]:
    store = SessionStore.from_url(world.redis_url)
    feature = ConferenceFeature(ConferenceStore(world.engine), secrets=lambda: world.secrets)
    media = MediaConfig(
        media_root=str(world.root / "media"), recordings_root=str(world.root / "recordings")
    )
    config = ControllerConfig(node_id="conf-test", linger_sec=1, media=media)
    ctl = Controller(
        store, StaticFlowSource({}), None, config, features={CommandKind.CONFERENCE: feature}
    )
    server = OutboundServer(ctl.handle, "127.0.0.1", 0)
    await server.start()
    try:
        yield server.host, server.port
    finally:
        await server.stop()
        await store.close()


def join(world: World, conf_id: str, caller: Caller, rooms: ConferenceRooms) -> CallRecord:
    async def main() -> CallRecord:
        async with controller(world) as address:
            headers = sipio_headers(world.account, f"conference:{conf_id}")
            return await RoomsPeer(rooms).call([address], headers, caller)

    return asyncio.run(main())


def caller(pins: list[str] | None = None) -> Caller:
    entries = list(pins or [])

    def react(app: str, arg: str, n: int) -> Reaction | None:
        if app == "play_and_get_digits":
            return Reaction(digits=entries.pop(0) if entries else "")
        if app == "conference":
            return Reaction(delay=0.05, hangup=True)  # talks a little, then hangs up
        return None

    return Caller(react=react)


def test_open_room_is_joined_with_flags_and_recorded(world: World) -> None:
    world.room("conf_open", max_members=5, record=1)
    call = join(world, "conf_open", caller(), ConferenceRooms())
    room = f"{world.account}-conf_open"
    apps = call.apps
    assert [a for a, _ in apps] == ["answer", "multiset", "conference"]
    variables = apps[1][1].split(" ")
    assert variables[0] == "conference_max_members=5"
    recording = Path(variables[1].removeprefix("conference_auto_record="))
    assert (
        recording == world.root / "recordings" / world.account / f"conf_conf_open-{call.uuid}.wav"
    )
    assert stat.S_IMODE(recording.parent.stat().st_mode) == 0o700
    assert apps[2][1] == f"{room}@default"
    assert call.hung_up_by == "caller"


def test_full_room_plays_the_prompt_instead_of_joining(world: World) -> None:
    world.room("conf_small", max_members=2)
    room = f"{world.account}-conf_small"
    rooms = ConferenceRooms({room: [Member(1, "u-1"), Member(2, "u-2")]})
    call = join(world, "conf_small", caller(), rooms)
    assert f"conference {room} get count" in rooms.commands
    assert "conference" not in [a for a, _ in call.apps]
    assert any(arg.endswith("/system/en-US/conf-full.wav") for _, arg in call.apps)


def test_pin_room_right_and_wrong_pin(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    ref = "kv:conf:conf_pin:pin"
    world.secrets.put(ref, PIN)
    world.room("conf_pin", pin_secret_ref=ref)
    with structlog.testing.capture_logs() as logs:
        admitted = join(world, "conf_pin", caller(["1234#", PIN + "#"]), ConferenceRooms())
        refused = join(world, "conf_pin", caller(["1#", "22#", "333#"]), ConferenceRooms())
    assert [a for a, _ in admitted.apps] == [
        "answer", "play_and_get_digits", "set", "play_and_get_digits", "set", "conference",
    ]  # fmt: skip
    assert [a for a, _ in refused.apps].count("play_and_get_digits") == 3
    assert "conference" not in [a for a, _ in refused.apps]
    assert refused.hangup_cause == "CALL_REJECTED" and refused.hung_up_by == "controller"
    client = redis.Redis.from_url(world.redis_url)
    try:
        stream = json.dumps([json.loads(f[b"e"]) for _, f in client.xrange(STREAM, "-", "+")])
    finally:
        client.close()
    for text in (json.dumps(logs, default=str), stream, capsys.readouterr().out):
        assert PIN not in text
    assert not any(PIN in c for c in admitted.commands + refused.commands)


def test_inactive_or_foreign_room_is_an_error(world: World) -> None:
    world.room("conf_off", status="disabled")
    call = join(world, "conf_off", caller(), ConferenceRooms())
    assert "conference" not in [a for a, _ in call.apps]
    other = new_account()  # another tenant's room: same id space, never reachable from here
    with world.engine.begin() as c:
        c.execute(insert(m.Account).values(id=other, name="other"))
        c.execute(insert(m.Conference).values(id="conf_theirs", account_id=other, name="x"))
    call = join(world, "conf_theirs", caller(), ConferenceRooms())
    assert "conference" not in [a for a, _ in call.apps]


# --- control through the inbound socket ---------------------------------------------------------


def test_members_mute_unmute_kick_and_unknowns() -> None:
    room = "acc_a-conf_1"
    rooms = ConferenceRooms(
        {
            room: [
                Member(7, "uuid-7", "Ann", "1001", moderator=True),
                Member(9, "uuid-9", "Bob", "1002"),
            ]
        }
    )
    with InboundFreeSwitch(rooms).running() as fs:
        control = MediaControl(EslTarget(fs.host, fs.port, lambda: "ClueCon"))

        async def scenario() -> None:
            members = await control.members(room)
            assert [(x.id, x.caller_name, x.moderator, x.muted) for x in members] == [
                (7, "Ann", True, False), (9, "Bob", False, False),
            ]  # fmt: skip
            await control.member(room, "mute", 9)
            assert [x.muted for x in await control.members(room)] == [False, True]
            await control.member(room, "unmute", 9)
            await control.member(room, "kick", 7)
            assert [x.id for x in await control.members(room)] == [9]
            with pytest.raises(NotFound):
                await control.member(room, "mute", 42)
            with pytest.raises(NotFound):
                await control.member("acc_b-conf_1", "kick", 9)
            assert await control.members("acc_b-conf_1") == []

        asyncio.run(scenario())
    assert rooms.commands[:2] == [f"conference {room} list", f"conference {room} mute 9"]


def test_recording_on_demand_and_failures() -> None:
    rooms = ConferenceRooms(channels={"0b6c0c53-3b5e-4c1e-9d0e-1e2f3a4b5c6d"})
    uuid = "0b6c0c53-3b5e-4c1e-9d0e-1e2f3a4b5c6d"
    with InboundFreeSwitch(rooms).running() as fs:
        good = MediaControl(EslTarget(fs.host, fs.port, lambda: "ClueCon"))
        wrong = MediaControl(EslTarget(fs.host, fs.port, lambda: "nope"))

        async def scenario() -> None:
            await good.record(uuid, "start", "/rec/acc_a/x.wav")
            assert rooms.recording[uuid] == ["/rec/acc_a/x.wav"]
            await good.record(uuid, "stop")
            assert rooms.recording[uuid] == []
            with pytest.raises(NotFound):
                await good.record("0b6c0c53-dead", "start", "/rec/acc_a/y.wav")
            with pytest.raises(ControlError):
                await wrong.members("acc_a-conf_1")

        asyncio.run(scenario())
    assert fs.auth_failures == 1
    down = MediaControl(EslTarget("127.0.0.1", 1, lambda: "ClueCon", timeout=1.0))
    with pytest.raises(ControlError):
        asyncio.run(down.members("acc_a-conf_1"))


def test_member_lines_as_mod_conference_writes_them() -> None:
    text = (
        "3;sofia/internal/1001@10.0.0.5;5e1c…;Ann Lee;1001;hear|speak|talking|floor|moderator;0;0;0;300\n"
        "4;sofia/internal/1002@10.0.0.5;77aa…;Bob;1002;hear;0;0;0;300\n"
        "garbage\n"
    )
    members = parse_members(text)
    assert [(x.id, x.muted, x.talking, x.moderator) for x in members] == [
        (3, False, True, True), (4, True, False, False),
    ]  # fmt: skip


# --- the inbound stand-in against the captures -------------------------------------------------


async def _exchange(port: int, sent: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    await writer.drain()
    received = await asyncio.wait_for(reader.read(), 5)  # until the stand-in closes
    writer.close()
    return received


def test_stand_in_frames_auth_refusal_and_exit_as_the_captures() -> None:
    """in01 byte for byte (wrong password: refusal, notice, close); in03's opening and closing
    frames (accepted, ``exit``: +OK bye, notice, close)."""
    from tests.esl.transcripts import load

    refused = load("in01_auth_wrong_password")
    accepted = load("in03_auth_api_bgapi")
    with InboundFreeSwitch(ConferenceRooms()).running() as fs:
        got = asyncio.run(_exchange(fs.port, refused.tool_bytes))
        assert got == refused.fs_bytes
        got = asyncio.run(_exchange(fs.port, b"auth ClueCon\n\nexit\n\n"))
    opening = (
        b"Content-Type: auth/request\n\nContent-Type: command/reply\nReply-Text: +OK accepted\n\n"
    )
    assert accepted.fs_bytes.startswith(opening) and got.startswith(opening)
    closing = got[len(opening) :]
    assert accepted.fs_bytes.endswith(closing) and closing.startswith(
        b"Content-Type: command/reply\nReply-Text: +OK bye"
    )
