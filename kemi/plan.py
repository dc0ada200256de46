"""Carry a Ring decision from the request route to the failure route in transaction AVPs."""

from __future__ import annotations

import json
import time

import KSR

from control.core.routing.directives import CallerId, Leg, Ring, Step, target_from_json, target_json


def save_plan(ring: Ring, index: int) -> None:
    """Keep the plan and the current step; the start time is set once, by the first step."""
    data = {
        "account_id": ring.account_id,
        "target": target_json(ring.target),
        "steps": [
            {
                "timeout": s.timeout_sec,
                "legs": [[leg.aor, leg.device_id, leg.delay_sec] for leg in s.legs],
            }
            for s in ring.steps
        ],
        "overall": ring.overall_sec,
        "no_answer": target_json(ring.no_answer),
        "busy": target_json(ring.busy),
        "cid": [ring.caller_id.number, ring.caller_id.name] if ring.caller_id else None,
        "depth": ring.depth,
    }
    KSR.pv.sets("$avp(sipio_plan)", json.dumps(data, separators=(",", ":")))
    KSR.pv.seti("$avp(sipio_step)", index)
    if KSR.pv.is_null("$avp(sipio_started)"):
        KSR.pv.sets("$avp(sipio_started)", str(time.time()))


def elapsed() -> float:
    """Seconds since the plan's first step started ringing."""
    started = KSR.pv.getvs("$avp(sipio_started)", "")
    return time.time() - float(started) if started else 0.0


def load_plan() -> tuple[Ring, int] | None:
    raw = KSR.pv.getvs("$avp(sipio_plan)", "")
    if not raw:
        return None
    data = json.loads(raw)
    target = target_from_json(data["target"])
    assert target is not None
    ring = Ring(
        account_id=data["account_id"],
        target=target,
        steps=tuple(
            Step(tuple(Leg(aor, dev, delay) for aor, dev, delay in s["legs"]), s["timeout"])
            for s in data["steps"]
        ),
        overall_sec=data["overall"],
        no_answer=target_from_json(data["no_answer"]),
        busy=target_from_json(data["busy"]),
        caller_id=CallerId(*data["cid"]) if data["cid"] else None,
        depth=data["depth"],
    )
    return ring, int(KSR.pv.getvs("$avp(sipio_step)", "0") or 0)
