"""Call flow versions through the API: drafts editable, published versions immutable."""

from __future__ import annotations

import copy
from typing import Any

from tests.api.conftest import Api

DOC: dict[str, Any] = {
    "id": "main",
    "name": "main",
    "version": 1,
    "start": "entry",
    "nodes": [
        {"id": "entry", "type": "entry", "position": {"x": 0, "y": 0},
         "data": {"kind": "entry", "trigger": "inbound"}},
        {"id": "bye", "type": "hangup", "position": {"x": 0, "y": 100}, "data": {"kind": "hangup"}},
    ],
    "edges": [{"id": "e1", "source": "entry", "target": "bye"}],
}  # fmt: skip


def test_publish_freezes_a_version_and_the_next_save_opens_another(api: Api) -> None:
    account = api.ok("POST", "/v1/accounts", api.root_key, {"name": "t"})["id"]
    key = api.key_for(account, ["flows", "numbers"])
    flow = api.ok("POST", "/v1/call_flows", key, {"name": "ivr", "document": DOC})
    assert (flow["draft_version"], flow["published_version"]) == (1, None)
    published = api.ok("POST", f"/v1/call_flows/{flow['id']}/publish", key)
    assert published["published_version"] == 1
    assert api.call("POST", f"/v1/call_flows/{flow['id']}/publish", key).status_code == 409

    changed = copy.deepcopy(DOC)
    changed["nodes"][1]["position"] = {"x": 50, "y": 50}
    draft = api.ok("PUT", f"/v1/call_flows/{flow['id']}/draft", key, {"document": changed})
    assert (draft["version"], draft["status"]) == (2, "draft")
    v1 = api.ok("GET", f"/v1/call_flows/{flow['id']}/versions/1", key)
    assert v1["status"] == "published"
    assert v1["document"] == DOC  # untouched by the later save
    again = api.ok("PUT", f"/v1/call_flows/{flow['id']}/draft", key, {"document": DOC})
    assert again["version"] == 2  # the open draft is edited in place
    versions = api.ok("GET", f"/v1/call_flows/{flow['id']}/versions", key)["items"]
    assert [(v["version"], v["status"]) for v in versions] == [(1, "published"), (2, "draft")]
    current = api.ok("GET", f"/v1/call_flows/{flow['id']}", key)
    assert (current["published_version"], current["draft_version"]) == (1, 2)


def test_invalid_documents_are_refused_with_locations(api: Api) -> None:
    account = api.ok("POST", "/v1/accounts", api.root_key, {"name": "t"})["id"]
    key = api.key_for(account, ["flows"])
    bad = api.call("POST", "/v1/call_flows", key, {"name": "x", "document": {"nodes": "no"}})
    assert bad.status_code == 422
    locs = [e["loc"] for e in bad.get_json()["errors"]]
    assert ["body", "document", "nodes"] in locs


def test_a_flow_in_use_cannot_be_deleted(api: Api) -> None:
    account = api.ok("POST", "/v1/accounts", api.root_key, {"name": "t"})["id"]
    key = api.key_for(account, ["flows", "numbers"])
    flow = api.ok("POST", "/v1/call_flows", key, {"name": "ivr", "document": DOC})["id"]
    did = api.ok("POST", "/v1/dids", key, {"e164": "3312345", "dest_kind": "flow", "dest_id": flow})
    refused = api.call("DELETE", f"/v1/call_flows/{flow}", key)
    assert refused.status_code == 409
    assert refused.get_json()["referrers"] == [
        {"resource": "dids", "id": did["id"], "field": "dest_id"}
    ]


def test_publish_refuses_invalid_flows_with_located_errors(api: Api) -> None:
    a = api.ok("POST", "/v1/accounts", api.root_key, {"name": "a"})["id"]
    b = api.ok("POST", "/v1/accounts", api.root_key, {"name": "b"})["id"]
    a_key, b_key = api.key_for(a), api.key_for(b)
    foreign_box = api.ok("POST", "/v1/voicemail_boxes", b_key, {"name": "b box"})["id"]
    doc = copy.deepcopy(DOC)
    doc["nodes"].append(
        {
            "id": "vm",
            "type": "voicemail",
            "position": {"x": 0, "y": 0},
            "data": {"kind": "voicemail", "mailboxId": foreign_box},
        }
    )
    doc["nodes"].append({"id": "odd", "type": "teleport", "position": {"x": 0, "y": 0},
                         "data": {"kind": "teleport"}})  # fmt: skip
    doc["edges"] = [{"id": "e1", "source": "entry", "target": "vm"}]
    flow = api.ok("POST", "/v1/call_flows", a_key, {"name": "bad", "document": doc})
    draft = api.ok("GET", f"/v1/call_flows/{flow['id']}/versions/1", a_key)
    assert draft["issues"]  # drafts may be saved incomplete, and say what blocks a publish
    refused = api.call("POST", f"/v1/call_flows/{flow['id']}/publish", a_key)
    assert refused.status_code == 422
    locs = [e["loc"] for e in refused.get_json()["errors"]]
    assert ["body", "document", "nodes", "3", "data", "kind"] in locs

    del doc["nodes"][3]
    api.ok("PUT", f"/v1/call_flows/{flow['id']}/draft", a_key, {"document": doc})
    refused = api.call("POST", f"/v1/call_flows/{flow['id']}/publish", a_key)
    assert refused.status_code == 422  # the mailbox belongs to another tenant
    errors = refused.get_json()["errors"]
    assert errors[0]["loc"] == ["body", "document", "nodes", "2", "data", "mailboxId"]
    assert "no voicemail box" in errors[0]["msg"]


def test_objects_used_by_a_published_flow_cannot_be_deleted(api: Api) -> None:
    account = api.ok("POST", "/v1/accounts", api.root_key, {"name": "t"})["id"]
    key = api.key_for(account)
    box = api.ok("POST", "/v1/voicemail_boxes", key, {"name": "box"})["id"]
    doc = copy.deepcopy(DOC)
    doc["nodes"][1] = {"id": "bye", "type": "voicemail", "position": {"x": 0, "y": 0},
                       "data": {"kind": "voicemail", "mailboxId": box}}  # fmt: skip
    flow = api.ok("POST", "/v1/call_flows", key, {"name": "vm", "document": doc})["id"]
    api.ok("POST", f"/v1/call_flows/{flow}/publish", key)
    refused = api.call("DELETE", f"/v1/voicemail_boxes/{box}", key)
    assert refused.status_code == 409
    assert refused.get_json()["referrers"] == [
        {"resource": "call_flows", "id": flow, "field": "versions[1].document"}
    ]
