"""Render Kamailio's native configuration for a stack from ``kamailio.cfg.tmpl``."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from control.rtpengine.pool import configured_nodes
from control.settings import Settings

TEMPLATE = Path(__file__).with_name("kamailio.cfg.tmpl")
ENTRY_SCRIPT = Path(__file__).with_name("entry.py")
_PLACEHOLDER = re.compile(r"@([a-z_]+)@")


def render(settings: Settings) -> str:
    values = {
        "children": str(settings.kamailio_children),
        "sip_host": settings.sip_host,
        "sip_port": str(settings.sip_port),
        "rpc_socket": str(settings.kamailio_rpc_socket),
        "run_dir": str(settings.run_dir),
        "kemi_entry": str(ENTRY_SCRIPT.resolve()),
        "digest_algorithm": settings.digest_algorithm,
        "min_expires": str(settings.registration_min_expires),
        "ul_timer": str(settings.registration_check_sec),
        "dispatcher_list": str(settings.dispatcher_list),
        "media_ping_interval": str(settings.media_ping_interval),
        "fr_timer": str(settings.sip_transaction_timeout_ms),
        # Key of the From/To restore data uac puts in Record-Route; new for each start.
        "uac_restore_secret": secrets.token_hex(8),
        "rtpengine_module": rtpengine_module(settings),
    }

    def substitute(match: re.Match[str]) -> str:
        return values[match.group(1)]  # KeyError: a placeholder the renderer does not know

    return _PLACEHOLDER.sub(substitute, TEMPLATE.read_text())


def rtpengine_module(settings: Settings) -> str:
    """The C rtpengine module's lines when it sends the ng commands (``media_driver``)."""
    if settings.media_driver != "module":
        return ""
    sockets = " ".join(f"udp:{n.host}:{n.port}={n.weight}" for n in configured_nodes(settings))
    return f'loadmodule "rtpengine.so"\nmodparam("rtpengine", "rtpengine_sock", "{sockets}")'


def render_dispatcher(settings: Settings) -> str:
    """dispatcher.list: set 1 holds the media nodes (may be empty)."""
    lines = ["# setid destination flags priority attributes"]
    lines += [f"1 {uri} 0 0" for uri in settings.media_nodes]
    return "\n".join(lines) + "\n"
