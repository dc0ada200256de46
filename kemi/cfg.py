"""Render Kamailio's native configuration for a stack from ``kamailio.cfg.tmpl``."""

from __future__ import annotations

import re
from pathlib import Path

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
    }

    def substitute(match: re.Match[str]) -> str:
        return values[match.group(1)]  # KeyError: a placeholder the renderer does not know

    return _PLACEHOLDER.sub(substitute, TEMPLATE.read_text())
