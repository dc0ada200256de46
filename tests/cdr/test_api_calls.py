"""``GET /v1/calls`` (scope ``cdr``) on a real config DB and a real lake: tenancy, keyset
pages, windows, RFC 4180 CSV and validation."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from control.api import create_app
from control.api.bootstrap import bootstrap
from control.cdr.build import new_cdr
from control.cdr.lake import Lake
from control.cdr.tables import CALL_CDR
from control.db.migrate import upgrade
from control.settings import Settings

T0 = 1_790_000_000_000
DAY = 86_400_000


@dataclass
class World:
    client: FlaskClient
    keys: dict[str, str]
    accounts: dict[str, str]
    lake: Lake

    def get(self, key: str, **params: Any) -> Any:
        return self.client.get(
            "/v1/calls", query_string=params, headers={"x-api-key": self.keys[key]}
        )


@pytest.fixture
def world(tmp_path: Path, stack: Settings) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'config.db'}"
    upgrade(url)
    _, root = bootstrap(url)
    settings = Settings(state_dir=tmp_path / "state", db_url=url, redis_port=stack.redis_port)
    client = create_app(settings).test_client()

    def post(path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(path, json=body, headers={"x-api-key": key})
        assert response.status_code == 201, response.get_json()
        return dict(response.get_json())

    reseller = post("/v1/accounts", root, {"name": "Reseller", "is_reseller": 1})["id"]
    child = post("/v1/accounts", root, {"name": "Child", "parent_id": reseller})["id"]
    other = post("/v1/accounts", root, {"name": "Other"})["id"]
    accounts = {"reseller": reseller, "child": child, "other": other}
    keys = {"root": root}
    for name, account in accounts.items():
        keys[name] = post(
            "/v1/api_keys", root, {"name": name, "scopes": ["cdr"], "account_id": account}
        )["key"]
    keys["no_cdr"] = post(
        "/v1/api_keys", root, {"name": "x", "scopes": ["users"], "account_id": reseller}
    )["key"]
    lake = Lake(settings)
    yield World(client, keys, accounts, lake)


def fill(world: World) -> None:
    rows = []
    for n in range(12):
        account = list(world.accounts.values())[n % 3]
        rows.append({**new_cdr(f"call-{n:02d}", T0 + (n // 2) * DAY + n), "account_id": account,
                     "hangup_cause": 'Busy, "really"' if n == 0 else None})  # fmt: skip
    world.lake.ensure()
    world.lake.commit(CALL_CDR, {"s": "1-0"}, rows)


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [row["call_id"] for row in response.get_json()["rows"]]


def test_empty_lake_answers_an_empty_page(world: World) -> None:
    body = world.get("root").get_json()
    assert body == {"ok": True, "count": 0, "rows": [], "next_cursor": None}


def test_rows_are_scoped_to_the_credentials_subtree(world: World) -> None:
    fill(world)
    everything = ids(world.get("root"))
    assert everything == [f"call-{n:02d}" for n in range(12)]  # oldest first
    mine = {world.accounts["reseller"], world.accounts["child"]}
    seen = world.get("reseller").get_json()["rows"]
    assert len(seen) == 8 and {r["account_id"] for r in seen} == mine
    assert {r["account_id"] for r in world.get("child").get_json()["rows"]} == {
        world.accounts["child"]
    }
    assert ids(world.get("child", account_id=world.accounts["other"])) == []  # out of reach
    assert len(ids(world.get("reseller", account_id=world.accounts["child"]))) == 4
    denied = world.get("no_cdr")
    assert denied.status_code == 403 and denied.get_json()["required_scope"] == "cdr"


def test_keyset_pages_cover_the_window_once(world: World) -> None:
    fill(world)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        body = world.get("root", **params).get_json()
        seen += [r["call_id"] for r in body["rows"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert body["count"] == 5
    assert pages == 3 and seen == [f"call-{n:02d}" for n in range(12)]
    window = ids(world.get("root", since=T0 + DAY, until=T0 + 3 * DAY))
    assert window == [f"call-{n:02d}" for n in range(2, 6)]
    assert ids(world.get("root", disposition="answered")) == []
    assert len(ids(world.get("root", disposition="in_progress"))) == 12


def test_csv_is_rfc_4180(world: World) -> None:
    fill(world)
    response = world.get("root", format="csv", limit=3)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert text.endswith("\r\n") and "\r\n" in text and "\n" not in text.replace("\r\n", "")
    assert '"Busy, ""really"""' in text
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["call_id"] for r in rows] == ["call-00", "call-01", "call-02"]
    assert rows[0]["hangup_cause"] == 'Busy, "really"' and rows[1]["end_ts"] == ""
    assert response.headers["X-Next-Cursor"]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 10_001}, {"limit": "x"}, {"since": -1}, {"cursor": "%%%"},
     {"cursor": "bm90LWEtY3Vyc29y"}, {"format": "xml"}, {"direction": "sideways"}, {"colour": "red"}],
)  # fmt: skip
def test_bad_queries_are_422(world: World, params: dict[str, Any]) -> None:
    response = world.get("root", **params)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"][0]["loc"][0] == "query"
