"""Trunks with ``do_register`` register with their carrier from Kamailio itself (SPEC 12).

A timer process (rtimer) walks the snapshot's registering trunks every few seconds. Per trunk,
one node of a cluster holds a lease in Redis and is the only one that registers, so nodes never
overwrite each other's Contact. The REGISTER leaves through ``uac_req_send`` with the trunk's
username and the password resolved from the secret store at that moment; uac answers the
carrier's 401/407 itself. The reply (``uac:reply``, in whichever worker receives it) is kept in
Redis next to the lease and traced as ``trunk_register``. uac_reg is not used: it reads its
accounts, passwords included, from a database table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import redis

from control.core.routing.model import Snapshot, Trunk

CHECK_SEC = 5  # the rtimer interval in kamailio.cfg.tmpl
LEASE_MS = 3 * CHECK_SEC * 1000  # a node that stops ticking hands its trunks over
RETRY_SEC = 30  # after a refusal or a store outage
ANSWER_SEC = 40  # a REGISTER with no final reply by then is sent again
MIN_EXPIRES = 20  # expire_sec 0 would unregister, and refresh on every tick


@dataclass(frozen=True)
class Registration:
    trunk_id: str
    ruri: str  # sip:<registrar domain>
    aor: str  # From and To
    proxy: str  # where the REGISTER is sent
    contact: str  # this node's SIP address, where the carrier sends calls
    expires: int
    username: str
    secret_ref: str
    call_id: str  # of the trunk's traces; each REGISTER cycle adds its start (cycle_call_id)


def registration(trunk: Trunk, node: str) -> Registration | None:
    """What to send for a trunk; None when it does not register or cannot."""
    if not (trunk.do_register and trunk.status == "active" and trunk.proxy):
        return None
    if not (trunk.auth_username and trunk.auth_secret_ref):
        return None
    host = trunk.proxy.split(":")[0]
    domain = trunk.realm or host
    user = trunk.from_user or trunk.auth_username
    return Registration(
        trunk_id=trunk.id,
        ruri=f"sip:{domain}",
        aor=f"sip:{user}@{trunk.from_domain or domain}",
        proxy=f"sip:{trunk.proxy};transport={trunk.transport}",
        contact=f"sip:{user}@{node}",
        expires=max(trunk.expire_sec, MIN_EXPIRES),
        username=trunk.auth_username,
        secret_ref=trunk.auth_secret_ref,
        call_id=f"trunkreg-{trunk.id}-{node.replace(':', '-')}",
    )


def cycle_call_id(reg: Registration, now: float) -> str:
    """A Call-ID per REGISTER cycle: uac_req_send starts every request at CSeq 10, and a
    registrar takes the same Call-ID and CSeq again for a retransmission (RFC 3261 10.3 lets a
    new Call-ID update the binding of the same Contact)."""
    return f"{reg.call_id}-{int(now * 1000)}"


def registrations(snap: Snapshot, node: str) -> list[Registration]:
    found = (registration(t, node) for t in snap.trunks.values())
    return [r for r in found if r is not None]


def due(state: Mapping[str, str], now: float, expires: int) -> bool:
    """Whether to send a REGISTER now, given the trunk's last known state."""
    at = float(state.get("at") or 0)
    kind = state.get("state")
    if kind == "registered":
        return now >= at + expires / 2
    if kind in ("sent", "challenged"):
        return now >= at + ANSWER_SEC
    if kind == "failed":
        return now >= at + RETRY_SEC
    return True


def outcome(state: Mapping[str, str], code: int) -> str:
    """The new state after a reply: the first challenge is uac's to answer, a second one is a
    refusal of the credentials."""
    if code in (401, 407):
        return "failed" if state.get("state") == "challenged" else "challenged"
    return "registered" if 200 <= code < 300 else "failed"


class Registrar:
    """Registration state and leases in Redis: shared by the timer and the reply workers."""

    def __init__(self, redis_url: str, node: str) -> None:
        self.redis_url = redis_url
        self.node = node
        self._client: redis.Redis | None = None  # per process, after fork

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5,
                decode_responses=True,
            )  # fmt: skip
        return self._client

    @staticmethod
    def key(trunk_id: str) -> str:
        return f"sipio:trunkreg:{trunk_id}"

    def owns(self, trunk_id: str) -> bool:
        """Take or keep the trunk's lease; False while another node holds it."""
        live, lease = self._redis(), self.key(trunk_id) + ":owner"
        if live.set(lease, self.node, nx=True, px=LEASE_MS):
            return True
        if live.get(lease) == self.node:
            live.pexpire(lease, LEASE_MS)
            return True
        return False

    def state(self, trunk_id: str) -> dict[str, str]:
        return dict(self._redis().hgetall(self.key(trunk_id)))  # type: ignore[arg-type]

    def mark(self, trunk_id: str, state: str, now: float, code: int = 0) -> None:
        self._redis().hset(self.key(trunk_id), mapping={
            "state": state, "at": f"{now:.3f}", "code": code, "node": self.node})  # fmt: skip
