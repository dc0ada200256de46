"""OpenBao stops in the middle of things: cached values keep serving until their TTL, then a
clear and fast error; the API answers 503 naming the secret store; a restart heals."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.api import create_app
from control.api.bootstrap import bootstrap
from control.db.migrate import upgrade
from control.secrets import SecretStore, SecretStoreUnavailable, secret_ref
from control.secrets.vault import VaultBackend
from control.settings import SecretsSettings, Settings
from control.stack.ports import free_port
from tests.secrets.bao import BaoServer

_names = itertools.count(1)


@pytest.fixture
def own_bao(tmp_path: Path) -> Iterator[BaoServer]:
    """A server of this test alone: it is stopped and restarted."""
    server = BaoServer(tmp_path / f"bao{next(_names)}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_cached_values_outlive_an_outage_until_their_ttl(own_bao: BaoServer) -> None:
    ref = secret_ref("trunk", "tr_01outage", "auth_password")
    store = SecretStore(VaultBackend(own_bao.settings()), cache_ttl=2.0, retry_after=0.5)
    store.put(ref, "carrier-Passw0rd")
    assert store.resolve(ref) == "carrier-Passw0rd"
    cached_at = time.monotonic()
    own_bao.stop()

    while time.monotonic() - cached_at < 1.5:  # inside the TTL: served from the cache
        assert store.resolve(ref) == "carrier-Passw0rd"
        time.sleep(0.2)
    time.sleep(max(0.0, 2.1 - (time.monotonic() - cached_at)))

    started = time.monotonic()
    with pytest.raises(SecretStoreUnavailable) as failure:
        store.resolve(ref)
    assert time.monotonic() - started < 1.5  # the request timeout bounds the wait
    assert "OpenBao/Vault" in str(failure.value) and own_bao.url in str(failure.value)
    assert "carrier-Passw0rd" not in str(failure.value)
    started = time.monotonic()
    with pytest.raises(SecretStoreUnavailable):  # within retry_after: no second attempt
        store.resolve(ref)
    assert time.monotonic() - started < 0.05

    own_bao.start()  # dev mode: memory is empty again, the same root token works
    time.sleep(0.5)  # retry_after
    store.put(ref, "after-restart-Passw0rd")
    assert store.resolve(ref) == "after-restart-Passw0rd"


def test_revalidated_values_are_asked_again_and_still_serve_in_an_outage(
    own_bao: BaoServer,
) -> None:
    """What a Kamailio worker does when the config version moves (a password was rotated
    through the API): ask again, but a Vault outage then must not fail a call it could serve."""
    ref = secret_ref("trunk", "tr_01recheck", "auth_password")
    reader = SecretStore(VaultBackend(own_bao.settings()), cache_ttl=30.0, retry_after=0.5)
    writer = SecretStore(VaultBackend(own_bao.settings()), cache_ttl=0)
    writer.put(ref, "first-Passw0rd")
    assert reader.resolve(ref) == "first-Passw0rd"
    writer.put(ref, "second-Passw0rd")
    assert reader.resolve(ref) == "first-Passw0rd"  # cached: the store is not asked
    reader.revalidate()
    assert reader.resolve(ref) == "second-Passw0rd"

    reader.revalidate()
    own_bao.stop()
    started = time.monotonic()
    assert reader.resolve(ref) == "second-Passw0rd"  # asked, unavailable: the cached value
    assert time.monotonic() - started < 1.5  # one request timeout at most
    assert reader.resolve(ref) == "second-Passw0rd"
    reader.forget(ref)
    with pytest.raises(SecretStoreUnavailable):
        reader.resolve(ref)


def test_api_answers_503_naming_the_store_and_reads_keep_working(
    own_bao: BaoServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'config.db'}"
    upgrade(url)
    _, key = bootstrap(url)
    secrets = SecretsSettings(backend="vault", vault=own_bao.settings(), cache_ttl_sec=1)
    settings = Settings(state_dir=tmp_path / "state", db_url=url, redis_port=free_port(udp=False),
                        secrets=secrets)  # fmt: skip
    client = create_app(settings).test_client()
    headers = {"x-api-key": key}
    trunk = client.post("/v1/sip_trunks", headers=headers,
                        json={"name": "up", "auth_password": "Before-Outage-1"})  # fmt: skip
    assert trunk.status_code == 201
    own_bao.stop()

    started = time.monotonic()
    refused = client.post("/v1/voicemail_boxes", headers=headers,
                          json={"name": "vm", "pin": "918273"})  # fmt: skip
    assert time.monotonic() - started < 3
    assert refused.status_code == 503
    assert refused.mimetype == "application/problem+json"
    problem = refused.get_json()
    assert problem["secret_store"] == "vault"
    assert "secret store (OpenBao/Vault) is unavailable" in problem["detail"]
    assert "Traceback" not in refused.get_data(as_text=True)
    assert "918273" not in refused.get_data(as_text=True)
    # Nothing was committed: the box does not exist.
    assert client.get("/v1/voicemail_boxes", headers=headers).get_json()["items"] == []
    rotated = client.post(f"/v1/sip_trunks/{trunk.get_json()['id']}/rotate_secret",
                          headers=headers, json={"auth_password": "During-Outage-2"})  # fmt: skip
    assert rotated.status_code == 503
    # Rows and references never need the store.
    listed = client.get("/v1/sip_trunks", headers=headers)
    assert listed.status_code == 200
    assert json.dumps(listed.get_json()).count("kv:trunk:") == 1

    own_bao.start()
    time.sleep(1.1)  # the API's retry_after
    again = client.post(
        "/v1/voicemail_boxes", headers=headers, json={"name": "vm", "pin": "918273"}
    )
    assert again.status_code == 201, again.get_json()
