"""SIP request handling inside Kamailio, one small method per concern.

The object is created in Kamailio's main process and copied into every worker by ``fork``:
anything holding a socket (Redis, rtpengine, DB) must be created lazily in the worker, never in
``__init__`` or ``mod_init``, or all workers would share one connection.

Return convention of app_python3: a method returns 1 to Kamailio; helpers return ``True`` when
they finished the request (reply sent or relayed) and the caller must stop.
"""

from __future__ import annotations

from typing import Any

import KSR  # provided by app_python3 inside Kamailio

from control.settings import Settings

SCANNER_AGENTS = ("friendly-scanner", "sipcli", "sipvicious", "sip-scan", "VaxSIPUserAgent")
MAX_HOPS = 10


class Router:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rank: int | None = None

    @classmethod
    def from_env(cls) -> Router:
        return cls(Settings.from_env())

    # -- lifecycle ------------------------------------------------------------------------------
    def child_init(self, rank: int) -> int:
        self.rank = rank
        return 0

    # -- request_route --------------------------------------------------------------------------
    def ksr_request_route(self, msg: Any) -> int:
        if self.reqinit():
            return 1
        self.natdetect()
        if KSR.is_CANCEL():
            if KSR.tm.t_check_trans() > 0:
                self.relay()
            return 1
        if self.withindlg():
            return 1
        if self.retransmission():
            return 1
        KSR.hdr.remove("Route")
        self.no_route()
        return 1

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
        """Initial requests with no decision yet: refuse, without relaying (never an open relay)."""
        KSR.sl.sl_send_reply(404, "Not Found")

    def relay(self) -> None:
        if KSR.tm.t_relay() < 0:
            KSR.sl.sl_reply_error()

    # -- other routes ---------------------------------------------------------------------------
    def ksr_reply_route(self, msg: Any) -> int:
        return 1

    def ksr_onsend_route(self, msg: Any) -> int:
        """Required by app_python3 once tm relays: Kamailio calls it for every outgoing request."""
        return 1
