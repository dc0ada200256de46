"""Keep admission counters honest against the calls Kamailio really has.

Kamailio's dialog module is the truth about live calls (``dlg.list`` over JSON-RPC). A worker
that crashed, a lost BYE that timed the dialog out, or a restarted Kamailio leave counters in
Redis for calls that no longer exist; a Redis restart loses counters of calls that do. One
reconcile pass repairs both: counters of dead calls are released, live calls Redis forgot are
counted again from the admission token kept in their dialog variables.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from control.kamailio import KamailioRpc
from control.live.admission import AdmissionStore
from control.live.reconcile import Report, reconcile

TOKEN_VAR = "sipio_cac"


def _dialogs(listing: Any) -> Iterator[dict[str, Any]]:
    if isinstance(listing, dict):
        if "call-id" in listing:
            yield listing
        else:
            for value in listing.values():
                yield from _dialogs(value)
    elif isinstance(listing, list):
        for item in listing:
            yield from _dialogs(item)


def _token(dialog: dict[str, Any]) -> str | None:
    variables = dialog.get("variables") or []
    if isinstance(variables, dict):
        variables = [variables]
    for entry in variables:
        if isinstance(entry, dict) and entry.get(TOKEN_VAR):
            return str(entry[TOKEN_VAR])
    return None


# dlg.list also shows dialogs that already ended (state 5, "deleted") until the dialog module
# frees them; adopting one would count a finished call again.
ENDED = 5


def live_calls(rpc: KamailioRpc) -> dict[str, str | None]:
    """Call-id -> admission token of every dialog Kamailio holds that has not ended."""
    return {
        str(d["call-id"]): _token(d)
        for d in _dialogs(rpc.call("dlg.list"))
        if d.get("state") != ENDED
    }


def reconcile_once(rpc: KamailioRpc, store: AdmissionStore, grace: float = 5.0) -> Report:
    live = live_calls(rpc)
    adopt = {call_id: token for call_id, token in live.items() if token}
    return reconcile(
        store, set(live), grace=grace, adopt=adopt, still_live=lambda: set(live_calls(rpc))
    )


def run(rpc: KamailioRpc, store: AdmissionStore, every: float, grace: float) -> Iterator[Report]:
    """A report per pass, forever (the caller decides when to stop)."""
    while True:
        yield reconcile_once(rpc, store, grace)
        time.sleep(every)
