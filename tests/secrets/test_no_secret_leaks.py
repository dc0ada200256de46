"""Secrets planted through the running stack's API (gunicorn, SQLite, the default local
store), a call placed through the trunk that holds one, then a search for every planted value
in the config DB, every file of the state directory (logs, settings, the store's own files),
Redis and every API response: zero hits. A generated value may appear once, in the response
that creates it, and nowhere else."""

from __future__ import annotations

import json
from typing import Any

from control.demo import sipp
from control.settings import Settings
from control.stack.ports import free_port
from tests.harness.phones import first_request_line
from tests.harness.provision import Provisioner
from tests.routing.test_calls import proxy, registered, settle
from tests.secrets.leaks import haystacks, leaks

PBX_IP = "127.0.0.3"

PLANTED = {
    "trunk password": "Leak-Trunk-Passw0rd-1",
    "trunk password, patched": "Leak-Trunk-Passw0rd-2",
    "trunk password, rotated": "Leak-Trunk-Passw0rd-3",
    "voicemail pin": "90817263",
    "voicemail pin, rotated": "81726354",
    "conference pin": "72635445",
    "webhook token": "Leak-Bearer-Token-4",
    "refused: bad reference": "Leak-Refused-Token-5",
    "refused: not a pin": "Leak-Not-A-Pin-6",
}


class Recorder(Provisioner):
    """Keeps every response body, as text, for the search."""

    responses: list[str]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, data = super().call(method, path, body)
        self.responses.append(json.dumps(data))
        return status, data


def test_planted_secrets_appear_nowhere(stack: Settings) -> None:
    prov = Recorder(stack)
    prov.responses = []
    tenant = prov.tenant("Leakproof", "leakproof.example.com")
    port = free_port()
    trunk = tenant.make("sip_trunks", {
        "name": "byoc", "proxy": f"{PBX_IP}:{port}", "direction": "outbound",
        "auth_username": "leakproof", "auth_password": PLANTED["trunk password"]})  # fmt: skip
    prov.patch("sip_trunks", trunk["id"], {"auth_password": PLANTED["trunk password, patched"]})
    status, rotated = prov.call("POST", f"/v1/sip_trunks/{trunk['id']}/rotate_secret",
                                {"auth_password": PLANTED["trunk password, rotated"],
                                 "expected_version": 2})  # fmt: skip
    assert status == 200 and rotated["version"] == 3
    box = tenant.make("voicemail_boxes", {"name": "box", "pin": PLANTED["voicemail pin"]})
    status, _ = prov.call("POST", f"/v1/voicemail_boxes/{box['id']}/rotate_secret",
                          {"pin": PLANTED["voicemail pin, rotated"]})  # fmt: skip
    assert status == 200
    tenant.make("conferences", {"name": "room", "pin": PLANTED["conference pin"]})
    queue = tenant.make("queues", {"name": "line"})
    option = tenant.make("in_queue_options", {
        "queue_id": queue["id"], "digit": "1", "action": "webhook",
        "webhook_url": "https://hooks.leakproof.example/q",
        "webhook_token": PLANTED["webhook token"]})  # fmt: skip
    status, _ = prov.call("POST", "/v1/in_queue_options", {
        "queue_id": "q_nope", "digit": "2", "action": "webhook", "account_id": tenant.id,
        "webhook_url": "https://hooks.leakproof.example/q",
        "webhook_token": PLANTED["refused: bad reference"]})  # fmt: skip
    assert status == 422
    status, _ = prov.call("POST", "/v1/conferences", {"name": "x", "account_id": tenant.id,
                                                      "pin": PLANTED["refused: not a pin"]})  # fmt: skip
    assert status == 422
    # A generated token is shown once: that response is kept out of the search.
    status, generated = Provisioner.call(
        prov, "POST", f"/v1/in_queue_options/{option['id']}/rotate_secret", {}
    )
    assert status == 200
    once = {"generated webhook token": generated["webhook_token"]}

    # A call through the trunk whose password is in the store.
    user = tenant.user_with_devices("5001")
    settle(stack)
    pbx = sipp.start(sipp.scenario("uas_answer.xml"), None, local_ip=PBX_IP, local_port=port)
    result = registered(stack, tenant, user).call(proxy(stack), "+15550104242")
    received = pbx.wait()
    assert result.ok, result.output
    assert first_request_line(received.messages).startswith("INVITE sip:15550104242@")

    for path in ("/v1/sip_trunks", f"/v1/sip_trunks/{trunk['id']}",
                 f"/v1/sip_trunks/{trunk['id']}/secret", "/v1/voicemail_boxes",
                 "/v1/conferences", "/v1/in_queue_options", "/v1/openapi.json"):  # fmt: skip
        assert prov.call("GET", path)[0] == 200
    places = haystacks(stack) | {
        "api responses": "\n".join(prov.responses).encode(),
        "sip messages": (result.messages + received.messages).encode(),
    }
    assert "file secrets/kv.json" in places and "file logs/api.log" in places
    assert trunk["auth_secret_ref"].encode() in places["table sip_trunks"]
    assert leaks(PLANTED | once, places) == []
