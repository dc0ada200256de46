"""Generic CRUD behaviour: validation, uniqueness, pagination, references, config version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from control.core.digest import digest_hashes
from control.db import make_engine
from tests.api.conftest import Api


def sql(api: Api, query: str, **params: Any) -> list[Any]:
    engine = make_engine(api.db_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(query), params))
    finally:
        engine.dispose()


def tenant(api: Api, domain: str = "t.example.com") -> tuple[str, str]:
    account = api.ok("POST", "/v1/accounts", api.root_key, {"name": domain})["id"]
    key = api.key_for(account)
    api.ok("POST", "/v1/sip_domains", key, {"domain": domain})
    return account, key


def test_validation_errors_are_located_problem_documents(api: Api) -> None:
    _, key = tenant(api)
    response = api.call(
        "POST", "/v1/sip_users", key, {"username": "", "ring_strategy": "loud", "bogus": 1}
    )
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    locs = {tuple(e["loc"]) for e in response.get_json()["errors"]}
    assert {("body", "username"), ("body", "ring_strategy"), ("body", "bogus")} <= locs
    not_json = api.client.post("/v1/sip_users", data="{", headers={"x-api-key": key})
    assert not_json.status_code == 422
    nul = api.call("POST", "/v1/sip_users", key, {"username": "a", "display_name": "x\x00y"})
    assert nul.status_code == 422


def test_uniqueness_conflicts_are_409(api: Api) -> None:
    _, a_key = tenant(api, "a.example.com")
    _, b_key = tenant(api, "b.example.com")
    api.ok("POST", "/v1/sip_users", a_key, {"username": "100"})
    again = api.call("POST", "/v1/sip_users", a_key, {"username": "100"})
    assert again.status_code == 409
    assert again.get_json()["field"] == "username"
    api.ok("POST", "/v1/sip_users", b_key, {"username": "100"})  # per account only
    api.ok("POST", "/v1/dids", a_key, {"e164": "4930123456"})
    clash = api.call("POST", "/v1/dids", b_key, {"e164": "4930123456"})
    assert clash.status_code == 409  # DIDs are unique platform-wide
    taken = api.call("POST", "/v1/sip_domains", b_key, {"domain": "A.EXAMPLE.com"})
    assert taken.status_code == 409


def test_cursor_pagination_walks_every_row_once(api: Api) -> None:
    _, key = tenant(api)
    made = {api.ok("POST", "/v1/extensions", key, {"digits": str(100 + i)})["id"] for i in range(7)}
    seen: list[str] = []
    path = "/v1/extensions?limit=3"
    while True:
        page = api.ok("GET", path, key)
        seen += [row["id"] for row in page["items"]]
        if not page["next_cursor"]:
            break
        path = f"/v1/extensions?limit=3&cursor={page['next_cursor']}"
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == made
    assert api.ok("GET", "/v1/extensions?digits=103", key)["items"][0]["digits"] == "103"
    assert api.call("GET", "/v1/extensions?nope=1", key).status_code == 422


def test_referenced_rows_cannot_be_deleted_and_say_by_whom(api: Api) -> None:
    _, key = tenant(api)
    vm = api.ok("POST", "/v1/voicemail_boxes", key, {"name": "box"})["id"]
    user = api.ok("POST", "/v1/sip_users", key, {"username": "1", "voicemail_id": vm})["id"]
    ext = api.ok(
        "POST", "/v1/extensions", key, {"digits": "9", "dest_kind": "voicemail", "dest_id": vm}
    )["id"]
    refused = api.call("DELETE", f"/v1/voicemail_boxes/{vm}", key)
    assert refused.status_code == 409
    referrers = {(r["resource"], r["id"]) for r in refused.get_json()["referrers"]}
    assert referrers == {("sip_users", user), ("extensions", ext)}
    api.ok("PATCH", f"/v1/sip_users/{user}", key, {"voicemail_id": None})
    assert api.call("DELETE", f"/v1/extensions/{ext}", key).status_code == 204
    assert api.call("DELETE", f"/v1/voicemail_boxes/{vm}", key).status_code == 204


def test_devices_store_digest_hashes_only(api: Api) -> None:
    _, key = tenant(api)
    user = api.ok("POST", "/v1/sip_users", key, {"username": "1001"})["id"]
    created = api.ok(
        "POST", "/v1/sip_devices", key,
        {"user_id": user, "auth_username": "1001", "realm": "t.example.com"},
    )  # fmt: skip
    password = created["password"]
    assert len(password) >= 16
    shown = api.ok("GET", f"/v1/sip_devices/{created['id']}", key)
    assert "password" not in shown or shown["password"] is None
    assert not {"ha1", "ha1b", "ha1_sha256"} & set(shown)
    (row,) = sql(
        api, "SELECT ha1, ha1b, ha1_sha256 FROM sip_devices WHERE id = :id", id=created["id"]
    )
    expected = digest_hashes("1001", "t.example.com", password)
    assert tuple(row) == (expected.ha1, expected.ha1b, expected.ha1_sha256)
    reset = api.ok("POST", f"/v1/sip_devices/{created['id']}/reset_password", key)
    assert reset["password"] != password
    (row,) = sql(api, "SELECT ha1 FROM sip_devices WHERE id = :id", id=created["id"])
    assert row[0] == digest_hashes("1001", "t.example.com", reset["password"]).ha1
    own = api.ok(
        "POST", "/v1/sip_devices", key,
        {"user_id": user, "auth_username": "1002", "realm": "t.example.com", "password": "s3cret-pass"},
    )  # fmt: skip
    assert own["password"] is None  # a password the integrator chose is never echoed


def test_every_write_bumps_the_config_version(api: Api) -> None:
    def version() -> int:
        return int(sql(api, "SELECT value FROM config_meta WHERE key = 'config_version'")[0][0])

    _, key = tenant(api)
    before = version()
    user = api.ok("POST", "/v1/sip_users", key, {"username": "7"})["id"]
    after_create = version()
    api.ok("PATCH", f"/v1/sip_users/{user}", key, {"dnd": 1})
    after_patch = version()
    api.call("DELETE", f"/v1/sip_users/{user}", key)
    assert before < after_create < after_patch < version()
    failed = api.call("POST", "/v1/sip_users", key, {"username": "7", "ring_timeout_sec": -1})
    assert failed.status_code == 422
    assert version() == after_patch + 1  # a refused write changes nothing


def test_schedule_rules_are_checked(api: Api) -> None:
    _, key = tenant(api)
    bad = api.call(
        "POST", "/v1/time_schedules", key,
        {"name": "x", "timezone": "Mars/Base", "rules": [{"kind": "weekly", "start_time": "09:00", "end_time": "17:00"}]},
    )  # fmt: skip
    assert bad.status_code == 422
    bad = api.call(
        "POST", "/v1/time_schedules", key,
        {"name": "x", "rules": [{"kind": "date_range", "start_date": "2026-12-31", "end_date": "2026-12-24", "is_closed": 1}]},
    )  # fmt: skip
    assert bad.status_code == 422
    assert bad.get_json()["errors"][0]["loc"] == ["body", "rules", "0", "end_date"]
    good = api.ok(
        "POST", "/v1/time_schedules", key,
        {"name": "x", "timezone": "America/New_York", "rules": [
            {"kind": "weekly", "dow": 1, "start_time": "22:00", "end_time": "06:00"},
            {"kind": "date", "start_date": "2026-12-25", "is_closed": 1},
        ]},
    )  # fmt: skip
    assert len(good["rules"]) == 2


def test_dest_pairs_must_be_complete(api: Api) -> None:
    _, key = tenant(api)
    half = api.call("POST", "/v1/dids", key, {"e164": "1555", "dest_kind": "user"})
    assert half.status_code == 422
    hang = api.ok("POST", "/v1/dids", key, {"e164": "1556", "dest_kind": "hangup"})
    assert hang["dest_id"] is None
    xform = api.call(
        "POST", "/v1/dids", key, {"e164": "1557", "dest_kind": "hangup", "dest_xform": {"a b": 1}}
    )
    assert xform.status_code == 422
