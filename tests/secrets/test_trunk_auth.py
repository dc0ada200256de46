"""Outbound calls through a trunk whose carrier wants digest credentials: Kamailio answers the
challenge with the trunk's username and the password from the secret store (set through the
API), once; a carrier that refuses them ends the call cleanly; the password shows up nowhere."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest
import redis

from control.core.routing.model import Trunk
from control.demo import sipp
from control.secrets import SecretStoreUnavailable
from control.settings import Settings
from control.stack.ports import free_port, in_use
from kemi.trunk_auth import Answer, Refusal, answer, ha1, parse_challenge
from tests.harness.phones import header
from tests.harness.provision import Provisioner, Tenant
from tests.routing.test_calls import proxy, registered, settle
from tests.secrets.leaks import haystacks, leaks

CARRIER_IP = "127.0.0.3"
SCENARIOS = Path(__file__).with_name("scenarios")
PASSWORDS = {
    "trunk password": "Carrier-Digest-Passw0rd-1",
    "trunk password (proxy)": "Carrier-Digest-Passw0rd-2",
    "wrong trunk password": "Carrier-Digest-Wr0ng-3",
    "carrier's expected password": "Carrier-Digest-Expected-4",
    "password before rotation": "Carrier-Digest-Before-5",
    "password after rotation": "Carrier-Digest-After-6",
}


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def messages(trace: str) -> list[list[str]]:
    """A SIPp message trace split into messages (lists of lines, start line first)."""
    start = re.compile(r"^(SIP/2\.0 \d{3} |[A-Z]+ sip:\S+ SIP/2\.0$)")
    found: list[list[str]] = []
    for line in trace.splitlines():
        if start.match(line):
            found.append([line])
        elif found and line.strip():
            found[-1].append(line)
    return found


def requests(trace: str, method: str) -> list[dict[str, str]]:
    """Each request of ``method``: its start line under "" and its headers, lower-cased names."""
    result = []
    for message in messages(trace):
        if message[0].startswith(f"{method} "):
            fields = {"": message[0]}
            for line in message[1:]:
                name, sep, value = line.partition(":")
                if sep and name and " " not in name:
                    fields.setdefault(name.strip().lower(), value.strip())
            result.append(fields)
    return result


def digest_params(value: str) -> dict[str, str]:
    scheme, _, rest = value.partition(" ")
    assert scheme == "Digest", value
    return {m[0].lower(): m[1] or m[2] for m in re.findall(r'(\w+)="?([^",]*)"?|(\w+)=(\S+)', rest)}


def trunk_events(stack: Settings, call_id: str) -> list[dict[str, object]]:
    live = redis.Redis.from_url(stack.redis_url)
    try:
        entries = live.xrange("sipio:events")
    finally:
        live.close()
    events = [json.loads(fields[b"e"]) for _, fields in entries]
    return [e for e in events if e.get("call_id") == call_id]


def listening(port: int, timeout: float = 5.0) -> None:
    """Wait until the SIPp carrier holds its port: an INVITE sent earlier would be lost."""
    deadline = time.monotonic() + timeout
    while not in_use(CARRIER_IP, port, udp=True, tcp=False):
        assert time.monotonic() < deadline, f"SIPp carrier not listening on {port}"
        time.sleep(0.05)


def call_id_of(trace: str) -> str:
    return header(trace, "Call-ID")[0]


@pytest.fixture(scope="module")
def prov(stack: Settings) -> Provisioner:
    return Provisioner(stack)


def tenant_with_trunk(prov: Provisioner, name: str, password: str) -> tuple[Tenant, int, dict]:
    tenant = prov.tenant(name, f"{name.lower()}.example.com")
    port = free_port(CARRIER_IP)
    trunk = tenant.make("sip_trunks", {
        "name": "carrier", "proxy": f"{CARRIER_IP}:{port}", "direction": "outbound",
        "auth_username": f"{name.lower()}-trunk", "auth_password": password})  # fmt: skip
    return tenant, port, trunk


def test_the_carriers_challenge_is_answered_with_the_trunks_credentials(
    stack: Settings, prov: Provisioner
) -> None:
    password = PASSWORDS["trunk password"]
    tenant, port, _ = tenant_with_trunk(prov, "Digestco", password)
    user = tenant.user_with_devices("6001")
    settle(stack)
    carrier = sipp.start(SCENARIOS / "carrier_digest.xml", None, local_ip=CARRIER_IP,
                         local_port=port,
                         keys={"username": "digestco-trunk", "password": password})  # fmt: skip
    result = registered(stack, tenant, user).call(proxy(stack), "+15550106001")
    received = carrier.wait()
    assert result.ok, result.output
    assert received.ok, received.output  # SIPp verified the digest (verifyauth) and answered

    first, second = requests(received.messages, "INVITE")
    assert "authorization" not in first
    creds = digest_params(second["authorization"])
    assert creds["username"] == "digestco-trunk" and creds["realm"] == "carrier.example"
    # The answer is a new request of the same call: CSeq moves on.
    assert int(second["cseq"].split()[0]) == int(first["cseq"].split()[0]) + 1
    # The dialog's later requests follow the carrier's CSeq (dialog track_cseq_updates).
    bye = requests(received.messages, "BYE")[0]
    assert int(bye["cseq"].split()[0]) > int(second["cseq"].split()[0])

    kinds = [
        (e["type"], e.get("outcome")) for e in trunk_events(stack, call_id_of(result.messages))
    ]
    assert ("trunk_auth", "answered") in kinds and ("call_answered", None) in kinds


def test_a_proxy_challenge_407_with_qop(stack: Settings, prov: Provisioner) -> None:
    password = PASSWORDS["trunk password (proxy)"]
    tenant, port, _ = tenant_with_trunk(prov, "Proxyco", password)
    user = tenant.user_with_devices("6101")
    settle(stack)
    carrier = sipp.start(SCENARIOS / "carrier_proxy_auth.xml", None, local_ip=CARRIER_IP,
                         local_port=port)  # fmt: skip
    result = registered(stack, tenant, user).call(proxy(stack), "+15550106101")
    received = carrier.wait()
    assert result.ok, result.output
    assert received.ok, received.output

    _, second = requests(received.messages, "INVITE")
    p = digest_params(second["proxy-authorization"])
    assert p["username"] == "proxyco-trunk" and p["realm"] == "proxy.carrier.example"
    assert p["qop"] == "auth" and p["nc"] and p["cnonce"]
    # RFC 2617 with qop=auth, recomputed from the password the API stored.
    expected = md5(":".join([
        md5(f"proxyco-trunk:proxy.carrier.example:{password}"), p["nonce"], p["nc"],
        p["cnonce"], "auth", md5(f"INVITE:{p['uri']}")]))  # fmt: skip
    assert p["response"] == expected


def test_a_rotated_password_is_used_without_waiting_for_the_cache(
    stack: Settings, prov: Provisioner
) -> None:
    """Workers cache a resolved password for cache_ttl_sec (30 s); a rotation through the API
    moves the config version, which drops every worker's cached values."""
    before, after = PASSWORDS["password before rotation"], PASSWORDS["password after rotation"]
    tenant, port, trunk = tenant_with_trunk(prov, "Rotateco", before)
    user = tenant.user_with_devices("6301")
    settle(stack)
    caller = registered(stack, tenant, user)

    def call(expected: str) -> bool:
        carrier = sipp.start(SCENARIOS / "carrier_digest.xml", None, local_ip=CARRIER_IP,
                             local_port=port,
                             keys={"username": "rotateco-trunk", "password": expected})  # fmt: skip
        listening(port)
        result = caller.call(proxy(stack), "+15550106301")
        carrier.wait()
        return result.ok

    # Every worker (the kernel picks which one takes a call) caches the first password.
    assert all(call(before) for _ in range(2 * stack.kamailio_children))
    status, rotated = prov.call("POST", f"/v1/sip_trunks/{trunk['id']}/rotate_secret",
                                {"auth_password": after, "expected_version": 1})  # fmt: skip
    assert status == 200 and rotated["version"] == 2
    started = time.monotonic()
    settle(stack)
    outcomes = [call(after) for _ in range(2 * stack.kamailio_children)]
    assert all(outcomes), outcomes
    assert time.monotonic() - started < stack.secrets.cache_ttl_sec  # no wait for the TTL


