"""`sipio demo`: exercise a running stack end to end and say what happened."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

from control.demo import sipp
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


def _first_reply_line(messages: str) -> str:
    for line in messages.splitlines():
        if line.startswith("SIP/2.0 "):
            return line.strip()
    return "(no reply captured)"
