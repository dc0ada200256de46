"""Events → rows of ``call_events``, ``call_cdr`` and ``queue_cdr`` (SPEC 19.1-19.3). Pure.

Folding is a function of (rows known before, events in stream order): the collector can replay
a batch after a crash and get the same rows, which is what makes its commits idempotent. Every
event becomes an event row whatever its type; only the types below shape CDRs and queue rows.
Values of the wrong type in optional fields are ignored, never fatal: an event is never lost
because an emitter sent something unexpected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from control.cdr.events import DeadLetter, Event, id_key

Row = dict[str, Any]

CDR_TYPES = frozenset(
    {"route", "fallback", "call_answered", "call_ended", "call_failed", "queue_join",
     "queue_answer", "queue_abandon", "queue_timeout"}
)  # fmt: skip
# A CDR is started by these; other types only update a call already started.
CDR_STARTS = CDR_TYPES - {"fallback"}
QUEUE_TYPES = frozenset({"queue_join", "queue_answer", "queue_abandon", "queue_timeout"})
# A courtesy callback's life (esl/callbacks.py): only the queue row follows it.
CALLBACK_TYPES = frozenset({"queue_callback", "queue_callback_connected", "queue_callback_result"})
CALL_ENDS = frozenset({"call_ended", "call_failed"})
DIRECTIONS = frozenset({"inbound", "outbound", "internal"})
BUSY_CODES = frozenset({486, 600, 603})
ENVELOPE = frozenset({"type", "call_id", "ts", "account_id", "node_id", "outcome", "emitter"})
EMITTERS = {"flow_step": "flow", "admission": "cac", "cac": "cac", "cac_alert": "cac"} | {
    t: "acd" for t in QUEUE_TYPES
}


def _str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value else None


def _int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) else None


def _decision(event: Event) -> Mapping[str, Any]:
    decision = event.body.get("decision")
    return decision if isinstance(decision, dict) else {}


def event_account(event: Event) -> str | None:
    """The account an event names itself (``route`` carries it inside its decision)."""
    return _str(event.body, "account_id") or _str(_decision(event), "account_id")


# -- call_events ------------------------------------------------------------------------------
def event_rows(events: Iterable[Event], accounts: Mapping[str, str | None]) -> list[Row]:
    """One row per event; ``accounts`` fills the account of events that do not name one."""
    rows = []
    for ev in events:
        body = ev.body
        data = {k: v for k, v in body.items() if k not in ENVELOPE}
        node, outcome = body.get("node_id"), body.get("outcome")
        rows.append(
            {
                "call_id": ev.call_id,
                "ts": ev.ts,
                "account_id": event_account(ev) or accounts.get(ev.call_id),
                "emitter": _str(body, "emitter") or EMITTERS.get(ev.type, "sip"),
                "type": ev.type,
                "node_id": None if node is None else str(node),
                "outcome": None if outcome is None else str(outcome),
                "data": json.dumps(data, sort_keys=True, separators=(",", ":"), default=str),
                "stream": ev.stream,
                "stream_id": ev.entry_id,
            }
        )
    return rows


def dead_rows(dead: Iterable[DeadLetter]) -> list[Row]:
    return [
        {"stream": d.stream, "stream_id": d.entry_id, "received_ts": id_key(d.entry_id)[0],
         "error": d.error, "raw": d.raw}
        for d in dead
    ]  # fmt: skip


# -- call_cdr ---------------------------------------------------------------------------------
def new_cdr(call_id: str, ts: int) -> Row:
    return {
        "call_id": call_id, "account_id": None, "direction": None, "from_num": None,
        "to_num": None, "start_ts": ts, "answer_ts": None, "end_ts": None,
        "duration_sec": None, "billsec": None, "answered": 0, "disposition": "in_progress",
        "hangup_cause": None, "queue_id": None, "agent_id": None, "cost_micros": None,
        "sip_code": None, "route_kind": None, "device_id": None, "trunk_id": None,
        "updated_ts": ts,
    }  # fmt: skip


def failure_disposition(code: int | None, reason: str | None) -> str:
    if reason == "rejected_by_cac":
        return "rejected"
    if code in BUSY_CODES:
        return "busy"
    if code == 487:
        return "cancelled"
    if code in (408, 480):
        return "no_answer"
    return "failed"


def _end(row: Row, ts: int, code: int | None, cause: str | None) -> None:
    """A code of 0 is an emitter that could not read the final reply (one the proxy sent
    itself): what an earlier event of the call said stands."""
    row["end_ts"] = ts
    row["sip_code"] = code or row["sip_code"]
    row["hangup_cause"] = cause or (str(code) if code else row["hangup_cause"])
    if row["answered"]:
        row["disposition"] = "answered"
    else:
        row["disposition"] = failure_disposition(row["sip_code"], row["hangup_cause"])


def _route(row: Row, ev: Event) -> None:
    decision = _decision(ev)
    kind = _str(decision, "kind")
    row["start_ts"] = min(row["start_ts"], ev.ts)  # the routing decision starts the call
    row["route_kind"] = kind or row["route_kind"]
    row["device_id"] = _str(ev.body, "device_id") or row["device_id"]
    row["trunk_id"] = _str(ev.body, "trunk_id") or row["trunk_id"]
    row["from_num"] = _str(ev.body, "from") or row["from_num"]
    row["to_num"] = _str(ev.body, "to") or row["to_num"]
    direction = _str(ev.body, "direction")
    if direction not in DIRECTIONS:  # inferred until the emitter sends it
        direction = "inbound" if row["trunk_id"] else "outbound" if kind == "outbound" else None
        direction = direction or ("internal" if row["device_id"] else row["direction"])
    row["direction"] = direction
    if kind == "reject":  # replied at once: the call is over at routing time
        _end(row, ev.ts, _int(decision, "code"), _str(decision, "reason"))


def _fallback(row: Row, ev: Event) -> None:
    decision = _decision(ev)
    if _str(decision, "kind") == "reject" and row["end_ts"] is None:
        _end(row, ev.ts, _int(decision, "code"), _str(decision, "reason"))


def _answered(row: Row, ev: Event) -> None:
    if not row["answered"]:
        row["answered"], row["answer_ts"] = 1, ev.ts
        row["sip_code"] = row["sip_code"] or 200
    if row["end_ts"] is None:
        row["disposition"] = "answered"


def _ended(row: Row, ev: Event) -> None:
    row["end_ts"] = ev.ts
    row["hangup_cause"] = _str(ev.body, "cause") or row["hangup_cause"]
    row["sip_code"] = _int(ev.body, "code") if "code" in ev.body else row["sip_code"]
    row["disposition"] = "answered" if row["answered"] else "no_answer"
    row["cost_micros"] = _int(ev.body, "cost_micros") or row["cost_micros"]


def _failed(row: Row, ev: Event) -> None:
    _end(row, ev.ts, _int(ev.body, "code"), _str(ev.body, "reason"))


def _queue(row: Row, ev: Event) -> None:
    row["queue_id"] = _str(ev.body, "queue_id") or row["queue_id"]
    if ev.type == "queue_answer":
        row["agent_id"] = _str(ev.body, "agent_id") or row["agent_id"]


CDR_STEPS: dict[str, Callable[[Row, Event], None]] = {
    "route": _route, "fallback": _fallback, "call_answered": _answered, "call_ended": _ended,
    "call_failed": _failed,
}  # fmt: skip
CDR_STEPS.update({t: _queue for t in QUEUE_TYPES})


def _ceil_sec(ms: int) -> int:
    return max(0, -(-ms // 1000))


def apply_cdr(row: Row | None, ev: Event) -> Row | None:
    """The CDR after one event (a new dict), or None when the event starts no CDR."""
    step = CDR_STEPS.get(ev.type)
    if step is None or (row is None and ev.type not in CDR_STARTS):
        return row
    new = dict(row) if row is not None else new_cdr(ev.call_id, ev.ts)
    new["account_id"] = new["account_id"] or event_account(ev)
    step(new, ev)
    new["updated_ts"] = max(new["updated_ts"], ev.ts)
    end, answer = new["end_ts"], new["answer_ts"]
    new["duration_sec"] = None if end is None else _ceil_sec(end - new["start_ts"])
    new["billsec"] = None if end is None else _ceil_sec(end - answer) if answer else 0
    return new


def ended_unpriced(known: Mapping[str, Row], changed: Mapping[str, Row]) -> list[str]:
    """Calls these changes end that carry no cost yet (an emitter may send ``cost_micros``
    itself): the rate engine prices each call once, at its end."""
    return [
        call
        for call, row in changed.items()
        if row["end_ts"] is not None
        and row["cost_micros"] is None
        and (known.get(call) or {}).get("end_ts") is None
    ]


def fold_cdr(known: Mapping[str, Row], events: Iterable[Event]) -> dict[str, Row]:
    """CDR rows of the calls these events change, from the rows known before them."""
    changed: dict[str, Row] = {}
    for ev in events:
        before = changed.get(ev.call_id) or known.get(ev.call_id)
        after = apply_cdr(before, ev)
        if after is not None and after is not before:
            changed[ev.call_id] = after
    return changed


# -- queue_cdr (SPEC 19.3) --------------------------------------------------------------------
def new_queue_row(call_id: str, queue_id: str, account: str | None, ts: int) -> Row:
    return {
        "call_id": call_id, "queue_id": queue_id, "account_id": account, "agent_id": None,
        "enqueued_at": ts, "connected_at": None, "ended_at": None, "disposition": "offered",
    }  # fmt: skip


def apply_queue(row: Row, ev: Event) -> Row:
    """A callback row is ``callback`` from the request until the caller is reached
    (``answered``, connected then), given up (``callback_failed``) or expired (``timeout``);
    the caller's own hang-up after asking does not end it."""
    new = dict(row)
    callback = ev.type == "queue_answer" and ev.body.get("callback") is True
    if ev.type == "queue_callback" and new["connected_at"] is None:
        new["disposition"] = "callback"
    elif callback or (ev.type == "queue_callback_connected" and new["connected_at"] is not None):
        new["agent_id"] = _str(ev.body, "agent_id") or new["agent_id"]
    elif ev.type in ("queue_answer", "queue_callback_connected") and new["connected_at"] is None:
        new.update(connected_at=ev.ts, disposition="answered")
        new["agent_id"] = _str(ev.body, "agent_id") or new["agent_id"]
    elif ev.type == "queue_callback_result" and ev.body.get("retry") is not True:
        new["ended_at"] = ev.ts
        if new["disposition"] == "callback":
            new["disposition"] = "callback_failed"
    elif ev.type in ("queue_abandon", "queue_timeout") and new["connected_at"] is None:
        new.update(disposition="abandoned" if ev.type == "queue_abandon" else "timeout")
        new["ended_at"] = new["ended_at"] or ev.ts
    elif ev.type in CALL_ENDS and new["disposition"] == "callback":
        pass  # the caller hung up to be called back
    elif ev.type in CALL_ENDS and new["ended_at"] is None:
        new["ended_at"] = ev.ts  # hang-up after answer, or caller gone while still waiting
        new["disposition"] = "abandoned" if new["disposition"] == "offered" else new["disposition"]
    return new