def test_refused_credentials_fail_the_call_once_and_cleanly(
    stack: Settings, prov: Provisioner
) -> None:
    tenant, port, trunk = tenant_with_trunk(prov, "Wrongco", PASSWORDS["wrong trunk password"])
    user = tenant.user_with_devices("6201")
    settle(stack)
    carrier = sipp.start(SCENARIOS / "carrier_digest.xml", None, local_ip=CARRIER_IP,
                         local_port=port, keys={
                             "username": "wrongco-trunk",
                             "password": PASSWORDS["carrier's expected password"]})  # fmt: skip
    caller = registered(stack, tenant, user)
    result = caller.call(proxy(stack), "+15550106201", scenario="uac_call_refused.xml")
    received = carrier.wait()
    assert result.ok, result.output
    assert received.ok, received.output
    # One answer, no loop: two INVITEs reached the carrier, both refused.
    assert len(requests(received.messages, "INVITE")) == 2
    finals = [m[0] for m in messages(result.messages) if re.match(r"SIP/2\.0 [3-6]\d\d ", m[0])]
    assert finals[-1] == "SIP/2.0 503 Trunk Authentication Failed", finals

    events = trunk_events(stack, call_id_of(result.messages))
    outcomes = [e.get("outcome") for e in events if e["type"] == "trunk_auth"]
    assert outcomes == ["answered", "rejected"]
    assert any(e["type"] == "call_failed" and e.get("code") == 503 for e in events)

    places = haystacks(stack) | {"carrier's messages": received.messages.encode(),
                                 "caller's messages": result.messages.encode()}  # fmt: skip
    assert "file logs/kamailio.log" in places
    assert trunk["auth_secret_ref"].encode() in places["table sip_trunks"]
    assert leaks(PASSWORDS, places) == []


