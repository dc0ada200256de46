"""Staggered ring-group legs (``delay_sec``): a leg that must start late is sent as a branch
back to this proxy, which holds it in an async timer and then rings the device. If another leg
answers first, tm cancels the held branch and it never rings.

The branch URI carries the device AOR and the delay, signed with a key made once per start, so
nobody outside can make the proxy ring a device unauthenticated.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote, unquote

from control.core.routing.directives import Leg
from control.settings import Settings

PARAM = "x-sipio-leg"


class DelayedLegs:
    def __init__(self, settings: Settings) -> None:
        self.host = f"{settings.sip_host}:{settings.sip_port}"
        self.key = secrets.token_bytes(16)

    def _sign(self, call_id: str, aor: str, delay: int) -> str:
        text = f"{call_id}|{aor}|{delay}".encode()
        return hmac.new(self.key, text, hashlib.sha256).hexdigest()[:20]

    def uri(self, leg: Leg, call_id: str) -> str:
        aor = quote(leg.aor, safe="")
        signature = self._sign(call_id, leg.aor, leg.delay_sec)
        return f"sip:{self.host};{PARAM}={aor}.{leg.delay_sec}.{signature}"

    def parse(self, request_uri: str, call_id: str) -> Leg | None:
        marker = f";{PARAM}="
        if marker not in request_uri:
            return None
        value = request_uri.split(marker, 1)[1].split(";", 1)[0]
        try:
            aor_quoted, delay_text, signature = value.rsplit(".", 2)
            aor, delay = unquote(aor_quoted), int(delay_text)
        except ValueError:
            return None
        if not hmac.compare_digest(signature, self._sign(call_id, aor, delay)):
            return None
        return Leg(aor, "", delay)
