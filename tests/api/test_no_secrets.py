"""After creation, no password or key appears in any table, log line or API response of a
running stack (gunicorn API, SQLite config DB, logs in the state directory)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from sqlalchemy import inspect, text

from control.api.bootstrap import bootstrap
from control.db import make_engine
from control.settings import Settings


def call(stack: Settings, method: str, path: str, key: str | None, body: Any = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["x-api-key"] = key
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(stack.api_url + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read().decode()
    except urllib.error.HTTPError as exc:
        raw = exc.read().decode()
    return json.loads(raw) if raw else None


def test_no_secret_survives_its_creation_response(stack: Settings) -> None:
    _, root_key = bootstrap(stack.db_url, new_key=True)
    secrets = {root_key}
    account = call(stack, "POST", "/v1/accounts", root_key, {"name": "leak-check"})["id"]
    created_key = call(stack, "POST", "/v1/api_keys", root_key,
                       {"name": "k", "scopes": ["*"], "account_id": account})  # fmt: skip
    key = created_key["key"]
    secrets.add(key)
    call(stack, "POST", "/v1/sip_domains", key, {"domain": "leak.example.com"})
    user = call(stack, "POST", "/v1/sip_users", key, {"username": "1001"})["id"]
    generated = call(
        stack,
        "POST",
        "/v1/sip_devices",
        key,
        {"user_id": user, "auth_username": "1001", "realm": "leak.example.com"},
    )
    secrets.add(generated["password"])
    chosen = "Chosen-Passw0rd-42"
    device = call(stack, "POST", "/v1/sip_devices", key,
                  {"user_id": user, "auth_username": "1002", "realm": "leak.example.com",
                   "password": chosen})  # fmt: skip
    secrets.add(chosen)
    reset = call(stack, "POST", f"/v1/sip_devices/{device['id']}/reset_password", key)
    secrets.add(reset["password"])
    token = call(stack, "POST", "/v1/tokens", key, {"ttl_sec": 300})["token"]
    secrets.add(token)
    # A failed write that carried a secret must not echo it either.
    rejected = call(stack, "POST", "/v1/sip_devices", key,
                    {"user_id": "us_nope", "auth_username": "x", "realm": "leak.example.com",
                     "password": "Rejected-Secret-77"})  # fmt: skip
    secrets.add("Rejected-Secret-77")
    assert rejected["status"] == 422

    responses = [
        call(stack, "GET", path, key)
        for path in ("/v1/sip_devices", f"/v1/sip_devices/{device['id']}", "/v1/api_keys",
                     "/v1/whoami", "/v1/account", "/v1/sip_users", "/v1/openapi.json")
    ] + [rejected]  # fmt: skip
    haystacks = {"api responses": json.dumps(responses)}

    engine = make_engine(stack.db_url)
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).fetchall()
            haystacks[f"table {table}"] = repr(rows)
    engine.dispose()
    for log in stack.log_dir.glob("*.log"):
        haystacks[f"log {log.name}"] = log.read_text(errors="replace")
    haystacks["settings"] = stack.settings_path.read_text()

    assert len(haystacks) > 20
    for secret in secrets:
        for where, text_ in haystacks.items():
            assert secret not in text_, f"a secret leaked into {where}"
