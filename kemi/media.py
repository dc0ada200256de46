"""Media anchoring of relayed calls on rtpengine, from inside a Kamailio worker.

Offer on the initial INVITE (or on the 200 for a late offer), answer on replies carrying SDP,
delete when the call ends or fails. ``KSR.textops.set_body`` replaces the body with a correct
Content-Length in the request route and in tm's onreply route alike. The pool (and its Redis
client) is created lazily in the worker, after fork.
"""

from __future__ import annotations

import KSR

from control.rtpengine import (
    MediaOptions,
    NgCallNotFound,
    NgError,
    NgPool,
    Node,
)
from control.rtpengine.pool import worker_redis
from control.settings import Settings

SDP = "application/sdp"
# Transaction AVP: "-" not anchored; otherwise "o" (offered) or "l" (late offer: the 200
# offers), followed by "w" when the caller is a WebRTC device.
PROFILE_AVP = "$avp(sipio_media)"


def nodes(settings: Settings) -> list[Node]:
    if not settings.rtpengine_nodes:
        return [Node("local", settings.ng_host, settings.ng_port)]
    found = []
    for index, spec in enumerate(settings.rtpengine_nodes):
        host, port, *weight = spec.rsplit(":", 2) if spec.count(":") >= 2 else (*spec.split(":"),)
        found.append(Node(f"rtp{index}", host, int(port), int(weight[0]) if weight else 1))
    return found


class MediaAnchor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool: NgPool | None = None

    def pool(self) -> NgPool:
        if self._pool is None:
            self._pool = NgPool(nodes(self.settings), worker_redis(self.settings.redis_url),
                                timeout=0.5)  # fmt: skip
        return self._pool

    @staticmethod
    def body() -> str:
        if SDP not in KSR.pv.getvs("$hdr(Content-Type)", "").lower():
            return ""
        return str(KSR.pv.getvs("$rb", ""))

    def offer(self, webrtc_caller: bool = False) -> str | None:
        """Anchor the request's SDP. Returns an error text when no rtpengine could take it."""
        if not self.settings.media_anchor:
            KSR.pv.sets(PROFILE_AVP, "-")
            return None
        sdp = self.body()
        KSR.pv.sets(PROFILE_AVP, ("o" if sdp else "l") + ("w" if webrtc_caller else ""))
        if not sdp:
            return None  # late offer: the 200 carries it
        options = MediaOptions.webrtc_to_sip() if webrtc_caller else None
        try:
            reply = self.pool().offer(
                KSR.pv.getvs("$ci", ""), sdp, from_tag=KSR.pv.getvs("$ft", ""), options=options
            )
        except NgError as exc:
            return f"{type(exc).__name__}: {exc}"
        KSR.textops.set_body(reply.sdp, SDP)
        return None

    def anchored(self) -> bool:
        return bool(KSR.pv.getvs(PROFILE_AVP, "-") != "-")

    def answer_reply(self) -> str | None:
        """A reply with SDP (183/200, retransmissions included: rtpengine answers the same)."""
        sdp = self.body()
        if not sdp or not self.anchored():
            return None
        profile = KSR.pv.getvs(PROFILE_AVP, "-")
        options = MediaOptions.sip_to_webrtc() if profile.endswith("w") else None
        call_id, from_tag, to_tag = (KSR.pv.getvs(v, "") for v in ("$ci", "$ft", "$tt"))
        try:
            if profile.startswith("l"):
                # Late offer: the callee offers in the 200, the caller answers in the ACK.
                reply = self.pool().offer(call_id, sdp, from_tag=to_tag, options=options)
            else:
                reply = self.pool().answer(
                    call_id, sdp, from_tag=from_tag, to_tag=to_tag, options=options
                )
        except NgError as exc:
            return f"{type(exc).__name__}: {exc}"
        KSR.textops.set_body(reply.sdp, SDP)
        return None

    def in_dialog(self) -> str | None:
        """re-INVITE / UPDATE with SDP, and the ACK that answers a late offer."""
        sdp = self.body()
        if not sdp:
            return None
        call_id, from_tag, to_tag = (KSR.pv.getvs(v, "") for v in ("$ci", "$ft", "$tt"))
        try:
            if KSR.is_ACK():
                reply = self.pool().answer(call_id, sdp, from_tag=to_tag, to_tag=from_tag)
            else:
                reply = self.pool().offer(call_id, sdp, from_tag=from_tag)
        except NgCallNotFound:
            return None  # a dialog we never anchored
        except NgError as exc:
            return f"{type(exc).__name__}: {exc}"
        KSR.textops.set_body(reply.sdp, SDP)
        return None

    def delete(self) -> str | None:
        try:
            self.pool().delete(KSR.pv.getvs("$ci", ""))
        except NgCallNotFound:
            return None  # already gone (retransmitted BYE, CANCEL after failure)
        except NgError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
