"""Rate tables through the API: tenant scoped, one line per (direction, prefix), located 422s."""

from __future__ import annotations

from tests.api.conftest import Api

BERLIN = {"name": "Berlin", "prefix": "4930", "per_minute_micros": 12_000,
          "connect_micros": 1_000, "min_sec": 30, "increment_sec": 6}  # fmt: skip


def tenant(api: Api, name: str) -> tuple[str, str]:
    account = api.ok("POST", "/v1/accounts", api.root_key, {"name": name})["id"]
    return account, api.key_for(account, ["cdr"])


def test_rates_crud_in_the_account(api: Api) -> None:
    account, key = tenant(api, "Rated")
    made = api.ok("POST", "/v1/rates", key, BERLIN)
    assert made["id"].startswith("rate_") and made["account_id"] == account
    assert (made["direction"], made["prefix"], made["per_minute_micros"]) == (
        "outbound",
        "4930",
        12_000,
    )
    catch_all = api.ok("POST", "/v1/rates", key, {"per_minute_micros": 300_000})
    assert (catch_all["prefix"], catch_all["increment_sec"], catch_all["min_sec"]) == ("", 1, 0)
    inbound = api.ok("POST", "/v1/rates", key, {**BERLIN, "direction": "inbound"})  # same prefix
    listed = api.ok("GET", "/v1/rates?direction=outbound", key)["items"]
    assert {r["id"] for r in listed} == {made["id"], catch_all["id"]}
    assert (
        api.ok("GET", "/v1/rates?prefix=4930&direction=inbound", key)["items"][0]["id"]
        == inbound["id"]
    )
    patched = api.ok("PATCH", f"/v1/rates/{made['id']}", key, {"per_minute_micros": 9_000})
    assert (patched["per_minute_micros"], patched["min_sec"]) == (9_000, 30)
    assert api.call("DELETE", f"/v1/rates/{inbound['id']}", key).status_code == 204
    assert api.call("GET", f"/v1/rates/{inbound['id']}", key).status_code == 404


def test_one_line_per_direction_and_prefix(api: Api) -> None:
    _, key = tenant(api, "Dup")
    _, other = tenant(api, "Other")
    first = api.ok("POST", "/v1/rates", key, BERLIN)
    again = api.call("POST", "/v1/rates", key, {**BERLIN, "name": "again"})
    assert again.status_code == 409
    assert again.content_type == "application/problem+json"
    api.ok("POST", "/v1/rates", other, BERLIN)  # per account only
    mobile = api.ok("POST", "/v1/rates", key, {**BERLIN, "prefix": "4917"})
    moved = api.call("PATCH", f"/v1/rates/{mobile['id']}", key, {"prefix": "4930"})
    assert moved.status_code == 409
    assert api.ok("GET", f"/v1/rates/{mobile['id']}", key)["prefix"] == "4917"  # unchanged
    assert api.ok("GET", f"/v1/rates/{first['id']}", key)["name"] == "Berlin"


def test_bad_lines_are_located_422s(api: Api) -> None:
    _, key = tenant(api, "Bad")
    bad = {"prefix": "+49", "per_minute_micros": -1, "increment_sec": 0, "direction": "sideways",
           "min_sec": "soon", "surprise": 1}  # fmt: skip
    response = api.call("POST", "/v1/rates", key, bad)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    locs = {tuple(e["loc"]) for e in response.get_json()["errors"]}
    assert {("body", f) for f in ("prefix", "per_minute_micros", "increment_sec", "direction",
                                  "min_sec", "surprise")} <= locs  # fmt: skip
    missing = api.call("POST", "/v1/rates", key, {"prefix": "49"})
    assert ("body", "per_minute_micros") in {tuple(e["loc"]) for e in missing.get_json()["errors"]}
    assert api.ok("GET", "/v1/rates", key)["items"] == []  # nothing stored


def test_tenants_never_see_each_others_rates(api: Api) -> None:
    a, a_key = tenant(api, "A")
    _, b_key = tenant(api, "B")
    line = api.ok("POST", "/v1/rates", a_key, BERLIN)
    assert api.call("GET", f"/v1/rates/{line['id']}", b_key).status_code == 404
    assert api.call("PATCH", f"/v1/rates/{line['id']}", b_key, {"prefix": "1"}).status_code == 404
    assert api.call("DELETE", f"/v1/rates/{line['id']}", b_key).status_code == 404
    assert api.ok("GET", "/v1/rates", b_key)["items"] == []
    assert api.ok("GET", f"/v1/rates?account_id={a}", b_key)["items"] == []
    into = api.call("POST", "/v1/rates", b_key, {**BERLIN, "account_id": a})
    assert into.status_code == 422
    wrong_scope = api.key_for(a, ["users"])
    assert api.call("GET", "/v1/rates", wrong_scope).status_code == 403
    # the reseller above both reaches them
    assert {r["id"] for r in api.ok("GET", "/v1/rates", api.root_key)["items"]} >= {line["id"]}


def test_rates_are_in_the_openapi_document(api: Api) -> None:
    document = api.client.get("/v1/openapi.json").get_json()
    assert "/v1/rates" in document["paths"] and "/v1/rates/{row_id}" in document["paths"]
    body = document["components"]["schemas"]["RateIn"]
    assert body["properties"]["prefix"]["pattern"] == "^[0-9]*$"
    assert "per_minute_micros" in body["required"]
