"""Tenant isolation is a security boundary: proven object by object, on both databases."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

FLOW = {
    "id": "f",
    "name": "main",
    "version": 1,
    "start": "n1",
    "nodes": [
        {"id": "n1", "type": "entry", "position": {"x": 0, "y": 0}, "data": {"kind": "entry"}}
    ],
    "edges": [],
}


def provision_tenant(api: Api, key: str, account_id: str, domain: str) -> dict[str, str]:
    """Users, devices, DIDs, extensions, a flow, a queue, a ring group and a schedule."""
    ids: dict[str, str] = {"account": account_id}

    def make(resource: str, body: dict[str, Any]) -> str:
        return str(api.ok("POST", f"/v1/{resource}", key, body | {"account_id": account_id})["id"])

    ids["domain"] = make("sip_domains", {"domain": domain, "is_primary": 1})
    ids["media"] = make(
        "media_files", {"name": "hold", "kind": "moh", "object_key": f"{domain}/m.wav"}
    )
    ids["vm"] = make("voicemail_boxes", {"name": "main box"})
    ids["user"] = make("sip_users", {"username": "1001", "voicemail_id": ids["vm"]})
    ids["user2"] = make("sip_users", {"username": "1002", "is_agent": 1})
    ids["device"] = make(
        "sip_devices", {"user_id": ids["user"], "auth_username": "1001", "realm": domain}
    )
    ids["schedule"] = make(
        "time_schedules",
        {
            "name": "office",
            "rules": [
                {"kind": "weekly", "dow": d, "start_time": "09:00", "end_time": "17:00"}
                for d in range(1, 6)
            ],
        },
    )
    ids["queue"] = make("queues", {"name": "support", "moh_media_id": ids["media"]})
    ids["membership"] = make(
        "agent_queue_assignments", {"queue_id": ids["queue"], "user_id": ids["user2"]}
    )
    ids["ring_group"] = make(
        "ring_groups", {"name": "desk", "exit_dest_kind": "voicemail", "exit_dest_id": ids["vm"]}
    )
    ids["member"] = make(
        "ring_group_members", {"ring_group_id": ids["ring_group"], "user_id": ids["user"]}
    )
    ids["extension"] = make(
        "extensions", {"digits": "200", "dest_kind": "ring_group", "dest_id": ids["ring_group"]}
    )
    ids["flow"] = str(
        api.ok(
            "POST",
            "/v1/call_flows",
            key,
            {"name": "ivr", "document": FLOW, "account_id": account_id},
        )["id"]
    )
    ids["did"] = make(
        "dids",
        {
            "e164": "4930" + domain[:1].encode().hex(),
            "dest_kind": "flow",
            "dest_id": ids["flow"],
            "schedule_id": ids["schedule"],
            "closed_dest_kind": "voicemail",
            "closed_dest_id": ids["vm"],
        },
    )
    ids["trunk"] = make("sip_trunks", {"name": "carrier", "proxy": "127.0.0.1:5080"})
    ids["limit"] = make(
        "call_limits",
        {
            "scope_kind": "user",
            "scope_id": ids["user"],
            "direction": "out",
            "period_sec": 60,
            "max_count": 10,
        },
    )
    return ids


RESOURCE_OF = {
    "domain": "sip_domains", "media": "media_files", "vm": "voicemail_boxes", "user": "sip_users",
    "device": "sip_devices", "schedule": "time_schedules", "queue": "queues",
    "membership": "agent_queue_assignments", "ring_group": "ring_groups",
    "member": "ring_group_members", "extension": "extensions", "flow": "call_flows",
    "did": "dids", "trunk": "sip_trunks", "limit": "call_limits",
}  # fmt: skip


@pytest.fixture
def tree(api: Api) -> dict[str, Any]:
    """platform -> reseller R1 -> {tenant A, reseller R2 -> tenant B}."""
    root = api.root_key
    r1 = api.ok("POST", "/v1/accounts", root, {"name": "R1", "is_reseller": 1})["id"]
    r1_key = api.key_for(r1)
    a = api.ok("POST", "/v1/accounts", r1_key, {"name": "A", "brand_name": "Acme A"})["id"]
    r2 = api.ok(
        "POST",
        "/v1/accounts",
        r1_key,
        {"name": "R2", "is_reseller": 1, "brand_name": "R2 brand", "language": "de-DE"},
    )["id"]
    r2_key = api.key_for(r2)
    b = api.ok("POST", "/v1/accounts", r2_key, {"name": "B"})["id"]
    a_key, b_key = api.key_for(a), api.key_for(b)
    return {
        "r1": r1, "r2": r2, "a": a, "b": b,
        "r1_key": r1_key, "r2_key": r2_key, "a_key": a_key, "b_key": b_key,
        "A": provision_tenant(api, a_key, a, "a.example.com"),
        "B": provision_tenant(api, b_key, b, "b.example.com"),
    }  # fmt: skip


def test_children_inherit_branding_and_language(api: Api, tree: dict[str, Any]) -> None:
    b = api.ok("GET", f"/v1/accounts/{tree['b']}", tree["r2_key"])
    assert b["language"] is None
    assert b["effective"]["language"] == "de-DE"
    assert b["effective"]["brand_name"] == "R2 brand"
    assert b["effective"]["timezone"] == "UTC"


def test_every_cross_tenant_read_write_and_delete_is_404(api: Api, tree: dict[str, Any]) -> None:
    for owner, intruder in (("B", "a_key"), ("A", "b_key")):
        for name, resource in RESOURCE_OF.items():
            row_id = tree[owner][name]
            path = f"/v1/{resource}/{row_id}"
            assert api.call("GET", path, tree[intruder]).status_code == 404, path
            patch = api.call("PATCH", path, tree[intruder], {"name": "x"})
            assert patch.status_code in (404,) or (
                resource == "call_flows" and patch.status_code == 404
            ), (path, patch.get_json())
            assert api.call("DELETE", path, tree[intruder]).status_code == 404, path
            assert api.call("GET", path, tree[owner.lower() + "_key"]).status_code == 200, path
        body = api.call("GET", f"/v1/accounts/{tree[owner.lower()]}", tree[intruder])
        assert body.status_code == 404


def test_lists_only_show_reachable_rows(api: Api, tree: dict[str, Any]) -> None:
    for resource in ("sip_users", "dids", "queues", "ring_groups", "call_flows"):
        a_rows = api.ok("GET", f"/v1/{resource}?limit=500", tree["a_key"])["items"]
        assert {r["account_id"] for r in a_rows} == {tree["a"]}
        filtered = api.ok("GET", f"/v1/{resource}?account_id={tree['b']}", tree["a_key"])
        assert filtered["items"] == []
    r2_accounts = {r["id"] for r in api.ok("GET", "/v1/accounts", tree["r2_key"])["items"]}
    assert r2_accounts == {tree["r2"], tree["b"]}
    r1_accounts = {r["id"] for r in api.ok("GET", "/v1/accounts", tree["r1_key"])["items"]}
    assert r1_accounts == {tree["r1"], tree["a"], tree["r2"], tree["b"]}


def test_route_targets_and_references_never_cross_tenants(api: Api, tree: dict[str, Any]) -> None:
    A, B, key = tree["A"], tree["B"], tree["a_key"]
    attempts = [
        ("dids", {"e164": "15557770001", "dest_kind": "user", "dest_id": B["user"]}, "dest_id"),
        ("dids", {"e164": "15557770002", "dest_kind": "flow", "dest_id": B["flow"]}, "dest_id"),
        ("extensions", {"digits": "300", "dest_kind": "queue", "dest_id": B["queue"]}, "dest_id"),
        ("extensions", {"digits": "301", "dest_kind": "extension", "dest_id": B["extension"]}, "dest_id"),
        ("sip_users", {"username": "2001", "voicemail_id": B["vm"]}, "voicemail_id"),
        ("sip_users", {"username": "2002", "fwd_always_kind": "user", "fwd_always_id": B["user"]}, "fwd_always_id"),
        ("sip_devices", {"user_id": B["user"], "auth_username": "x1", "realm": "a.example.com"}, "user_id"),
        ("sip_devices", {"user_id": A["user"], "auth_username": "x2", "realm": "b.example.com"}, "realm"),
        ("agent_queue_assignments", {"queue_id": B["queue"], "user_id": A["user"]}, "queue_id"),
        ("ring_group_members", {"ring_group_id": A["ring_group"], "user_id": B["user"]}, "user_id"),
        ("queues", {"name": "q", "timeout_dest_kind": "voicemail", "timeout_dest_id": B["vm"]}, "timeout_dest_id"),
        ("queues", {"name": "q", "schedule_id": B["schedule"]}, "schedule_id"),
        ("ring_groups", {"name": "g", "moh_media_id": B["media"]}, "moh_media_id"),
        ("call_limits", {"scope_kind": "user", "scope_id": B["user"], "direction": "out", "period_sec": 60, "max_count": 1}, "scope_id"),
        ("sip_users", {"username": "2003", "account_id": tree["b"]}, "account_id"),
    ]  # fmt: skip
    for resource, body, field in attempts:
        response = api.call("POST", f"/v1/{resource}", key, body)
        assert response.status_code == 422, (resource, body, response.get_json())
        locs = [e["loc"][-1] for e in response.get_json()["errors"]]
        assert field in locs, (resource, locs)
    patch = api.call(
        "PATCH", f"/v1/dids/{A['did']}", key, {"dest_kind": "user", "dest_id": B["user"]}
    )
    assert patch.status_code == 422
    assert api.ok("GET", f"/v1/dids/{A['did']}", key)["dest_id"] == A["flow"]


def test_resellers_manage_their_subtree_only(api: Api, tree: dict[str, Any]) -> None:
    # R1 reaches B (below R2); R2 does not reach A (R1's direct child).
    assert api.call("GET", f"/v1/sip_users/{tree['B']['user']}", tree["r1_key"]).status_code == 200
    assert api.call("GET", f"/v1/sip_users/{tree['A']['user']}", tree["r2_key"]).status_code == 404
    made = api.call("POST", "/v1/accounts", tree["r2_key"], {"name": "C", "parent_id": tree["a"]})
    assert made.status_code == 422
    # A tenant that is not a reseller cannot own accounts.
    refused = api.call("POST", "/v1/accounts", tree["a_key"], {"name": "sub"})
    assert refused.status_code == 403
    # Nor lift its own ceilings.
    lifted = api.call("PATCH", f"/v1/accounts/{tree['a']}", tree["a_key"], {"max_out": 1000})
    assert lifted.status_code == 403
    assert (
        api.ok("PATCH", f"/v1/accounts/{tree['a']}", tree["r1_key"], {"max_out": 5})["max_out"] == 5
    )


def test_missing_scope_is_403_naming_it(api: Api, tree: dict[str, Any]) -> None:
    numbers_only = api.key_for(tree["a"], ["numbers"])
    response = api.call("GET", "/v1/sip_users", numbers_only)
    assert response.status_code == 403
    assert response.get_json()["required_scope"] == "users"
    assert api.call("GET", "/v1/dids", numbers_only).status_code == 200
    escalate = api.call("POST", "/v1/api_keys", tree["a_key"], {"name": "x", "scopes": ["*"]})
    assert escalate.status_code == 201  # a '*' key may mint '*' for its own account
    narrow = api.key_for(tree["a"], ["keys"])
    beyond = api.call("POST", "/v1/api_keys", narrow, {"name": "x", "scopes": ["users"]})
    assert beyond.status_code == 403


def test_api_keys_of_other_tenants_are_invisible(api: Api, tree: dict[str, Any]) -> None:
    mine = api.ok("GET", "/v1/api_keys", tree["a_key"])["items"]
    assert mine and {k["account_id"] for k in mine} == {tree["a"]}
    assert all("key" not in k and "key_hash" not in k for k in mine)
