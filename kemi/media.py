"""Media anchoring of relayed calls on rtpengine, from inside a Kamailio worker.

Offer on the initial INVITE (or on the 200 for a late offer), answer on replies carrying SDP,
delete when the call ends or fails. A call that rings a WebRTC device is offered once per
branch instead (tm's branch route, rtpengine ``via-branch``), so each callee gets an SDP it
can use. ``KSR.textops.set_body`` replaces the body with a correct Content-Length in the
request, branch and onreply routes alike. The pool (and its Redis client) is created lazily
in the worker, after fork.
"""

from __future__ import annotations

import KSR

from control.core.routing.directives import Ring
from control.core.routing.model import Snapshot
from control.rtpengine import MediaOptions, NgCallNotFound, NgError, NgPool
from control.rtpengine.pool import PlacedCall, configured_nodes, worker_redis
from control.settings import Settings

SDP = "application/sdp"
WEBRTC, PLAIN = "w", "p"  # a party's kind: a browser (DTLS-SRTP, ICE) or a phone/trunk (RTP)
UNKNOWN = "?"  # the callee's kind before it answers (branches of a fork may differ)
# Transaction AVP: "-" not anchored; otherwise the mode, "o" (the request offers), "l" (late
# offer: the 2xx offers, the ACK answers) or "b" (the request offers once per branch), then
# the kinds of the request's sender and of the party that answers it.
PROFILE_AVP = "$avp(sipio_media)"
# Dialog variable: "-" not anchored; otherwise "a", then the kinds of the caller and the callee.
# In-dialog offers (re-INVITE, UPDATE, the ACK of a late offer) read it.
DIALOG_VAR = "$dlg_var(sipio_media)"
# The rtpengine node of the call's offer, for its replies (transaction) and later requests
# (dialog): their commands go straight to it, with no Redis lookup (NgPool.at).
NODE_AVP = "$avp(sipio_rtp)"
NODE_VAR = "$dlg_var(sipio_rtp)"
# Branch flag of a WebRTC device's contacts: set on its REGISTER, so usrloc keeps it with the
# contact and every lookup puts it back on the branch that rings it.
WEBRTC_BFLAG = 6


def kind(webrtc: bool) -> str:
    return WEBRTC if webrtc else PLAIN


def rings_webrtc(snap: Snapshot, ring: Ring) -> bool:
    """Whether any leg of any step rings a WebRTC device (the call is then offered per branch
    from the start: a body rewritten once for all branches cannot be rewritten again)."""
    devices = (snap.devices_by_id.get(leg.device_id) for step in ring.steps for leg in step.legs)
    return any(device is not None and device.is_webrtc for device in devices)


def kind_of(sdp: str) -> str:
    """What kind of party wrote this SDP: DTLS-SRTP is what browsers speak."""
    return WEBRTC if "UDP/TLS/RTP/SAVP" in sdp or "a=fingerprint:" in sdp else PLAIN


TO_WEBRTC = MediaOptions.sip_to_webrtc()  # built (and checked) once per worker, not per call
FROM_WEBRTC = MediaOptions.webrtc_to_sip()


def options_for(receiver: str, sender: str) -> MediaOptions | None:
    """rtpengine options for an SDP going from ``sender`` to ``receiver``: it must fit the
    party that will read it."""
    if receiver == WEBRTC:
        return TO_WEBRTC
    if sender == WEBRTC:
        return FROM_WEBRTC
    return None


def module_flags(options: MediaOptions | None) -> str:
    """The C rtpengine module's flags string for these options (``media_driver`` "module")."""
    words: list[str] = []
    for key, value in (options.to_ng() if options else {}).items():
        if key == "flags" and isinstance(value, list):
            words += map(str, value)
        elif isinstance(value, dict):  # codec: {verb: [names]}
            words += [f"{key}-{verb}-{name}" for verb, names in value.items() for name in names]
        elif isinstance(value, list):
            words += [f"{key}={item}" if key == "direction" else f"{key}-{item}" for item in value]
        else:
            words.append(f"{key}={value}")
    return " ".join(words)


