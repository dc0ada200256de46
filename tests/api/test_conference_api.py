"""Conference control and call recording over the API, against the inbound event socket
stand-in (``tests/esl/fs_inbound.py``): a tenant controls its own rooms and calls only; another
tenant's requests are 404s that never reach FreeSWITCH."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from control.api import create_app
from control.api.bootstrap import bootstrap
from control.db.migrate import upgrade
from control.settings import Settings
from esl.session_store import session_key
from tests.api.conftest import Api
from tests.esl.fs_inbound import ConferenceRooms, InboundFreeSwitch, Member
from tests.harness.redis_server import OwnRedis

UUID = "3f2a9c1e-8b7d-4e6f-a5b4-c3d2e1f0a9b8"


@pytest.fixture
def rooms() -> ConferenceRooms:
    return ConferenceRooms(channels={UUID})


@pytest.fixture
def fs(rooms: ConferenceRooms) -> Iterator[InboundFreeSwitch]:
    with InboundFreeSwitch(rooms).running() as server:
        yield server


@pytest.fixture
def api(tmp_path: Path, own_redis: OwnRedis, fs: InboundFreeSwitch) -> Iterator[Api]:
    db_url = f"sqlite:///{tmp_path / 'config.db'}"
    settings = Settings(
        state_dir=tmp_path / "state", db_url=db_url, redis_port=own_redis.port,
        freeswitch_esl_port=fs.port,
    )  # fmt: skip
    upgrade(db_url)
    account, key = bootstrap(db_url)
    app = create_app(settings)
    app.config["ROW_SECRETS"].store.put(settings.freeswitch_esl_password_ref, "ClueCon")
    yield Api(app, app.test_client(), key, account, db_url)


def tenant(api: Api, name: str, scopes: list[str]) -> tuple[str, str]:
    account = api.ok("POST", "/v1/accounts", api.root_key, {"name": name})["id"]
    return account, api.key_for(account, scopes)


def status(response: Any, code: int) -> dict[str, Any]:
    assert response.status_code == code, response.get_json()
    body: dict[str, Any] = response.get_json()
    if code >= 400:
        assert response.mimetype == "application/problem+json"
    return body


def test_members_listed_muted_and_kicked_by_the_owner_only(
    api: Api, rooms: ConferenceRooms
) -> None:
    acme, acme_key = tenant(api, "acme", ["conferences"])
    _, other_key = tenant(api, "other", ["conferences"])
    conf = api.ok("POST", "/v1/conferences", acme_key, {"name": "standup"})["id"]
    room = f"{acme}-{conf}"
    rooms.rooms[room] = [Member(5, "u-5", "Ann", "1001", moderator=True), Member(6, "u-6", "Bob")]
    base = f"/v1/conferences/{conf}/members"

    listed = api.ok("GET", base, acme_key)["items"]
    assert [(x["memberId"], x["callerName"], x["moderator"], x["muted"]) for x in listed] == [
        (5, "Ann", True, False), (6, "Bob", False, False),
    ]  # fmt: skip
    assert api.ok("POST", f"{base}/6/mute", acme_key)["action"] == "mute"
    assert rooms.rooms[room][1].speak is False
    api.ok("POST", f"{base}/6/unmute", acme_key)
    api.ok("POST", f"{base}/5/kick", acme_key)
    assert [x.id for x in rooms.rooms[room]] == [6]
    status(api.call("POST", f"{base}/99/kick", acme_key), 404)
    status(api.call("POST", f"{base}/6/explode", acme_key), 404)
    status(api.call("POST", f"{base}/-1/mute", acme_key), 404)

    sent = len(rooms.commands)
    for method, path in [("GET", base), ("POST", f"{base}/6/mute"), ("POST", f"{base}/6/kick")]:
        status(api.call(method, path, other_key), 404)
    assert len(rooms.commands) == sent  # FreeSWITCH never heard of it
    assert [x.id for x in rooms.rooms[room]] == [6] and rooms.rooms[room][0].speak
    status(api.call("GET", base, api.key_for(acme, ["voicemail"])), 403)
    assert rooms.commands[0] == f"conference {room} list"


def test_an_empty_room_lists_no_members(api: Api) -> None:
    _, key = tenant(api, "acme", ["conferences"])
    conf = api.ok("POST", "/v1/conferences", key, {"name": "quiet"})["id"]
    assert api.ok("GET", f"/v1/conferences/{conf}/members", key) == {"items": []}


def test_media_engine_down_or_refusing_is_a_503(
    api: Api, fs: InboundFreeSwitch, rooms: ConferenceRooms
) -> None:
    _, key = tenant(api, "acme", ["conferences"])
    conf = api.ok("POST", "/v1/conferences", key, {"name": "standup"})["id"]
    settings = api.app.config["SIPIO_SETTINGS"]
    api.app.config["ROW_SECRETS"].store.put(settings.freeswitch_esl_password_ref, "WrongOne")
    body = status(api.call("GET", f"/v1/conferences/{conf}/members", key), 503)
    assert body["detail"] == "the media engine is unavailable"
    assert "WrongOne" not in json.dumps(body) and "ClueCon" not in json.dumps(body)
    assert fs.auth_failures == 1
    settings.freeswitch_esl_port = 1  # nothing listens there
    body = status(api.call("POST", f"/v1/conferences/{conf}/members/3/kick", key), 503)
    assert body["title"] == "Service Unavailable"


def test_recording_a_live_call_of_the_account(
    api: Api, rooms: ConferenceRooms, own_redis: OwnRedis
) -> None:
    acme, key = tenant(api, "acme", ["media"])
    _, other_key = tenant(api, "other", ["media"])
    client = redis.Redis.from_url(own_redis.url)
    client.hset(session_key(acme, "call-1@pbx"), "context", json.dumps({"uuid": UUID}))
    client.close()
    url = "/v1/calls/call-1@pbx/recording"

    started = api.ok("POST", url, key, {"action": "start"})
    assert started["recording"].startswith(f"{acme}/{UUID}-")
    root = api.app.config["SIPIO_SETTINGS"].recordings_dir
    [path] = rooms.recording[UUID]
    assert path == str(root / started["recording"])
    assert stat.S_IMODE((root / acme).stat().st_mode) == 0o700
    api.ok("POST", url, key, {"action": "stop"})
    assert rooms.recording[UUID] == []

    sent = len(rooms.commands)
    status(api.call("POST", url, other_key, {"action": "start"}), 404)  # not in their account
    status(api.call("POST", url, other_key, {"action": "start", "account_id": acme}), 422)
    status(api.call("POST", url, key, {"action": "pause"}), 422)
    status(api.call("POST", "/v1/calls/nope@pbx/recording", key, {"action": "start"}), 404)
    assert len(rooms.commands) == sent
