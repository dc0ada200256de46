"""Voicemail end to end: the FreeSWITCH peer places calls into a controller running the
voicemail feature, with a real config DB (SQLite, migrated), a real Redis and the local
encrypted secret store. The peer's ``record`` writes a real WAV file where it was told to."""

from __future__ import annotations

import asyncio
import json
import stat
import threading
import wave
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import structlog
from sqlalchemy import Engine, insert, select

from control.core.flow import CommandKind
from control.db import make_engine
from control.db import models as m
from control.db.migrate import upgrade
from control.secrets import SecretStore
from control.secrets.local import LocalBackend
from esl.apps import MediaConfig
from esl.controller import Controller, ControllerConfig
from esl.flows import StaticFlowSource
from esl.http_command import HttpPolicy, HttpRunner
from esl.outbound import OutboundServer
from esl.session_store import STREAM, SessionStore
from esl.voicemail import MENU_VAR, VoicemailConfig, VoicemailFeature, VoicemailStore
from tests.esl.harness import new_account, trace
from tests.esl.peer import Caller, CallRecord, FreeSwitchPeer, Reaction, sipio_headers
from tests.harness.redis_server import OwnRedis

PIN = "480913"
BOX = "vm_sales"


def write_wav(path: str, seconds: float, rate: int = 8000) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x01" * int(seconds * rate))


@dataclass
class World:
    account: str
    engine: Engine
    media: Path
    secrets: SecretStore
    redis_url: str
    hook_url: str
    hooks: list[dict[str, Any]]

    def messages(self) -> list[Any]:
        with self.engine.connect() as c:
            t = m.VoicemailMessage
            return list(c.execute(select(t).where(t.account_id == self.account)).all())

    def add_message(self, uuid: str, seconds: float, size: int | None = None) -> str:
        key = f"{self.account}/vm/{uuid}.wav"
        path = self.media / key
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(str(path), seconds)
        message_id = f"vmm_{uuid}"
        with self.engine.begin() as c:
            c.execute(
                insert(m.VoicemailMessage).values(
                    id=message_id, account_id=self.account, box_id=BOX, call_id=f"{uuid}@x",
                    duration_sec=int(seconds), media_key=key,
                    size_bytes=size if size is not None else path.stat().st_size,
                )
            )  # fmt: skip
        return message_id


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"event": self.headers["x-sipio-event"], **json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/vm", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def world(
    tmp_path: Path, own_redis: OwnRedis, hook: tuple[str, list[dict[str, Any]]]
) -> Iterator[World]:
    db_url = f"sqlite:///{tmp_path / 'config.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    account = new_account()
    secrets = SecretStore(LocalBackend(tmp_path / "secrets"), cache_ttl=0)
    ref = f"kv:vm:{BOX}:pin"
    secrets.put(ref, PIN)
    with engine.begin() as c:
        c.execute(insert(m.Account).values(id=account, name="vm test"))
        c.execute(
            insert(m.VoicemailBox).values(
                id=BOX, account_id=account, name="Sales", quota_mb=1, pin_secret_ref=ref,
                notify_email="sales@example.com",
            )
        )  # fmt: skip
    yield World(account, engine, tmp_path / "media", secrets, own_redis.url, *hook)
    engine.dispose()


@asynccontextmanager
async def controller(world: World) -> AsyncIterator[tuple[str, int]]:
    store = SessionStore.from_url(world.redis_url)
    http = HttpRunner(HttpPolicy(allow_private=True))  # the hook receiver is on loopback
    feature = VoicemailFeature(
        VoicemailStore(world.engine),
        VoicemailConfig(max_message_sec=120, notify_url=world.hook_url),
        secrets=lambda: world.secrets,
    )
    config = ControllerConfig(
        node_id="vm-test", linger_sec=1, media=MediaConfig(media_root=str(world.media))
    )
    ctl = Controller(
        store, StaticFlowSource({}), http, config, features={CommandKind.VOICEMAIL: feature}
    )
    server = OutboundServer(ctl.handle, "127.0.0.1", 0)
    await server.start()
    try:
        yield server.host, server.port
    finally:
        await server.stop()
        http.close()
        await store.close()


def place(world: World, caller: Caller, variables: dict[str, Any] | None = None) -> CallRecord:
    async def main() -> CallRecord:
        async with controller(world) as address:
            headers = sipio_headers(world.account, f"voicemail:{BOX}", variables)
            record = await FreeSwitchPeer().call([address], headers, caller)
            await asyncio.sleep(0.1)  # the notification hook runs after the call
            return record

    return asyncio.run(main())


