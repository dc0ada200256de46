"""Media nodes are probed with OPTIONS: a dead FreeSWITCH is taken out and calls that need
media fail fast with 503 instead of hanging."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.kamailio import KamailioRpc
from control.settings import Settings
from control.stack import supervisor
from control.stack.ports import free_port
from tests.conftest import free_settings
from tests.harness.phones import trunk_call
from tests.harness.provision import Provisioner


@pytest.fixture(scope="module")
def dead_media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = free_settings(
        Path(tmp_path_factory.mktemp("probe")),
        media_nodes=[f"sip:127.0.0.1:{free_port()}"],  # nothing listens there
        media_ping_interval=1,
        sip_transaction_timeout_ms=1500,
    )
    supervisor.up(settings)
    try:
        yield settings
    finally:
        supervisor.down(settings.state_dir)


def destination_flags(settings: Settings) -> str:
    listing = KamailioRpc(settings.kamailio_rpc_socket).call("dispatcher.list")
    text = json.dumps(listing)
    found = text.split('"FLAGS": "')
    return found[1].split('"')[0] if len(found) > 1 else text


def test_dead_node_is_marked_inactive_and_calls_get_503(dead_media: Settings) -> None:
    deadline = time.monotonic() + 10
    flags = destination_flags(dead_media)
    while "I" not in flags and time.monotonic() < deadline:
        time.sleep(0.5)
        flags = destination_flags(dead_media)
    assert "I" in flags, flags  # Inactive (and Probing)

    prov = Provisioner(dead_media)
    platform = prov.call("GET", "/v1/whoami")[1]["accountId"]
    prov.make("sip_trunks", {"name": "carrier", "inbound_ips": ["127.0.0.2/32"],
                             "direction": "inbound", "account_id": platform})  # fmt: skip
    tenant = prov.tenant("Probe", "probe.example.com")
    box = tenant.make("voicemail_boxes", {"name": "main"})
    tenant.make("dids", {"e164": "4930777001", "dest_kind": "voicemail", "dest_id": box["id"]})
    time.sleep(0.6)
    started = time.monotonic()
    result = trunk_call(f"127.0.0.1:{dead_media.sip_port}", "127.0.0.2", "4917000", "4930777001",
                        "carrier.example", timeout=10)  # fmt: skip
    assert not result.ok
    assert "SIP/2.0 503 Service Unavailable" in result.output + result.messages
    assert time.monotonic() - started < 5  # fails fast