# -- the decision itself, without Kamailio -------------------------------------------------------
TRUNK = Trunk("tr_1", "acc_1", "carrier", "sip.example:5060", auth_username="u1",
              auth_secret_ref="kv:trunk:tr_1:auth_password")  # fmt: skip


def test_challenge_parsing() -> None:
    assert parse_challenge('Digest realm="a.example", nonce="n", qop="auth"') == (
        parse_challenge('digest nonce=n, realm="a.example"')
    )
    parsed = parse_challenge('Digest realm="a, b", nonce="x", algorithm=SHA-256')
    assert parsed is not None and parsed.realm == "a, b" and parsed.algorithm == "SHA-256"
    assert parse_challenge('Basic realm="x"') is None
    assert parse_challenge('Digest nonce="x"') is None


def test_answers_and_refusals() -> None:
    header_value = 'Digest realm="c.example", nonce="n"'
    got = answer(TRUNK, header_value, already_answered=False, resolve=lambda ref: "pw")
    assert (
        got
        == Answer("u1", "c.example", md5("u1:c.example:pw"))
        == Answer("u1", "c.example", ha1("u1", "c.example", "pw"))
    )

    def down(ref: str) -> str:
        raise SecretStoreUnavailable(f"secret store OpenBao/Vault unavailable while reading {ref}")

    refused = answer(TRUNK, header_value, already_answered=False, resolve=down)
    assert isinstance(refused, Refusal) and refused.outcome == "secret_unavailable"
    assert "kv:trunk:tr_1:auth_password" in refused.detail
    assert answer(TRUNK, header_value, already_answered=True, resolve=lambda r: "pw") == Refusal(
        "rejected", "the carrier refused the trunk's credentials"
    )
    bare = Trunk("tr_2", "acc_1", "carrier", "sip.example")
    assert answer(bare, header_value, already_answered=False, resolve=lambda r: "pw") == Refusal(
        "no_credentials"
    )
    sha = 'Digest realm="c.example", nonce="n", algorithm=SHA-256'
    assert answer(TRUNK, sha, already_answered=False, resolve=lambda r: "pw") == Refusal(
        "unsupported_algorithm", "SHA-256"
    )
