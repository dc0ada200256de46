"""Write-only secrets through the provisioning API: values go to the store, rows keep
references, responses never carry values; rotation, versions, deletes and rollbacks.
Every test runs on SQLite and PostgreSQL, with the local store and with OpenBao."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import inspect, text

from control.api import create_app
from control.api.bootstrap import bootstrap
from control.db import make_engine
from control.db.migrate import upgrade
from control.secrets import SecretNotFound, SecretStore, open_store
from control.settings import SecretsSettings, Settings
from control.stack.ports import free_port
from tests.harness.postgres import PostgresServer
from tests.secrets.bao import BaoServer

_numbers = itertools.count(1)


@dataclass
class Api:
    client: FlaskClient
    key: str
    store: SecretStore  # an independent reader, as a Kamailio worker would have
    db_url: str
    responses: list[str]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = self.client.open(path, method=method, json=body, headers={"x-api-key": self.key})
        self.responses.append(response.get_data(as_text=True))
        return response.status_code, response.get_json()

    def make(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        status, data = self.call("POST", f"/v1/{resource}", body)
        assert status == 201, data
        return dict(data)

    def rows(self) -> str:
        engine = make_engine(self.db_url)
        with engine.connect() as connection:
            dump = [repr(connection.execute(text(f'SELECT * FROM "{t}"')).fetchall())
                    for t in inspect(connection).get_table_names()]  # fmt: skip
        engine.dispose()
        return "\n".join(dump)


@pytest.fixture(params=["sqlite-local", "postgres-vault"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    db, backend = str(request.param).split("-")
    if db == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database(f"secrets_{next(_numbers)}")
    else:
        url = f"sqlite:///{tmp_path / 'config.db'}"
    secrets = SecretsSettings(cache_ttl_sec=0)
    if backend == "vault":
        bao: BaoServer = request.getfixturevalue("bao")
        secrets = SecretsSettings(backend="vault", vault=bao.settings(), cache_ttl_sec=0)
    upgrade(url)
    _, key = bootstrap(url)
    settings = Settings(state_dir=tmp_path / "state", db_url=url,
                        redis_port=free_port(udp=False), secrets=secrets)  # fmt: skip
    yield Api(create_app(settings).test_client(), key, open_store(settings), url, [])


def test_secrets_are_stored_and_only_references_come_back(api: Api) -> None:
    trunk = api.make("sip_trunks", {"name": "carrier", "auth_username": "acct",
                                    "auth_password": "Trunk-Passw0rd-1"})  # fmt: skip
    box = api.make("voicemail_boxes", {"name": "sales", "pin": "246810"})
    room = api.make("conferences", {"name": "standup", "pin": "135790"})
    queue = api.make("queues", {"name": "support"})
    option = api.make("in_queue_options", {"queue_id": queue["id"], "digit": "1",
                                           "action": "webhook", "webhook_url": "https://hooks.example/cb",
                                           "webhook_token": "Bearer-Token-abc123"})  # fmt: skip
    assert trunk["auth_secret_ref"] == f"kv:trunk:{trunk['id']}:auth_password"
    assert box["pin_secret_ref"] == f"kv:vm:{box['id']}:pin"
    assert room["pin_secret_ref"] == f"kv:conf:{room['id']}:pin"
    assert option["webhook_secret_ref"] == f"kv:qopt:{option['id']}:webhook_token"
    assert api.store.resolve(trunk["auth_secret_ref"]) == "Trunk-Passw0rd-1"
    assert api.store.matches(box["pin_secret_ref"], "246810")
    assert api.store.resolve(room["pin_secret_ref"]) == "135790"
    assert api.store.resolve(option["webhook_secret_ref"]) == "Bearer-Token-abc123"
    for path in ("/v1/sip_trunks", f"/v1/voicemail_boxes/{box['id']}", "/v1/conferences",
                 "/v1/in_queue_options", "/v1/openapi.json"):  # fmt: skip
        assert api.call("GET", path)[0] == 200
    # A row without a secret has no reference.
    assert api.make("conferences", {"name": "open"})["pin_secret_ref"] is None
    everything = "\n".join(api.responses) + api.rows()
    for value in ("Trunk-Passw0rd-1", "246810", "135790", "Bearer-Token-abc123"):
        assert value not in everything


def test_patch_writes_a_new_version_and_null_removes_the_secret(api: Api) -> None:
    box = api.make("voicemail_boxes", {"name": "ops", "pin": "1111"})
    ref = box["pin_secret_ref"]
    status, patched = api.call("PATCH", f"/v1/voicemail_boxes/{box['id']}", {"pin": "2222"})
    assert status == 200 and patched["pin_secret_ref"] == ref
    assert api.store.resolve(ref) == "2222"
    assert api.call("GET", f"/v1/voicemail_boxes/{box['id']}/secret")[1] == {
        "ref": ref, "version": 2, "versions": [1, 2]}  # fmt: skip
    status, renamed = api.call("PATCH", f"/v1/voicemail_boxes/{box['id']}", {"name": "ops2"})
    assert renamed["pin_secret_ref"] == ref and api.store.resolve(ref) == "2222"
    status, cleared = api.call("PATCH", f"/v1/voicemail_boxes/{box['id']}", {"pin": None})
    assert status == 200 and cleared["pin_secret_ref"] is None
    with pytest.raises(SecretNotFound):
        api.store.resolve(ref)
    assert api.call("GET", f"/v1/voicemail_boxes/{box['id']}/secret")[0] == 404
    # And a PIN can come back later, under the same reference.
    status, again = api.call("PATCH", f"/v1/voicemail_boxes/{box['id']}", {"pin": "3333"})
    assert again["pin_secret_ref"] == ref and api.store.resolve(ref) == "3333"


def test_rotation_with_check_and_set_and_generated_values(api: Api) -> None:
    trunk = api.make("sip_trunks", {"name": "t", "auth_password": "Rotate-Me-1"})
    path = f"/v1/sip_trunks/{trunk['id']}/rotate_secret"
    status, rotated = api.call(
        "POST", path, {"auth_password": "Rotate-Me-2", "expected_version": 1}
    )
    assert status == 200
    assert rotated == {"id": trunk["id"], "auth_secret_ref": trunk["auth_secret_ref"], "version": 2}
    status, stale = api.call("POST", path, {"auth_password": "Rotate-Me-3", "expected_version": 1})
    assert status == 409 and stale["field"] == "expected_version"
    assert api.store.resolve(trunk["auth_secret_ref"]) == "Rotate-Me-2"
    assert api.store.read(trunk["auth_secret_ref"], version=1).value == "Rotate-Me-1"
    status, missing = api.call("POST", path, {})
    assert status == 422 and missing["errors"][0]["loc"] == ["body", "auth_password"]
    # A PIN or token rotated without a value is generated and shown exactly once.
    room = api.make("conferences", {"name": "r"})
    status, generated = api.call("POST", f"/v1/conferences/{room['id']}/rotate_secret",
                                 {"expected_version": 0})  # fmt: skip
    assert status == 200 and len(generated["pin"]) == 6 and generated["pin"].isdigit()
    assert api.store.matches(generated["pin_secret_ref"], generated["pin"])
    queue = api.make("queues", {"name": "q"})
    option = api.make("in_queue_options", {"queue_id": queue["id"], "digit": "2",
                                           "action": "hangup"})  # fmt: skip
    status, token = api.call("POST", f"/v1/in_queue_options/{option['id']}/rotate_secret", {})
    assert status == 200 and len(token["webhook_token"]) >= 32
    read = api.call("GET", f"/v1/in_queue_options/{option['id']}")[1]
    assert read["webhook_secret_ref"] == token["webhook_secret_ref"]
    assert token["webhook_token"] not in json.dumps(read)
    # Another tenant's row is out of reach, like any other id.
    assert api.call("POST", "/v1/conferences/conf_nope/rotate_secret", {})[0] == 404


def test_deleting_rows_deletes_their_secrets_cascades_included(api: Api) -> None:
    trunk = api.make("sip_trunks", {"name": "gone", "auth_password": "Delete-Me-1"})
    assert api.call("DELETE", f"/v1/sip_trunks/{trunk['id']}")[0] == 204
    with pytest.raises(SecretNotFound):
        api.store.resolve(trunk["auth_secret_ref"])
    # Deleting a queue deletes its options (ON DELETE CASCADE), and so their tokens.
    queue = api.make("queues", {"name": "q"})
    option = api.make("in_queue_options", {"queue_id": queue["id"], "digit": "3", "action": "webhook",
                                           "webhook_url": "https://h.example/x",
                                           "webhook_token": "Cascade-Token-1"})  # fmt: skip
    assert api.call("DELETE", f"/v1/queues/{queue['id']}")[0] == 204
    with pytest.raises(SecretNotFound):
        api.store.resolve(option["webhook_secret_ref"])
    # Deleting an account deletes every secret of its rows.
    child = api.make("accounts", {"name": "leaving"})
    box = api.make("voicemail_boxes", {"name": "b", "pin": "5555", "account_id": child["id"]})
    assert api.call("DELETE", f"/v1/accounts/{child['id']}")[0] == 204
    with pytest.raises(SecretNotFound):
        api.store.resolve(box["pin_secret_ref"])
    # A delete refused while the row is referenced keeps the secret.
    kept = api.make("sip_trunks", {"name": "kept", "auth_password": "Keep-Me-1"})
    api.make("forward_targets", {"number": "4930123", "trunk_id": kept["id"]})
    assert api.call("DELETE", f"/v1/sip_trunks/{kept['id']}")[0] == 409
    assert api.store.resolve(kept["auth_secret_ref"]) == "Keep-Me-1"


def test_a_write_that_fails_after_the_store_leaves_no_secret_behind(api: Api) -> None:
    """The second option on the same digit violates a unique constraint at flush, after its
    token was written: the rollback deletes the token again."""
    queue = api.make("queues", {"name": "dup"})
    body = {"queue_id": queue["id"], "digit": "4", "action": "webhook",
            "webhook_url": "https://h.example/y"}  # fmt: skip
    api.make("in_queue_options", body)
    before = _qopt_refs(api)
    status, problem = api.call(
        "POST", "/v1/in_queue_options", body | {"webhook_token": "Orphan-Token-1"}
    )
    assert status == 409, problem
    assert "Orphan-Token-1" not in json.dumps(problem)
    assert _qopt_refs(api) == before


def _qopt_refs(api: Api) -> set[str]:
    backend = api.store.backend
    if hasattr(backend, "refs"):
        return {r for r in backend.refs() if r.startswith("kv:qopt:")}
    listed = backend._hvac().secrets.kv.v2.list_secrets(  # type: ignore[attr-defined]
        path="sipio/qopt", mount_point="secret")  # fmt: skip
    return {f"kv:qopt:{k.rstrip('/')}" for k in listed["data"]["keys"]}


def test_invalid_secrets_are_rejected_without_echo(api: Api) -> None:
    for resource, body in (("voicemail_boxes", {"name": "x", "pin": "12ab-Secret"}),
                           ("sip_trunks", {"name": "x", "auth_password": "bad\x01Secret"}),
                           ("conferences", {"name": "x", "pin_secret_ref": "kv:vm:1:pin"})):  # fmt: skip
        status, problem = api.call("POST", f"/v1/{resource}", body)
        assert status == 422
        assert "Secret" not in json.dumps(problem["errors"]).replace("secret_ref", "")