def recorder(seconds: float, *, hangup: bool = False) -> Caller:
    """The caller speaks ``seconds`` after the beep (the peer's FreeSWITCH writes the file)."""

    def react(app: str, arg: str, n: int) -> Reaction | None:
        if app == "record":
            write_wav(arg.split(" ")[0], seconds)
            return Reaction(hangup=hangup)
        return None

    return Caller(react=react)


def stream_events(url: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(url)
    try:
        return [json.loads(f[b"e"]) for _, f in client.xrange(STREAM, "-", "+")]
    finally:
        client.close()


def test_deposit_writes_private_file_row_and_event(world: World) -> None:
    call = place(world, recorder(3.0))
    apps = call.apps
    assert [a for a, _ in apps] == ["answer", "playback", "set", "playback", "record"]
    greeting = apps[1][1]
    assert greeting == (
        f"file_string://{world.media}/system/en-US/vm-greeting.wav"
        f"!{world.media}/system/en-US/vm-instructions.wav"
    )
    path = world.media / world.account / "vm" / f"{call.uuid}.wav"
    assert apps[4][1] == f"{path} 120 200 5"
    assert call.hung_up_by == "controller"

    [row] = world.messages()
    assert row.box_id == BOX and row.call_id == call.call_id
    assert (row.caller_number, row.caller_name) == ("sipp", "sipp")
    assert row.duration_sec == 3 and row.size_bytes == path.stat().st_size > 40_000
    assert row.media_key == f"{world.account}/vm/{call.uuid}.wav" and row.folder == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700

    [event] = [e for e in stream_events(world.redis_url) if e["type"] == "voicemail_message"]
    assert event["call_id"] == call.call_id and event["account_id"] == world.account
    assert event["data"]["message_id"] == row.id
    assert event["data"]["notify_email"] == "sales@example.com"
    assert event["data"]["duration_sec"] == 3
    [posted] = world.hooks
    assert posted["event"] == "voicemail.message" and posted["data"]["message_id"] == row.id


def test_hangup_during_recording_still_leaves_the_message(world: World) -> None:
    call = place(world, recorder(2.5, hangup=True))
    assert call.hung_up_by == "caller"
    assert [a for a, _ in call.apps][-1] == "record"
    [row] = world.messages()
    assert row.duration_sec == 2 and row.call_id == call.call_id  # 2.5 s rounds to even
    assert (world.media / row.media_key).exists()


def test_nothing_recorded_leaves_no_row_and_no_file(world: World) -> None:
    call = place(world, recorder(0.4, hangup=True))
    assert world.messages() == []
    assert not (world.media / world.account / "vm" / f"{call.uuid}.wav").exists()
    assert not [e for e in stream_events(world.redis_url) if e["type"] == "voicemail_message"]


def test_full_mailbox_plays_the_prompt_and_records_nothing(world: World) -> None:
    world.add_message("old1", 1.0, size=1024 * 1024)  # quota_mb = 1
    call = place(world, recorder(3.0))
    assert [a for a, _ in call.apps] == ["answer", "playback"]
    assert call.apps[-1][1] == f"{world.media}/system/en-US/vm-full.wav"
    assert len(world.messages()) == 1
    assert not (world.media / world.account / "vm" / f"{call.uuid}.wav").exists()


def retriever(pin_tries: list[str], keys: list[str]) -> Caller:
    pins, menu = list(pin_tries), list(keys)

    def react(app: str, arg: str, n: int) -> Reaction | None:
        if app == "play_and_get_digits" and "sipio_pin_entry" in arg:
            return Reaction(digits=pins.pop(0) if pins else "")
        if app == "play_and_get_digits" and MENU_VAR in arg:
            return Reaction(digits=menu.pop(0) if menu else "")
        return None

    return Caller(react=react)


def leaks(world: World, call: CallRecord, logs: list[dict[str, Any]], text: str) -> list[str]:
    """Every place the PIN must never reach: log events, the event stream, the session."""
    found = []
    if PIN in json.dumps(logs, default=str):
        found.append("logs")
    if PIN in json.dumps(stream_events(world.redis_url)):
        found.append("sipio:events")
    client = redis.Redis.from_url(world.redis_url)
    try:
        for key in client.keys("*"):
            kind = client.type(key)
            if kind == b"hash" and PIN.encode() in b"".join(client.hgetall(key).values()):
                found.append(key.decode())
    finally:
        client.close()
    if PIN in text:
        found.append("output")
    if any(PIN in c for c in call.commands):
        found.append("commands to FreeSWITCH")
    return found


def test_retrieval_with_the_right_pin_saves_and_deletes(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    first = world.add_message("m1", 2.0)
    second = world.add_message("m2", 2.0)
    third = world.add_message("m3", 2.0)
    with structlog.testing.capture_logs() as logs:
        call = place(
            world, retriever([PIN + "#"], ["1", "2", "7", "#"]), {"voicemail_mode": "retrieve"}
        )
    apps = call.apps
    assert [a for a, _ in apps][:3] == ["answer", "play_and_get_digits", "set"]
    assert apps[2][1] == "sipio_pin_entry="  # the entry does not outlive the check
    assert ("say", "en number pronounced 3") in apps
    menus = [arg for app, arg in apps if app == "play_and_get_digits" and MENU_VAR in arg]
    assert len(menus) == 4  # m1 twice (1 = replay), then m2, m3
    assert f"{world.media}/{world.account}/vm/m1.wav" in menus[0] and "m1.wav" in menus[1]
    assert "m2.wav" in menus[2] and "m3.wav" in menus[3]
    rows = {r.id: r for r in world.messages()}
    assert rows[first].folder == "saved" and rows[first].heard_at
    assert second not in rows and not (world.media / world.account / "vm" / "m2.wav").exists()
    assert rows[third].folder == "new" and rows[third].heard_at  # "#": heard, next
    assert apps[-1][1].endswith("vm-no-more.wav!" + f"{world.media}/system/en-US/goodbye.wav")
    assert call.hung_up_by == "controller"
    assert leaks(world, call, logs, capsys.readouterr().out) == []


def test_three_wrong_pins_hang_up_and_touch_nothing(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.add_message("m1", 2.0)
    with structlog.testing.capture_logs() as logs:
        call = place(
            world, retriever(["1111#", "2222#", "3333#"], ["7"]), {"voicemail_mode": "retrieve"}
        )
    pagd = [arg for app, arg in call.apps if app == "play_and_get_digits"]
    assert len(pagd) == 3 and all("sipio_pin_entry" in a for a in pagd)
    assert "vm-bad-pin.wav" in pagd[1] and "vm-bad-pin.wav" not in pagd[0]
    assert call.apps[-1] == ("playback", f"{world.media}/system/en-US/goodbye.wav")
    assert not any(app == "say" for app, _ in call.apps)
    [row] = world.messages()
    assert row.folder == "new" and row.heard_at is None
    refused = [e for e in logs if e["event"] == "esl.pin.refused"]
    assert [e["attempt"] for e in refused] == [1, 2, 3]
    assert leaks(world, call, logs, capsys.readouterr().out) == []
    for wrong in ("1111", "2222", "3333"):  # the caller's entries are not kept either
        assert wrong not in json.dumps(logs, default=str)
        assert wrong not in json.dumps(stream_events(world.redis_url))


def test_flow_trace_of_a_deposit_names_the_voicemail_node(world: World) -> None:
    call = place(world, recorder(2.0))
    client = redis.Redis.from_url(world.redis_url)
    try:
        events = trace(client, call.call_id)
    finally:
        client.close()
    steps = [e for e in events if e["type"] == "flow_step"]
    assert steps[-1]["data"]["step"] == "end" and steps[-1]["data"]["detail"] == "transfer"
    assert steps[-1]["node_id"] == "voicemail"
    assert events[-1]["type"] == "voicemail_message"  # after the flow's own end
    assert len(world.messages()) == 1


def test_a_message_recorded_before_a_takeover_is_kept_once(world: World) -> None:
    """The next controller re-runs the command: a finished file of this channel is the
    message (no second greeting or recording), and a row already written is not doubled."""
    uuid = "5d0f2c9e-1111-4c3b-9a7e-2b1c0d9e8f7a"
    path = world.media / world.account / "vm" / f"{uuid}.wav"
    path.parent.mkdir(parents=True)
    write_wav(str(path), 4.0)

    async def main() -> CallRecord:
        async with controller(world) as address:
            headers = sipio_headers(world.account, f"voicemail:{BOX}")
            return await FreeSwitchPeer().call([address], headers, recorder(9.0), uuid=uuid)

    first = asyncio.run(main())
    assert [a for a, _ in first.apps] == ["answer"]
    [row] = world.messages()
    assert row.duration_sec == 4 and row.media_key == f"{world.account}/vm/{uuid}.wav"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    asyncio.run(main())
    assert [r.id for r in world.messages()] == [row.id]
    events = [e for e in stream_events(world.redis_url) if e["type"] == "voicemail_message"]
    assert len(events) == 1
