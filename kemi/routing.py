"""SIP request handling inside Kamailio, one small method per concern.

The object is created in Kamailio's main process and copied into every worker by ``fork``:
anything holding a socket (config DB, Redis) is created lazily in the worker, never in
``__init__`` or ``mod_init``, or all workers would share one connection.

Return convention of app_python3: a ``ksr_*`` method returns 1 to Kamailio; helpers return
``True`` when they finished the request (reply sent or relayed) and the caller must stop.
Decisions come from ``control.core.routing``; this module only reads SIP and executes.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import KSR  # provided by app_python3 inside Kamailio
import redis

from control import logs
from control.core.admission import CallFacts, facts_from_route
from control.core.routing import resolve as core
from control.core.routing.directives import (
    Directive,
    Media,
    Outbound,
    Reject,
    Ring,
    Step,
    to_json,
)
from control.core.routing.model import Device, Snapshot
from control.live.admission import AdmissionStore
from control.secrets import SecretStore, SecretStoreError, open_store
from control.settings import Settings
from kemi import trunk_auth, trunk_registration
from kemi.bridges import from_media_node
from kemi.config_cache import ConfigCache
from kemi.delayed import DelayedLegs
from kemi.events import EventSink
from kemi.media import WEBRTC_BFLAG, MediaAnchor, rings_webrtc
from kemi.plan import elapsed, load_plan, save_plan

SCANNER_AGENTS = ("friendly-scanner", "sipcli", "sipvicious", "sip-scan", "VaxSIPUserAgent")
MAX_HOPS = 10
PRIVATE_HEADERS = "^X-Sipio-"  # context for the media engine; never accepted from or sent out
BUSY_CODES = (486, 600, 603)


class Router:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rank: int | None = None
        self.config = ConfigCache(settings.db_url, settings.config_check_sec)
        self.events = EventSink(settings.redis_url)
        self.media_anchor = MediaAnchor(settings)
        self.webrtc_caller = False  # of the INVITE being routed by this worker
        self.webrtc_callees = False  # whether that INVITE rings a WebRTC device
        self.delayed = DelayedLegs(settings)  # created before fork: one key for all workers
        self.node = f"{settings.sip_host}:{settings.sip_port}"  # Contact of trunk registrations
        self.trunk_registrar = trunk_registration.Registrar(settings.redis_url, self.node)
        self._admission: AdmissionStore | None = None  # per worker, after fork
        self.admitted: str | None = None  # admission token of the INVITE being routed
        self.relayed = False  # whether that INVITE left statefully (a dialog will end it)
        self._secrets: SecretStore | None = None  # per worker, after fork (trunk passwords)
        self._secrets_version: object = None  # config version its cached values belong to

    @classmethod
    def from_env(cls) -> Router:
        logs.configure()  # Python's own log lines in kamailio.log are masked like everywhere
        return cls(Settings.from_env())

    # -- lifecycle ------------------------------------------------------------------------------
    def child_init(self, rank: int) -> int:
        self.rank = rank
        return 0

    # -- request_route --------------------------------------------------------------------------
    def ksr_request_route(self, msg: Any) -> int:
        try:
            self.request()
        finally:
            self.flush_events()
        return 1

    def request(self) -> None:
        if self.reqinit():
            return
        self.natdetect()
        if KSR.is_CANCEL():
            if KSR.tm.t_check_trans() > 0:
                self.release_media("cancel")
                self.relay()
            return
        if self.withindlg():
            return
        if self.retransmission():
            return
        if KSR.is_INVITE() and self.delayed_leg():
            return
        KSR.hdr.remove("Route")
        if KSR.is_REGISTER():
            self.registrar()
        elif KSR.is_INVITE():
            self.invite()
        else:
            self.no_route()

    def reqinit(self) -> bool:
        """Drop scanners, enforce Max-Forwards, answer keepalives, refuse malformed requests."""
        agent = KSR.pv.getvs("$ua", "")
        if any(s in agent for s in SCANNER_AGENTS):
            KSR.sl.sl_send_reply(200, "OK")  # give scanners nothing to learn from
            return True
        if KSR.maxfwd.process_maxfwd(MAX_HOPS) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return True
        if KSR.is_OPTIONS() and KSR.is_myself_ruri() and KSR.pv.is_null("$rU"):
            KSR.sl.sl_send_reply(200, "Keepalive")
            return True
        if KSR.sanity.sanity_check(17895, 7) < 0:
            KSR.err(f"malformed SIP message from {KSR.pv.getvs('$si', '?')}\n")
            return True
        KSR.textops.remove_hf_re(PRIVATE_HEADERS)  # callers cannot forge platform context
        return False

    def natdetect(self) -> None:
        KSR.force_rport()
        if KSR.nathelper.nat_uac_test(19) > 0:
            if KSR.is_REGISTER():
                KSR.nathelper.fix_nated_register()
            elif KSR.siputils.is_first_hop() > 0:
                KSR.nathelper.set_contact_alias()

    def withindlg(self) -> bool:
        """Sequential requests follow the Record-Route path; strays are refused."""
        if KSR.siputils.has_totag() < 0:
            return False
        if KSR.rr.loose_route() > 0:
            if not KSR.isdsturiset():
                KSR.nathelper.handle_ruri_alias()
            if KSR.is_BYE():
                self.release_media("bye")
            elif KSR.is_INVITE() or KSR.is_UPDATE() or KSR.is_ACK():
                error = self.media_anchor.in_dialog()
                if error:
                    self.trace("media_failed", stage="in_dialog", error=error)
                if not KSR.is_ACK():
                    KSR.tm.t_on_reply("ksr_onreply_media")
            self.relay()
            return True
        if KSR.is_ACK():
            if KSR.tm.t_check_trans() > 0:
                self.relay()
            return True  # an ACK without transaction is absorbed
        KSR.sl.sl_send_reply(404, "Not here")
        return True

    def retransmission(self) -> bool:
        if KSR.tmx.t_precheck_trans() > 0:
            KSR.tm.t_check_trans()
            return True
        return bool(KSR.tm.t_check_trans() == 0)

    def no_route(self) -> None:
        """Initial requests with no decision: refuse, without relaying (never an open relay)."""
        KSR.sl.sl_send_reply(404, "Not Found")

    # -- registration ---------------------------------------------------------------------------
    def authenticate(self, snap: Snapshot, realm: str) -> Device | None:
        """Digest against the device's stored HA1. Challenges or refuses when it returns None."""
        if realm not in snap.domains:
            KSR.sl.sl_send_reply(403, "Forbidden")
            self.trace("auth", outcome="unknown_realm", realm=realm)
            return None
        if KSR.pv.is_null("$au"):
            KSR.auth.auth_challenge(realm, 1)
            return None
        username = KSR.pv.getvs("$au", "")
        device = snap.devices.get((username, realm))
        if device is None:
            KSR.auth.auth_challenge(realm, 1)
            self.trace("auth", outcome="unknown_device", user=username, realm=realm)
            return None
        algorithm = KSR.pv.getvs("$aa", "MD5").upper()
        ha1 = device.ha1_sha256 if algorithm == "SHA-256" else device.ha1
        # KEMI passes values, not PV names. flags 1: the secret is an HA1;
        # checks 1: the To (REGISTER) or From user must be the authenticated user.
        code = KSR.auth.pv_auth_check(realm, ha1, 1, 1)
        if code < 0:
            KSR.auth.auth_challenge(realm, 1)  # wrong credentials: challenge again
            self.trace("auth", outcome=f"failed({code})", user=username, realm=realm)
            return None
        account = snap.accounts.get(device.account_id)
        user = snap.users.get(device.user_id)
        if (
            device.status != "active"
            or account is None
            or account.status != "active"
            or (user is None or user.status != "active")
        ):
            KSR.sl.sl_send_reply(403, "Forbidden")
            self.trace("auth", outcome="disabled", device_id=device.id)
            return None
        return device

    def registrar(self) -> None:
        snap = self.config.get()
        device = self.authenticate(snap, KSR.pv.getvs("$td", "").lower())
        if device is None:
            return
        if device.is_webrtc:
            KSR.setbflag(WEBRTC_BFLAG)  # kept with the contact, back on each branch to it
        if KSR.registrar.save("location", 0) < 0:
            KSR.sl.sl_reply_error()
            return
        expires = KSR.pv.getvs("$hdr(Expires)", "")
        contact = KSR.pv.getvs("$ct", "")
        gone = contact.strip() == "*" or expires == "0" or ";expires=0" in contact.replace(" ", "")
        self.trace(
            "unregister" if gone else "register",
            account_id=device.account_id,
            user_id=device.user_id,
            device_id=device.id,
            aor=device.aor,
            source=KSR.pv.getvs("$si", ""),
        )

    def ksr_registrar_event(self, msg: Any, event: str) -> int:
        """usrloc:contact-expired (usrloc's timer process): a phone stopped refreshing its
        registration. Published like an unregister, with ``reason: expired``."""
        if event != "usrloc:contact-expired":
            return 1
        try:
            aor = KSR.pv.getvs("$ulc(exp=>aor)", "")
            username, _, realm = aor.removeprefix("sip:").partition("@")
            device = self.config.get().devices.get((username, realm.lower()))
            if device is not None:
                # The event's call_id is the registration's (this message is a placeholder).
                text = self.events.add(
                    "unregister", KSR.pv.getvs("$ulc(exp=>callid)", ""),
                    account_id=device.account_id, user_id=device.user_id, device_id=device.id,
                    aor=device.aor, reason="expired",
                )  # fmt: skip
                KSR.info(f"sipio {text}\n")
        finally:
            self.flush_events()
        return 1

    # -- calls ----------------------------------------------------------------------------------
    def invite(self) -> None:
        snap = self.config.get()
        call = core.Call(
            call_id=KSR.pv.getvs("$ci", ""),
            dialled=KSR.pv.getvs("$rU", ""),
            caller=KSR.pv.getvs("$fU", ""),
            caller_name=KSR.pv.getvs("$fn", "").strip('"') or None,
            now=datetime.now(UTC),
            rotate=self.rotate,
        )
        bridge = from_media_node(snap, call)  # a flow's dial, back from FreeSWITCH
        trunk = None if bridge else snap.trunk_for_source(KSR.pv.getvs("$si", ""))
        self.webrtc_caller = self.webrtc_callees = False
        caller_user, did_id = None, None
        if bridge is not None:
            directive, origin, origin_account = bridge.directive, bridge.origin, bridge.account_id
        elif trunk is not None:
            directive = core.from_trunk(snap, trunk, call)
            origin = {"trunk_id": trunk.id}
            did = core.did_for(snap, call.dialled)
            did_id = did.id if did is not None else None
            origin_account = did.account_id if did is not None else trunk.account_id
        else:
            device = self.authenticate(snap, KSR.pv.getvs("$fd", "").lower())
            if device is None:
                return
            KSR.auth.consume_credentials()
            self.webrtc_caller = bool(device.is_webrtc)
            caller_user = device.user_id
            origin_account = device.account_id
            directive = core.from_device(snap, device, call)
            origin = {"device_id": device.id}
        direction = self.direction(directive, trunk is not None)
        self.trace(
            "route",
            decision=to_json(directive),
            account_id=getattr(directive, "account_id", None) or origin_account,
            direction=direction,
            **{"from": call.caller, "to": call.dialled},
            **origin,
        )
        facts = facts_from_route(
            call.call_id,
            directive,
            caller_user_id=caller_user,
            source_trunk_id=trunk.id if trunk is not None else None,
            did_id=did_id,
        )
        if facts is not None and not self.admit(snap, facts):
            return
        KSR.rr.record_route()
        if not isinstance(directive, Reject):
            self.track_dialog(directive.account_id, direction)
        self.relayed = False
        self.execute(snap, call, directive, in_failure=False)
        if self.admitted and not self.relayed:
            self.release_admission()  # answered statelessly: no dialog will end it

    # -- admission control (SPEC 15) ------------------------------------------------------------
    def admission(self) -> AdmissionStore:
        if self._admission is None:
            self._admission = AdmissionStore.from_url(self.settings.redis_url, ttl=43200)
        return self._admission

    def admit(self, snap: Snapshot, facts: CallFacts) -> bool:
        """One atomic decision over every limit; refuse with the dimension's SIP answer."""
        self.admitted = None
        decision = self.admission().admit(facts, snap.limits)
        self.trace("cac", **decision.trace())
        for alert in decision.alerts():
            self.trace("cac_alert", **alert)
        reject = decision.reject()
        if reject is not None:
            for header in decision.reply_headers():
                KSR.hdr.append_to_reply(f"{header}\r\n")
            KSR.sl.sl_send_reply(reject.code, reject.reason)
            # No dialog will report this call: close it here for the CDR.
            self.trace("call_failed", account_id=facts.account_id, code=reject.code,
                       reason="rejected_by_cac")  # fmt: skip
            return False
        self.admitted = decision.token
        KSR.pv.sets("$avp(sipio_cac)", decision.token)
        return True

    def release_admission(self) -> None:
        token = KSR.pv.getvs("$avp(sipio_cac)", "") or KSR.pv.getvs("$dlg_var(sipio_cac)", "")
        self.admission().release(KSR.pv.getvs("$ci", ""), accounts=token or None)
        self.admitted = None

    @staticmethod
    def direction(directive: Directive, from_trunk: bool) -> str:
        if from_trunk:
            return "inbound"
        return "outbound" if isinstance(directive, Outbound) else "internal"

    @staticmethod
    def track_dialog(account_id: str, direction: str) -> None:
        """Let the dialog module follow the call; its events end it in the trace and CDR."""
        KSR.dialog.dlg_manage()
        KSR.pv.sets("$dlg_var(sipio_account)", account_id)
        KSR.pv.sets("$dlg_var(sipio_direction)", direction)
        KSR.pv.sets("$dlg_var(sipio_cac)", KSR.pv.getvs("$avp(sipio_cac)", ""))

    def ksr_dialog_event(self, msg: Any, event: str) -> int:
        """dialog:start (answered), dialog:end (hung up or timed out), dialog:failed."""
        if event not in ("dialog:start", "dialog:end", "dialog:failed"):
            return 1
        try:
            account_id = KSR.pv.getvs("$dlg_var(sipio_account)", "")
            data: dict[str, Any] = {"account_id": account_id}
            if event == "dialog:start":
                kind = "call_answered"
            elif event == "dialog:end":
                kind = "call_ended"
                if KSR.is_BYE():
                    caller_tag = KSR.pv.getvs("$dlg(from_tag)", "")
                    by_caller = KSR.pv.getvs("$ft", "") == caller_tag
                    data["cause"] = "caller_bye" if by_caller else "callee_bye"
                else:
                    data["cause"] = "timeout"
            else:
                kind = "call_failed"
                status = str(KSR.pv.getvs("$rs", "") or "")
                if status.isdigit():  # the final reply itself (e.g. the callee's 487 after CANCEL)
                    data["code"], data["reason"] = int(status), KSR.pv.getvs("$rr", "")
                else:
                    data["code"] = int(KSR.pv.getvs("$T_reply_code", "0") or 0)
                    data["reason"] = KSR.pv.getvs("$T_reply_reason", "")
                if not data["code"]:  # a reply of our own (fail_call): no SIP reply to read
                    code, _, reason = KSR.pv.getvs("$dlg_var(sipio_reply)", "").partition(" ")
                    data["code"], data["reason"] = int(code or 0), reason
            # A reply of our own leaves a faked message here: the dialog knows its Call-ID.
            call_id = KSR.pv.getvs("$dlg(callid)", "") or KSR.pv.getvs("$ci", "")
            if kind != "call_answered":
                token = KSR.pv.getvs("$dlg_var(sipio_cac)", "")
                self.admission().release(call_id, accounts=token or None)
            KSR.info(f"sipio {self.events.add(kind, call_id, **data)}\n")
        finally:
            self.flush_events()
        return 1

    @staticmethod
    def rotate(key: str) -> int:
        return int(KSR.htable.sht_inc("rr", key))

    def execute(
        self, snap: Snapshot, call: core.Call, directive: Directive, in_failure: bool
    ) -> None:
        if isinstance(directive, Reject):
            self.reply(directive.code, directive.reason, in_failure)
        elif isinstance(directive, Ring):
            self.ring(snap, call, directive, 0, in_failure)
        elif isinstance(directive, Outbound):
            self.outbound(directive, in_failure)
        elif isinstance(directive, Media):
            self.media(directive, in_failure)

    def reply(self, code: int, reason: str, in_failure: bool) -> None:
        if in_failure:
            KSR.tm.t_reply(code, reason)
        else:
            KSR.sl.sl_send_reply(code, reason)

    def ring(
        self, snap: Snapshot, call: core.Call, ring: Ring, start: int, in_failure: bool
    ) -> None:
        """Fork to the registered contacts of the first step that has any; serial steps and the
        no-answer fallback continue in the failure route."""
        for index in range(start, len(ring.steps)):
            timeout = core.step_timeout(ring, index, elapsed())
            if timeout is None:
                break  # the ring group's overall time is used up
            if self.load_contacts(ring.steps[index]):
                if not in_failure:
                    self.webrtc_callees = rings_webrtc(snap, ring)
                self.stamp_caller_id(ring)
                save_plan(ring, index)
                KSR.tm.t_set_fr(timeout * 1000, 0)
                KSR.tm.t_on_failure("ksr_failure_ring")
                self.relay_call(in_failure)
                return
        self.trace("unreachable", target=ring.target.id)
        ctx = self.context(snap, call, ring.account_id, ring.caller_id)
        if ctx is None:
            self.reply(480, "Temporarily Unavailable", in_failure)
            return
        fallback = core.fallback(ctx, ring, busy=False)
        self.trace("fallback", reason="unreachable", decision=to_json(fallback))
        self.execute(snap, call, fallback, in_failure)

    def load_contacts(self, step: Step) -> bool:
        """Put every registered contact of the step's devices in the destination set; a leg
        with a delay becomes a branch back to this proxy that rings after the delay."""
        found = False
        KSR.resetbflag(WEBRTC_BFLAG)  # lookups set it again for WebRTC contacts
        for leg in step.legs:
            if leg.delay_sec > 0:
                uri = self.delayed.uri(leg, KSR.pv.getvs("$ci", ""))
                if not found:
                    KSR.pv.sets("$ru", uri)
                    found = True
                else:
                    KSR.corex.append_branch_uri(uri)
            elif not found:
                found = KSR.registrar.lookup_uri("location", leg.aor) > 0
            else:
                KSR.registrar.lookup_to_dset("location", leg.aor)
        return found

    # -- staggered ring-group legs --------------------------------------------------------------
    def delayed_leg(self) -> bool:
        """A branch this proxy sent to itself: hold it for the leg's delay, then ring."""
        leg = self.delayed.parse(KSR.pv.getvs("$ru", ""), KSR.pv.getvs("$ci", ""))
        if leg is None or not KSR.is_myself_srcip():
            return False
        KSR.pv.sets("$avp(sipio_leg_aor)", leg.aor)
        self.trace("leg_held", aor=leg.aor, delay_sec=leg.delay_sec)
        KSR.rr.record_route()
        # "async" is a Python keyword: the module is reached by name.
        if getattr(KSR, "async").ms_route("ksr_delayed_ring", leg.delay_sec * 1000) < 0:
            KSR.sl.sl_send_reply(500, "Server Internal Error")
        return True

    def ksr_delayed_ring(self, msg: Any) -> int:
        aor = KSR.pv.getvs("$avp(sipio_leg_aor)", "")
        if KSR.tm.t_is_canceled() > 0:
            self.trace("leg_dropped", aor=aor)
            self.flush_events()
            return 1  # answered elsewhere (or the caller gave up) while this leg waited
        self.trace("leg_released", aor=aor)
        self.flush_events()
        if KSR.registrar.lookup_uri("location", aor) < 0:
            KSR.tm.t_reply(480, "Temporarily Unavailable")
            return 1
        self.relay(in_failure=True)
        return 1

    def stamp_caller_id(self, ring: Ring) -> None:
        if ring.caller_id is None or not ring.caller_id.number:
            return
        KSR.hdr.remove("P-Asserted-Identity")
        name = (ring.caller_id.name or "").replace('"', "")
        domain = KSR.pv.getvs("$fd", "")
        KSR.hdr.append(f'P-Asserted-Identity: "{name}" <sip:{ring.caller_id.number}@{domain}>\r\n')

    def outbound(self, out: Outbound, in_failure: bool) -> None:
        KSR.resetbflag(WEBRTC_BFLAG)  # left by a ring step's lookup
        KSR.setdsturi(f"sip:{out.proxy};transport={out.transport}")
        KSR.pv.sets(trunk_auth.TRUNK_AVP, out.trunk_id)
        KSR.tm.t_on_failure("ksr_failure_trunk")  # a carrier's challenge is answered there
        KSR.pv.sets("$rU", out.number)
        KSR.pv.sets("$rd", out.proxy.split(":")[0])
        if out.caller_id and out.caller_id.number:
            host = out.proxy.split(":")[0]
            name = (out.caller_id.name or "").replace('"', "")
            KSR.hdr.remove("P-Asserted-Identity")
            KSR.hdr.append(f"P-Asserted-Identity: <sip:{out.caller_id.number}@{host}>\r\n")
            if not in_failure:
                KSR.uac.uac_replace_from(
                    f'"{name}"' if name else "", f"sip:{out.caller_id.number}@{host}"
                )
        self.relay_call(in_failure)

    def media(self, media: Media, in_failure: bool) -> None:
        KSR.resetbflag(WEBRTC_BFLAG)  # left by a ring step's lookup
        if KSR.dispatcher.ds_select_dst(1, 4) < 0:
            self.trace("media_unavailable", target=media.target.id)
            self.reply(503, "Service Unavailable", in_failure)
            return
        KSR.hdr.append(f"X-Sipio-Account: {media.account_id}\r\n")
        KSR.hdr.append(f"X-Sipio-Target: {media.target.kind.value}:{media.target.id}\r\n")
        if media.variables:
            KSR.hdr.append(
                f"X-Sipio-Vars: {json.dumps(media.variables, separators=(',', ':'))}\r\n"
            )
        self.relay_call(in_failure)

    def relay(self, in_failure: bool = False) -> None:
        if KSR.tm.t_relay() < 0 and not in_failure:
            KSR.sl.sl_reply_error()

    def relay_call(self, in_failure: bool) -> None:
        """Relay an initial INVITE: anchor its media first (once), fail fast without it."""
        if not in_failure:
            error = self.media_anchor.offer(self.webrtc_caller, per_branch=self.webrtc_callees)
            if error:
                self.trace("media_failed", stage="offer", error=error)
                KSR.sl.sl_send_reply(503, "Media Relay Unavailable")
                return
            if KSR.tm.t_is_set("failure_route") < 0:
                KSR.tm.t_on_failure("ksr_failure_media")
        if self.media_anchor.per_branch():
            KSR.tm.t_on_branch("ksr_branch_media")
        KSR.tm.t_on_reply("ksr_onreply_media")
        self.relay(in_failure)
        self.relayed = True

    def release_media(self, why: str) -> None:
        error = self.media_anchor.delete()
        if error:
            self.trace("media_failed", stage=f"delete({why})", error=error)

    def context(
        self, snap: Snapshot, call: core.Call, account_id: str, caller_id: Any
    ) -> core.Context | None:
        account = snap.accounts.get(account_id)
        return None if account is None else core.Context(snap, account, call, caller_id)

    # -- failure and reply routes ---------------------------------------------------------------
    def ksr_failure_ring(self, msg: Any) -> int:
        try:
            self.failure_ring()
        finally:
            self.flush_events()
        return 1

    def failure_ring(self) -> None:
        if KSR.tm.t_is_canceled() > 0:
            return  # the CANCEL already released the media
        loaded = load_plan()
        if loaded is None:
            return
        ring, index = loaded
        code = int(KSR.pv.getvs("$T_reply_code", "0") or 0)
        busy = code in BUSY_CODES
        snap = self.config.get()
        call = core.Call(
            call_id=KSR.pv.getvs("$ci", ""), dialled=KSR.pv.getvs("$rU", ""),
            caller=KSR.pv.getvs("$fU", ""), caller_name=None, now=datetime.now(UTC),
            rotate=self.rotate,
        )  # fmt: skip
        if not busy and index + 1 < len(ring.steps):
            KSR.tm.t_drop_replies("a")  # the next step's answer decides, not this failure
            self.ring(snap, call, ring, index + 1, in_failure=True)
            return
        ctx = self.context(snap, call, ring.account_id, ring.caller_id)
        if ctx is None:
            self.release_media("failed")
            return
        fallback = core.fallback(ctx, ring, busy=busy)
        self.trace("fallback", reason="busy" if busy else f"no_answer({code})",
                   decision=to_json(fallback))  # fmt: skip
        if isinstance(fallback, Reject):
            self.release_media("failed")
            KSR.tm.t_reply(fallback.code, fallback.reason)
            return
        KSR.tm.t_drop_replies("a")
        self.execute(snap, call, fallback, in_failure=True)

    def ksr_failure_media(self, msg: Any) -> int:
        """Outbound and media-node relays: nothing else to try, so the media goes."""
        try:
            if KSR.tm.t_is_canceled() < 0:
                self.release_media("failed")
        finally:
            self.flush_events()
        return 1

    # -- outbound digest auth (kemi/trunk_auth.py) ----------------------------------------------
    def ksr_failure_trunk(self, msg: Any) -> int:
        """Outbound through a trunk: answer one 401/407, otherwise as ksr_failure_media."""
        try:
            if KSR.tm.t_is_canceled() < 0:
                code = int(KSR.pv.getvs("$T_reply_code", "0") or 0)
                if code not in trunk_auth.CHALLENGES:
                    self.release_media("failed")
                elif not self.answer_trunk_challenge(code):
                    self.release_media("failed")
                    self.fail_call(*trunk_auth.FAILED)
        finally:
            self.flush_events()
        return 1

    def answer_trunk_challenge(self, code: int) -> bool:
        """Re-send the INVITE with the trunk's digest answer; False when it cannot be."""
        trunk_id = KSR.pv.getvs(trunk_auth.TRUNK_AVP, "")
        trunk = self.config.get().trunks.get(trunk_id)
        header = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
        result = trunk_auth.answer(
            trunk,
            KSR.pv.getvs(f"$T_rpl($hdr({header}))", ""),
            already_answered=KSR.pv.getvs(trunk_auth.ANSWERED_AVP, "") == "1",
            resolve=lambda ref: self.secret_store().resolve(ref),
        )
        if isinstance(result, trunk_auth.Refusal):
            self.trace("trunk_auth", trunk_id=trunk_id, code=code, outcome=result.outcome,
                       detail=result.detail)  # fmt: skip
            if result.outcome == "rejected" and trunk is not None and trunk.auth_secret_ref:
                self.secret_store().forget(trunk.auth_secret_ref)  # rotated: next call re-reads
            return False
        KSR.pv.sets(trunk_auth.USER_AVP, result.username)
        KSR.pv.sets(trunk_auth.REALM_AVP, result.realm)
        KSR.pv.sets(trunk_auth.HA1_AVP, result.ha1)
        KSR.pv.sets(trunk_auth.ANSWERED_AVP, "1")
        built = KSR.uac.uac_auth_mode(1)  # 1: the AVP holds an HA1
        KSR.pv.unset(trunk_auth.HA1_AVP)
        if built < 0:
            self.trace("trunk_auth", trunk_id=trunk_id, code=code, outcome="uac_failed")
            return False
        self.trace("trunk_auth", trunk_id=trunk_id, code=code, outcome="answered",
                   realm=result.realm)  # fmt: skip
        KSR.tm.t_on_failure("ksr_failure_trunk")  # a second challenge ends the call there
        KSR.tm.t_on_reply("ksr_onreply_media")
        if self.media_anchor.per_branch():
            KSR.tm.t_on_branch("ksr_branch_media")  # the re-sent INVITE is offered again
        return bool(KSR.tm.t_relay() > 0)

    @staticmethod
    def fail_call(code: int, reason: str) -> None:
        """Final answer of our own from a failure route; the dialog's call_failed reads it."""
        KSR.pv.sets("$dlg_var(sipio_reply)", f"{code} {reason}")
        KSR.tm.t_reply(code, reason)

    def secret_store(self) -> SecretStore:
        """The worker's store. Its cached values are re-checked when the config version moves:
        a password changed through the API (PATCH, rotate_secret) moves it, so every worker
        uses the new one from its next resolve, not after cache_ttl_sec."""
        if self._secrets is None:
            self._secrets = open_store(self.settings)
        version = self.config.get().version
        if version != self._secrets_version:
            self._secrets.revalidate()  # a store outage still leaves cached values usable
            self._secrets_version = version
        return self._secrets

    def ksr_branch_media(self, msg: Any) -> int:
        """A call that rings a WebRTC device: each branch gets its own offer; a branch that
        cannot be anchored is dropped (the others still ring)."""
        try:
            error = self.media_anchor.offer_branch()
            if error:
                self.trace("media_failed", stage="branch", error=error)
                KSR.x.drop()
        finally:
            self.flush_events()
        return 1

    def ksr_onreply_media(self, msg: Any) -> int:
        try:
            KSR.textops.remove_hf_re(PRIVATE_HEADERS)
            code = int(KSR.pv.getvs("$rs", "0") or 0)
            if 100 < code < 300:
                error = self.media_anchor.answer_reply()
                if error:
                    self.trace("media_failed", stage="answer", code=code, error=error)
        finally:
            self.flush_events()
        return 1

    def ksr_reply_route(self, msg: Any) -> int:
        KSR.textops.remove_hf_re(PRIVATE_HEADERS)
        return 1

    def ksr_onsend_route(self, msg: Any) -> int:
        """Required by app_python3 once tm relays: Kamailio calls it for every outgoing request."""
        return 1

    # -- trunk registration (kemi/trunk_registration.py) ----------------------------------------
    def ksr_trunk_registration(self, msg: Any, evname: str) -> int:
        """rtimer: REGISTER the trunks this node holds the lease of, when due."""
        try:
            now = time.time()
            for reg in trunk_registration.registrations(self.config.get(), self.node):
                if self.trunk_registrar.owns(reg.trunk_id) and trunk_registration.due(
                    self.trunk_registrar.state(reg.trunk_id), now, reg.expires
                ):
                    self.send_register(reg, now)
        except redis.RedisError as exc:
            KSR.warn(f"sipio trunk registration skipped, Redis: {exc}\n")
        finally:
            self.flush_events()
        return 1

    def send_register(self, reg: trunk_registration.Registration, now: float) -> None:
        try:
            password = self.secret_store().resolve(reg.secret_ref)
        except SecretStoreError as exc:
            self.trunk_registrar.mark(reg.trunk_id, "failed", now)
            self.trace_registration(reg, "secret_unavailable", detail=str(exc))
            return
        fields = {
            "method": "REGISTER", "ruri": reg.ruri, "furi": reg.aor, "turi": reg.aor,
            "ouri": reg.proxy, "callid": trunk_registration.cycle_call_id(reg, now),
            "evparam": reg.trunk_id,
            "hdrs": f"Contact: <{reg.contact}>\r\nExpires: {reg.expires}\r\n",
            "auser": reg.username, "apasswd": password,
        }  # fmt: skip
        KSR.pv.unset("$uac_req(all)")
        for name, value in fields.items():
            KSR.pv.sets(f"$uac_req({name})", value)
        KSR.pv.seti("$uac_req(evroute)", 1)  # the final reply (and a challenge) to ksr_uac_event
        sent = KSR.uac.uac_req_send()
        KSR.pv.unset("$uac_req(all)")  # the password does not stay in this process's buffer
        self.trunk_registrar.mark(reg.trunk_id, "sent" if sent > 0 else "failed", now)
        self.trace_registration(reg, "sent" if sent > 0 else "not_sent")

    def ksr_uac_event(self, msg: Any, evname: str) -> int:
        """uac:reply of a REGISTER sent by send_register."""
        try:
            trunk_id = KSR.pv.getvs("$uac_req(evparam)", "")
            code = int(KSR.pv.getvs("$uac_req(evcode)", "0") or 0)
            reg = trunk_registration.registration(
                self.config.get().trunks[trunk_id], self.node
            ) if trunk_id in self.config.get().trunks else None  # fmt: skip
            if reg is None:
                return 1
            state = trunk_registration.outcome(self.trunk_registrar.state(trunk_id), code)
            self.trunk_registrar.mark(trunk_id, state, time.time(), code)
            self.trace_registration(reg, state, code=code)
        except redis.RedisError as exc:
            KSR.warn(f"sipio trunk registration state not saved, Redis: {exc}\n")
        finally:
            self.flush_events()
        return 1

    def trace_registration(
        self, reg: trunk_registration.Registration, outcome: str, **data: Any
    ) -> None:
        text = self.events.add("trunk_register", reg.call_id, trunk_id=reg.trunk_id,
                               outcome=outcome, **data)  # fmt: skip
        KSR.info(f"sipio {text}\n")

    # -- tracing --------------------------------------------------------------------------------
    def trace(self, kind: str, **data: Any) -> None:
        KSR.info(f"sipio {self.events.add(kind, KSR.pv.getvs('$ci', ''), **data)}\n")

    def flush_events(self) -> None:
        error = self.events.flush()
        if error:
            KSR.warn(f"sipio events not written to Redis: {error}\n")
