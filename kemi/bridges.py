"""The media engine's bridges coming back into the proxy (``X-Sipio-Dial``).

An INVITE is a bridge only when it carries ``X-Sipio-Dial`` **and** comes from a media node of
dispatcher set 1 (address and port: on a shared host the phones differ by port only). Such a
leg is not digest-authenticated: the node already holds an admitted, traced call of the
account it names. From anyone else the header means nothing: ``reqinit`` strips every
``X-Sipio-*`` header and the call takes the device (digest) or trunk path like any other.
Headers are read from the received message, so the stripping (a lump applied on relay) does
not hide them here and they never reach the callee.
"""

from __future__ import annotations

from dataclasses import dataclass

import KSR

from control.core.routing import resolve as core
from control.core.routing.directives import Directive
from control.core.routing.media_dial import from_media
from control.core.routing.model import Snapshot

MEDIA_SET = 1
MATCH_IGNORE_PROTO = 2  # ds_is_from_list mode: address and port must match


@dataclass(frozen=True)
class Bridge:
    account_id: str
    directive: Directive
    origin: dict[str, str]


def from_media_node(snap: Snapshot, call: core.Call) -> Bridge | None:
    """The bridge this INVITE is, or None when it is an ordinary call."""
    dial = KSR.pv.getvs("$hdr(X-Sipio-Dial)", "")
    if not dial:
        return None
    if KSR.dispatcher.ds_is_from_list_mode(MEDIA_SET, MATCH_IGNORE_PROTO) < 0:
        return None  # forged: the device or trunk path decides, the header is dropped
    account_id = KSR.pv.getvs("$hdr(X-Sipio-Account)", "").strip()
    node = f"{KSR.pv.getvs('$si', '')}:{KSR.pv.getvs('$sp', '')}"
    origin = {"media_node": node, "dial": dial.strip()}
    return Bridge(account_id, from_media(snap, account_id, dial, call), origin)