def fold_queues(
    known: Mapping[str, Mapping[str, Row]],
    events: Iterable[Event],
    accounts: Mapping[str, str | None],
) -> dict[tuple[str, str], Row]:
    """Queue rows, keyed (call_id, queue_id), that these events change."""
    changed: dict[str, dict[str, Row]] = {}
    for ev in events:
        per_queue = ev.type in QUEUE_TYPES or ev.type in CALLBACK_TYPES
        if not per_queue and ev.type not in CALL_ENDS:
            continue
        rows = changed.get(ev.call_id)
        if rows is None:
            rows = dict(known.get(ev.call_id, {}))
        if per_queue:
            queue_id = _str(ev.body, "queue_id")
            if queue_id is None:
                continue
            row = rows.get(queue_id)
            if row is None:
                account = event_account(ev) or accounts.get(ev.call_id)
                row = new_queue_row(ev.call_id, queue_id, account, ev.ts)
            rows[queue_id] = row if ev.type == "queue_join" else apply_queue(row, ev)
        else:
            rows = {queue_id: apply_queue(row, ev) for queue_id, row in rows.items()}
        changed[ev.call_id] = rows
    return {
        (c, q): r
        for c, rows in changed.items()
        for q, r in rows.items()
        if known.get(c, {}).get(q) != r
    }


def needs_lookup(events: Iterable[Event], known: Mapping[str, Row]) -> set[str]:
    """Calls whose stored rows must be read before folding: an update for a call not in memory
    (evicted, or ended before a restart) must replace its row, not add a second one. A call
    routed earlier in the same events is new, not missing."""
    routed: set[str] = set()
    missing: set[str] = set()
    for ev in events:
        if ev.type == "route":
            routed.add(ev.call_id)
        elif ev.type in CDR_TYPES and ev.call_id not in known and ev.call_id not in routed:
            missing.add(ev.call_id)
    return missing