class MediaAnchor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.module = settings.media_driver == "module"  # Kamailio's C module sends the commands
        self._pool: NgPool | None = None

    def pool(self) -> NgPool:
        if self._pool is None:
            redis_client = worker_redis(self.settings.redis_url)
            self._pool = NgPool(configured_nodes(self.settings), redis_client, timeout=0.5)
        return self._pool

    def placed(self) -> PlacedCall:
        """The pool's commands for this call, sent straight to the node its offer went to as
        the transaction or the dialog remembers it (no Redis round trip; none known: a new
        call, or a dialog from before a restart, found through Redis and the nodes)."""
        node = KSR.pv.getvs(NODE_AVP, "") or KSR.pv.getvs(NODE_VAR, "")
        return self.pool().at(node or None)

    @staticmethod
    def keep_node(node: str) -> None:
        """Remember the call's node for its replies (transaction) and later requests (dialog)."""
        if KSR.pv.getvs(NODE_AVP, "") != node:
            KSR.pv.sets(NODE_AVP, node)
        if KSR.pv.getvs(NODE_VAR, "") != node:
            KSR.pv.sets(NODE_VAR, node)

    @staticmethod
    def body() -> str:
        if SDP not in KSR.pv.getvs("$hdr(Content-Type)", "").lower():
            return ""
        return str(KSR.pv.getvs("$rb", ""))

    def offer(self, webrtc_caller: bool = False, per_branch: bool = False) -> str | None:
        """Anchor the initial INVITE's SDP; with ``per_branch`` (a WebRTC device rings) leave
        the body alone for ``offer_branch``. Returns an error text when no rtpengine could
        take it."""
        if not self.settings.media_anchor:
            KSR.pv.sets(PROFILE_AVP, "-")
            KSR.pv.sets(DIALOG_VAR, "-")
            return None
        caller = kind(webrtc_caller)
        KSR.pv.sets(DIALOG_VAR, "a" + caller + PLAIN)
        sdp = self.body()
        mode = ("b" if per_branch and not self.module else "o") if sdp else "l"
        KSR.pv.sets(PROFILE_AVP, mode + caller + UNKNOWN)
        if mode != "o":
            return None  # late offer: the 200 carries it; per branch: the branch route
        return self._offer(sdp, KSR.pv.getvs("$ft", ""), options_for(PLAIN, caller))

    def per_branch(self) -> bool:
        return bool(KSR.pv.getvs(PROFILE_AVP, "-").startswith("b"))

    def offer_branch(self) -> str | None:
        """Branch route: offer the INVITE's own SDP for this branch only, shaped for the device
        it rings (``WEBRTC_BFLAG``)."""
        profile = KSR.pv.getvs(PROFILE_AVP, "-")
        if not profile.startswith("b"):
            return None
        callee = kind(KSR.isbflagset(WEBRTC_BFLAG) > 0)
        return self._offer(self.body(), KSR.pv.getvs("$ft", ""),
                           options_for(callee, profile[1]), via_branch=self.branch())  # fmt: skip

    @staticmethod
    def branch() -> str:
        """The rtpengine branch of the current tm branch (branch route and its replies)."""
        return f"b{KSR.pv.getvs('$T_branch_idx', '0')}"

    def _offer(
        self, sdp: str, from_tag: str, options: MediaOptions | None, via_branch: str | None = None
    ) -> str | None:
        if self.module:
            return self.run_module("offer", options)
        try:
            reply = self.placed().offer(KSR.pv.getvs("$ci", ""), sdp, from_tag=from_tag,
                                        options=options, via_branch=via_branch)  # fmt: skip
        except NgError as exc:
            return f"{type(exc).__name__}: {exc}"
        self.keep_node(reply.node)
        KSR.textops.set_body(reply.sdp, SDP)
        return None

    def answer_reply(self) -> str | None:
        """A reply with SDP (183/200, retransmissions included: rtpengine answers the same), to
        an initial INVITE or to an in-dialog offer alike."""
        sdp = self.body()
        profile = KSR.pv.getvs(PROFILE_AVP, "-")
        if not sdp or len(profile) != 3:
            return None
        mode, requester, replier = profile
        if replier == UNKNOWN:  # the initial INVITE: the callee shows its kind in its SDP
            replier = kind_of(sdp)
            if int(KSR.pv.getvs("$rs", "0") or 0) >= 200:
                KSR.pv.sets(DIALOG_VAR, "a" + requester + replier)
        options = options_for(requester, replier)  # the reply's SDP goes to the requester
        if self.module:  # the module swaps the tags of an offer in a reply itself
            return self.run_module("offer" if mode == "l" else "answer", options)
        via_branch = self.branch() if mode == "b" else None
        call_id, from_tag, to_tag = (KSR.pv.getvs(v, "") for v in ("$ci", "$ft", "$tt"))
        try:
            if mode == "l":
                # Late offer: the party answering the request offers, its peer answers in the ACK.
                reply = self.placed().offer(call_id, sdp, from_tag=to_tag, options=options)
                self.keep_node(reply.node)
            else:
                reply = self.placed().answer(call_id, sdp, from_tag=from_tag, to_tag=to_tag,
                                             options=options, via_branch=via_branch)  # fmt: skip
        except NgError as exc:
            return f"{type(exc).__name__}: {exc}"
        KSR.textops.set_body(reply.sdp, SDP)
        return None

    def in_dialog(self) -> str | None:
        """re-INVITE / UPDATE (with SDP: an offer; an INVITE without: its 2xx will offer) and
        the ACK that answers a late offer, in either direction, for anchored dialogs only."""
        dialog = KSR.pv.getvs(DIALOG_VAR, "")
        if len(dialog) != 3 or dialog[0] != "a":
            KSR.pv.sets(PROFILE_AVP, "-")
            return None  # not anchored at its start (media_anchor off, or not ours)
        from_caller = KSR.pv.getvs("$ft", "") == KSR.pv.getvs("$dlg(from_tag)", "")
        sender, receiver = (dialog[1], dialog[2]) if from_caller else (dialog[2], dialog[1])
        sdp = self.body()
        if KSR.is_ACK():
            if not sdp:
                return None
            if self.module:
                return self.run_module("answer", options_for(receiver, sender))
            call_id, from_tag, to_tag = (KSR.pv.getvs(v, "") for v in ("$ci", "$ft", "$tt"))
            try:  # the offer came from the party this ACK goes to
                reply = self.placed().answer(call_id, sdp, from_tag=to_tag, to_tag=from_tag,
                                             options=options_for(receiver, sender))  # fmt: skip
            except NgCallNotFound:
                return None  # already deleted (a BYE crossed the ACK)
            except NgError as exc:
                return f"{type(exc).__name__}: {exc}"
            KSR.textops.set_body(reply.sdp, SDP)
            return None
        if not sdp and not KSR.is_INVITE():
            KSR.pv.sets(PROFILE_AVP, "-")
            return None  # an UPDATE without SDP changes no media
        KSR.pv.sets(PROFILE_AVP, ("o" if sdp else "l") + sender + receiver)
        if not sdp:
            return None  # re-INVITE without SDP: the 2xx offers, the ACK answers
        return self._offer(sdp, KSR.pv.getvs("$ft", ""), options_for(receiver, sender))

    def delete(self) -> str | None:
        if self.module:
            KSR.rtpengine.rtpengine_delete0()  # a call already gone is logged by the module
            return None
        try:
            self.placed().delete(KSR.pv.getvs("$ci", ""))
        except NgCallNotFound:
            return None  # already gone (retransmitted BYE, CANCEL after failure)
        except NgError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    @staticmethod
    def run_module(command: str, options: MediaOptions | None) -> str | None:
        """Offer or answer through the C module: it takes the tags and the SDP from the message
        (swapping them for an offer in a reply or an answer in a request, as the Python path
        does) and rewrites the body itself."""
        run = (
            KSR.rtpengine.rtpengine_offer if command == "offer" else KSR.rtpengine.rtpengine_answer
        )
        if run(module_flags(options)) < 0:
            return f"rtpengine module: {command} failed"
        return None
