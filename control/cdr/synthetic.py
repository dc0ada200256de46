"""Synthetic call traffic in the event contract, for the crash test and ``bench/cdr_rate.py``.

Deterministic for a seed, so a test can compare the lake with the pure builder's result. Calls
cycle through the shapes the platform produces: internal and outbound calls answered and hung
up, inbound calls through a queue (answered, abandoned, timed out), busy and CAC rejections,
no answer, flow steps, an event type the collector has never heard of, and registrations
(events that belong to no call CDR). Every ``malformed_every``-th entry is garbage.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

SHAPES = ("internal", "outbound", "queue_answered", "busy", "queue_abandoned", "no_answer",
          "cac_rejected", "queue_timeout", "flow", "internal")  # fmt: skip


def call_events(
    index: int, start_ms: int, accounts: int, rng: random.Random
) -> list[dict[str, Any]]:
    call = f"call-{index:07d}@synthetic"
    account = f"acc_{index % accounts:04d}"
    shape = SHAPES[index % len(SHAPES)]
    t = start_ms
    ring = {"kind": "ring", "account_id": account}
    out: list[dict[str, Any]] = []

    def add(kind: str, dt: int = 0, **data: Any) -> None:
        nonlocal t
        t += dt
        out.append({"type": kind, "call_id": call, "ts": t, **data})

    number = f"+1555{index:07d}"
    if shape in ("internal", "flow"):
        add("auth", outcome="ok", user=f"u{index}", realm="synthetic.test")
        add(
            "route",
            1,
            decision=ring,
            device_id=f"dev_{index % 97}",
            **{"from": "1001", "to": "1002"},
        )
        if shape == "flow":
            add(
                "flow_step",
                5,
                account_id=account,
                node_id="n1",
                outcome="next",
                data={"digits": "1"},
            )
            add("flow_step", 5, account_id=account, node_id="n2", outcome="play")
            add("sip_invite_seen", 1, account_id=account)  # a type no version knows yet
        add("call_answered", rng.randint(500, 4000), account_id=account)
        add("call_ended", rng.randint(1000, 90000), account_id=account,
            cause=rng.choice(["caller_bye", "callee_bye"]), code=200)  # fmt: skip
    elif shape == "outbound":
        out_decision = {"kind": "outbound", "account_id": account, "number": number}
        add("route", 0, decision=out_decision, device_id="dev_1", **{"from": "1001", "to": number})
        add("call_answered", rng.randint(2000, 9000), account_id=account)
        add(
            "call_ended",
            rng.randint(1000, 300000),
            account_id=account,
            cause="callee_bye",
            code=200,
        )
    elif shape.startswith("queue"):
        media = {"kind": "media", "account_id": account}
        add("route", 0, decision=media, trunk_id="tr_1", **{"from": number, "to": "+15550000"})
        add("queue_join", 200, account_id=account, queue_id="q_sales")
        if shape == "queue_answered":
            add("queue_answer", rng.randint(1000, 30000), account_id=account, queue_id="q_sales",
                agent_id=f"us_agent{index % 7}")  # fmt: skip
            add("call_answered", 10, account_id=account)
            add(
                "call_ended",
                rng.randint(5000, 200000),
                account_id=account,
                cause="caller_bye",
                code=200,
            )
        else:
            kind = "queue_abandon" if shape == "queue_abandoned" else "queue_timeout"
            add(kind, rng.randint(1000, 60000), account_id=account, queue_id="q_sales")
            add("call_failed", 5, account_id=account, code=487, reason="Request Terminated")
    elif shape == "busy":
        busy = {"kind": "reject", "account_id": account, "code": 486, "reason": "Busy Here"}
        add("route", 0, decision=busy, device_id="dev_2", **{"from": "1003", "to": "1004"})
    elif shape == "no_answer":
        add("route", 0, decision=ring, device_id="dev_3", **{"from": "1005", "to": "1006"})
        gone = {"kind": "reject", "code": 480, "reason": "Temporarily Unavailable"}
        add("fallback", 30000, reason="no_answer(408)", decision=gone)
        add("call_failed", 2, account_id=account, code=480, reason="Temporarily Unavailable")
    else:  # cac_rejected
        add("route", 0, decision=ring, device_id="dev_4", **{"from": "1007", "to": "1008"})
        add("admission", 1, account_id=account, admitted=False, code=503, dimension="account")
        add("call_failed", 1, account_id=account, code=503, reason="rejected_by_cac")
    return out


def traffic(
    calls: int,
    *,
    start_ms: int,
    accounts: int = 5,
    seed: int = 7,
    malformed_every: int = 1000,
    interleave: int = 50,
) -> Iterator[dict[str, str]]:
    """Stream entries (field dicts for XADD) of ``calls`` calls, ``interleave`` calls in flight
    at a time so that a call's events spread over several batches."""
    rng = random.Random(seed)
    flying: list[list[dict[str, Any]]] = []
    produced = 0
    next_call = 0
    while next_call < calls or flying:
        while next_call < calls and len(flying) < interleave:
            flying.append(call_events(next_call, start_ms + next_call * 37, accounts, rng))
            if next_call % 20 == 0:  # a registration: events, but no CDR
                reg = {"type": "register", "call_id": f"reg-{next_call}@synthetic",
                       "ts": start_ms + next_call * 37, "account_id": "acc_0000",
                       "user_id": "us_1", "device_id": "dev_1", "aor": "1001@synthetic.test",
                       "source": "127.0.0.1"}  # fmt: skip
                flying.append([reg])
            next_call += 1
        pick = rng.randrange(len(flying))
        event = flying[pick].pop(0)
        if not flying[pick]:
            flying.pop(pick)
        produced += 1
        if malformed_every and produced % malformed_every == 0:
            yield {"e": "{not json"}
        yield {"e": json.dumps(event, separators=(",", ":"))}
