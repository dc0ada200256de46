"""`sipio demo`: exercise a running stack end to end and say what happened."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

from control.demo import sipp
from control.demo.phones import Phone
from control.demo.provision import Provisioner, Tenant, demo_key
from control.rtpengine import NgClient, NgError
from control.settings import Settings
from control.stack import supervisor


class DemoError(Exception):
    pass


def run_demo(settings: Settings) -> Iterator[str]:
    statuses = supervisor.status(settings.state_dir)
    unhealthy = [s.name for s in statuses if not s.ok]
    if not statuses or unhealthy:
        missing = ", ".join(unhealthy) or "not started"
        raise DemoError(
            f"stack in {settings.state_dir} is not healthy ({missing}); run `sipio up` first"
        )
    yield f"stack in {settings.state_dir}: {len(statuses)} components healthy"

    target = f"{settings.sip_host}:{settings.sip_port}"
    started = time.perf_counter()
    result = sipp.run(sipp.scenario("options.xml"), target, timeout=10)
    elapsed = (time.perf_counter() - started) * 1000
    if not result.ok:
        raise DemoError(f"SIP OPTIONS to {target}: SIPp {result.meaning}\n{result.output[-2000:]}")
    status_line = _first_reply_line(result.messages)
    yield f"SIP    OPTIONS -> Kamailio {target} (KEMI): {status_line}  [SIPp, {elapsed:.0f} ms]"

    try:
        with NgClient(settings.ng_host, settings.ng_port, timeout=1.0) as ng:
            started = time.perf_counter()
            pong = ng.ping()
            rtt = (time.perf_counter() - started) * 1000
    except NgError as exc:
        raise DemoError(f"rtpengine: {exc}") from None
    yield (
        f"MEDIA  ng ping -> rtpengine {settings.ng_host}:{settings.ng_port}: "
        f"{'pong' if pong else 'no pong'}  [{rtt:.2f} ms]"
    )

    with urllib.request.urlopen(f"{settings.api_url}/healthz", timeout=3) as response:
        body = json.loads(response.read())
    yield f"API    GET {settings.api_url}/healthz: {body['status']} {body['checks']}"
    yield from demo_call(settings)


DEMO_DOMAIN = "demo.sipio.local"


def demo_call(settings: Settings) -> Iterator[str]:
    """Provision (once) a demo tenant with users 1001 and 1002, register a SIPp phone for each
    and call 1002 from 1001 through Kamailio: INVITE, digest challenge, 200, ACK, BYE."""
    prov = Provisioner(settings, demo_key(settings))
    status, found = prov.call("GET", f"/v1/sip_domains?domain={DEMO_DOMAIN}")
    if status != 200:
        raise DemoError(f"API refused the demo key: {status} {found}")
    if found["items"]:
        tenant = Tenant(prov, found["items"][0]["account_id"], DEMO_DOMAIN)
        yield f"TENANT demo tenant {tenant.id} ({DEMO_DOMAIN}) already provisioned"
    else:
        tenant = prov.tenant("Demo", DEMO_DOMAIN)
        for username, name in (("1001", "Alice"), ("1002", "Bob")):
            tenant.user_with_devices(username, display_name=name)
        yield f"TENANT provisioned demo tenant {tenant.id}: users 1001 (Alice), 1002 (Bob)"
    phones = {}
    for username in ("1001", "1002"):
        _, devices = prov.call(
            "GET", f"/v1/sip_devices?auth_username={username}&realm={DEMO_DOMAIN}"
        )
        device = devices["items"][0]
        _, reset = prov.call("POST", f"/v1/sip_devices/{device['id']}/reset_password")
        phones[username] = Phone(username, reset["password"], DEMO_DOMAIN)
    time.sleep(settings.config_check_sec * 2 + 0.2)  # let every Kamailio worker see the change
    target = f"{settings.sip_host}:{settings.sip_port}"
    for username, phone in phones.items():
        result = phone.register(target)
        if not result.ok:
            raise DemoError(f"REGISTER {username}: SIPp {result.meaning}\n{result.output[-1500:]}")
        yield f"SIP    REGISTER {username}@{DEMO_DOMAIN}: 401 challenge, then 200 OK"
    answering = phones["1002"].answer(timeout=20)
    started = time.perf_counter()
    call = phones["1001"].call(target, "1002")
    answered = answering.wait()
    if not (call.ok and answered.ok):
        raise DemoError(f"call 1001 -> 1002 failed: {call.meaning}\n{call.output[-1500:]}")
    codes = [line.split()[1] for line in call.messages.splitlines() if line.startswith("SIP/2.0 ")]
    seen = " ".join(dict.fromkeys(c for c in codes if c != "100"))
    yield (
        f"CALL   1001 -> 1002 through Kamailio: INVITE -> {seen}, ACK, BYE -> 200 "
        f"[{(time.perf_counter() - started) * 1000:.0f} ms]"
    )


def _first_reply_line(messages: str) -> str:
    for line in messages.splitlines():
        if line.startswith("SIP/2.0 "):
            return line.strip()
    return "(no reply captured)"
