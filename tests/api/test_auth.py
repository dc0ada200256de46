"""Credentials: header-only API keys, bearer tokens, revocation, suspended accounts."""

from __future__ import annotations

import time

import jwt

from tests.api.conftest import Api


def test_missing_and_invalid_credentials_are_401(api: Api) -> None:
    response = api.client.get("/v1/whoami")
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert "WWW-Authenticate" in response.headers
    assert api.call("GET", "/v1/whoami", "sk_nope.nope").status_code == 401
    forged = api.root_key[:-4] + "AAAA"
    assert api.call("GET", "/v1/whoami", forged).status_code == 401


def test_keys_in_the_query_string_are_refused(api: Api) -> None:
    response = api.client.get(f"/v1/whoami?api_key={api.root_key}")
    assert response.status_code == 401


def test_whoami_reports_the_credential(api: Api) -> None:
    body = api.ok("GET", "/v1/whoami", api.root_key)
    assert body == {"accountId": api.root_account, "scopes": ["*"], "via": "key"}


def test_bearer_token_carries_a_subset_of_scopes(api: Api) -> None:
    account = api.ok("POST", "/v1/accounts", api.root_key, {"name": "t"})["id"]
    key = api.key_for(account, ["numbers", "users"])
    minted = api.ok("POST", "/v1/tokens", key, {"scopes": ["numbers"], "ttl_sec": 120})
    assert minted["token_type"] == "Bearer" and minted["expires_in"] == 120
    bearer = {"Authorization": f"Bearer {minted['token']}"}
    who = api.client.get("/v1/whoami", headers=bearer).get_json()
    assert who == {"accountId": account, "scopes": ["numbers"], "via": "bearer"}
    assert api.client.get("/v1/dids", headers=bearer).status_code == 200
    assert api.client.get("/v1/sip_users", headers=bearer).status_code == 403
    wider = api.call("POST", "/v1/tokens", key, {"scopes": ["cdr"]})
    assert wider.status_code == 403
    too_long = api.call("POST", "/v1/tokens", key, {"ttl_sec": 86400})
    assert too_long.status_code == 422


def test_tokens_die_with_their_key_and_their_time(api: Api) -> None:
    account = api.ok("POST", "/v1/accounts", api.root_key, {"name": "t"})["id"]
    created = api.ok(
        "POST", "/v1/api_keys", api.root_key, {"name": "k", "scopes": ["*"], "account_id": account}
    )
    token = api.ok("POST", "/v1/tokens", created["key"], {"ttl_sec": 60})["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/v1/whoami", headers=bearer).status_code == 200
    assert api.call("DELETE", f"/v1/api_keys/{created['id']}", api.root_key).status_code == 204
    assert api.client.get("/v1/whoami", headers=bearer).status_code == 401
    assert api.call("GET", "/v1/whoami", created["key"]).status_code == 401
    expired = jwt.encode(
        {"iss": "sipio", "sub": account, "kid": created["id"], "scopes": ["*"],
         "iat": int(time.time()) - 100, "exp": int(time.time()) - 10},
        api.app.config["TOKEN_KEY"], algorithm="HS256",
    )  # fmt: skip
    response = api.client.get("/v1/whoami", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert "expired" in response.get_json()["detail"]
    forged = jwt.encode({"sub": account}, "not-the-key", algorithm="HS256")
    assert (
        api.client.get("/v1/whoami", headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )


def test_suspended_account_keys_stop_working(api: Api) -> None:
    account = api.ok("POST", "/v1/accounts", api.root_key, {"name": "t"})["id"]
    key = api.key_for(account)
    assert api.call("GET", "/v1/whoami", key).status_code == 200
    api.ok("PATCH", f"/v1/accounts/{account}", api.root_key, {"status": "suspended"})
    response = api.call("GET", "/v1/whoami", key)
    assert response.status_code == 403
    assert "suspended" in response.get_json()["detail"]


def test_keys_are_stored_hashed(api: Api) -> None:
    from sqlalchemy import text

    from control.db import make_engine

    engine = make_engine(api.db_url)
    with engine.connect() as connection:
        stored = [
            tuple(r) for r in connection.execute(text("SELECT prefix, key_hash FROM api_keys"))
        ]
    engine.dispose()
    assert stored
    assert all(api.root_key not in "".join(row) for row in stored)
