"""Voicemail messages over the API: a tenant lists, reads, hears, fetches and deletes its own
messages; another tenant gets 404 for every one of them, whatever path it tries."""

from __future__ import annotations

import stat
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from control.api import create_app
from control.api.bootstrap import bootstrap
from control.db import make_engine
from control.db import models as m
from control.db.migrate import upgrade
from control.settings import Settings
from tests.api.conftest import Api
from tests.harness.redis_server import OwnRedis


@pytest.fixture
def api(tmp_path: Path, own_redis: OwnRedis) -> Iterator[Api]:
    db_url = f"sqlite:///{tmp_path / 'config.db'}"
    settings = Settings(state_dir=tmp_path / "state", db_url=db_url, redis_port=own_redis.port)
    upgrade(db_url)
    account, key = bootstrap(db_url)
    app = create_app(settings)
    yield Api(app, app.test_client(), key, account, db_url)


def tenant(api: Api, name: str, scopes: list[str] | None = None) -> tuple[str, str]:
    account = api.ok("POST", "/v1/accounts", api.root_key, {"name": name})["id"]
    return account, api.key_for(account, scopes or ["voicemail"])


def deposit(api: Api, account: str, box: str, uuid: str, *, key: str | None = None) -> str:
    """What the controller leaves behind: a WAV in the media store and its row."""
    media_key = key or f"{account}/vm/{uuid}.wav"
    path = api.app.config["SIPIO_SETTINGS"].media_dir / f"{account}/vm/{uuid}.wav"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x02" * 16000)
    path.chmod(0o600)
    message_id = f"vmm_{uuid}"
    engine = make_engine(api.db_url)
    with engine.begin() as c:
        c.execute(
            insert(m.VoicemailMessage).values(
                id=message_id, account_id=account, box_id=box, call_id=f"{uuid}@pbx",
                caller_number="+15551230000", caller_name="Ann", duration_sec=2,
                media_key=media_key, size_bytes=path.stat().st_size,
            )
        )  # fmt: skip
    engine.dispose()
    return message_id


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    return body


def test_own_messages_list_read_hear_fetch_delete(api: Api) -> None:
    account, key = tenant(api, "acme")
    box = api.ok("POST", "/v1/voicemail_boxes", key, {"name": "Sales", "pin": "4811"})["id"]
    first = deposit(api, account, box, "c1")
    second = deposit(api, account, box, "c2")
    base = f"/v1/voicemail_boxes/{box}/messages"

    listed = api.ok("GET", base, key)
    assert [i["id"] for i in listed["items"]] == [first, second]
    item = listed["items"][0]
    assert item["caller_number"] == "+15551230000" and item["folder"] == "new"
    assert item["audio_url"] == f"{base}/{first}/audio"
    assert "media_key" not in item  # the store's layout is not part of the API

    audio = api.call("GET", f"{base}/{first}/audio", key)
    assert audio.status_code == 200 and audio.mimetype == "audio/wav"
    assert audio.headers["Cache-Control"] == "private, no-store"
    path = api.app.config["SIPIO_SETTINGS"].media_dir / f"{account}/vm/c1.wav"
    assert audio.data == path.read_bytes() and audio.data[:4] == b"RIFF"

    heard = api.ok("POST", f"{base}/{first}/heard", key)
    assert heard["heard_at"] and heard["id"] == first
    assert api.ok("POST", f"{base}/{first}/heard", key)["heard_at"] == heard["heard_at"]
    assert api.ok("GET", f"{base}/{first}", key)["heard_at"] == heard["heard_at"]

    assert api.call("DELETE", f"{base}/{second}", key).status_code == 204
    assert not (path.parent / "c2.wav").exists()
    problem(api.call("GET", f"{base}/{second}", key), 404)
    assert [i["id"] for i in api.ok("GET", base, key)["items"]] == [first]
    assert api.ok("GET", f"{base}?folder=saved", key)["items"] == []
    problem(api.call("GET", f"{base}?folder=trash", key), 422)


def test_other_tenants_get_404_everywhere(api: Api) -> None:
    acme, acme_key = tenant(api, "acme")
    _, other_key = tenant(api, "other")
    box = api.ok("POST", "/v1/voicemail_boxes", acme_key, {"name": "Sales"})["id"]
    their_box = api.ok("POST", "/v1/voicemail_boxes", other_key, {"name": "Theirs"})["id"]
    message = deposit(api, acme, box, "c1")
    base = f"/v1/voicemail_boxes/{box}/messages"
    for method, path in [
        ("GET", base), ("GET", f"{base}/{message}"), ("GET", f"{base}/{message}/audio"),
        ("POST", f"{base}/{message}/heard"), ("DELETE", f"{base}/{message}"),
        # the other tenant's own box with acme's message id: still not theirs
        ("GET", f"/v1/voicemail_boxes/{their_box}/messages/{message}"),
        ("GET", f"/v1/voicemail_boxes/{their_box}/messages/{message}/audio"),
        ("DELETE", f"/v1/voicemail_boxes/{their_box}/messages/{message}"),
    ]:  # fmt: skip
        body = problem(api.call(method, path, other_key), 404)
        assert "acme" not in str(body) and "c1.wav" not in str(body)
    assert api.ok("GET", f"/v1/voicemail_boxes/{their_box}/messages", other_key)["items"] == []
    # nothing was touched
    engine = make_engine(api.db_url)
    with engine.connect() as c:
        row = c.execute(select(m.VoicemailMessage).where(m.VoicemailMessage.id == message)).one()
    engine.dispose()
    assert row.heard_at is None
    assert (api.app.config["SIPIO_SETTINGS"].media_dir / f"{acme}/vm/c1.wav").exists()
    # and the owner, a key without the scope, and no key at all
    assert api.call("GET", f"{base}/{message}/audio", acme_key).status_code == 200
    problem(api.call("GET", base, api.key_for(acme, ["queues"])), 403)
    problem(api.client.get(f"{base}/{message}/audio"), 401)


def test_a_stored_key_outside_the_account_never_becomes_a_path(api: Api) -> None:
    account, key = tenant(api, "acme")
    other, _ = tenant(api, "other")
    box = api.ok("POST", "/v1/voicemail_boxes", key, {"name": "Sales"})["id"]
    deposit(api, other, box, "theirs")  # a file in the other account's directory
    forged = deposit(api, account, box, "forged", key=f"{other}/vm/theirs.wav")
    traversal = deposit(api, account, box, "trav", key=f"{account}/vm/../../{other}/vm/theirs.wav")
    base = f"/v1/voicemail_boxes/{box}/messages"
    problem(api.call("GET", f"{base}/{forged}/audio", key), 404)
    problem(api.call("GET", f"{base}/{traversal}/audio", key), 404)


def test_the_media_store_stays_private(api: Api) -> None:
    account, key = tenant(api, "acme")
    box = api.ok("POST", "/v1/voicemail_boxes", key, {"name": "Sales"})["id"]
    deposit(api, account, box, "c1")
    path = api.app.config["SIPIO_SETTINGS"].media_dir / f"{account}/vm/c1.wav"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # the audio is not served from any other path of the API
    for url in (f"/media/{account}/vm/c1.wav", f"/v1/media/{account}/vm/c1.wav"):
        assert api.call("GET", url, key).status_code == 404
