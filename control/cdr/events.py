"""Stream entries as events, or as dead letters when they cannot be events.

An entry is one Redis stream entry whose field ``e`` is a JSON object with at least ``type``,
``call_id`` and ``ts`` (epoch ms). Everything else about an event is optional, so emitters can
add fields without a collector release; only an unusable envelope is a dead letter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    stream: str
    entry_id: str  # Redis stream id "ms-seq": the event's identity in the lake
    type: str
    call_id: str
    ts: int  # epoch ms, as the emitter stamped it
    body: Mapping[str, Any]  # the whole JSON object


@dataclass(frozen=True)
class DeadLetter:
    stream: str
    entry_id: str
    error: str
    raw: str  # the entry's fields as JSON, undecodable bytes escaped


Entry = Event | DeadLetter


def id_key(entry_id: str) -> tuple[int, int]:
    """Stream ids order numerically by (ms, seq), not as strings."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def newer(entry_id: str, than: str | None) -> bool:
    return than is None or id_key(entry_id) > id_key(than)


def highest(ids: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The highest entry id per stream of (stream, id) pairs."""
    top: dict[str, str] = {}
    for stream, entry_id in ids:
        if newer(entry_id, top.get(stream)):
            top[stream] = entry_id
    return top


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def parse(stream: str, entry_id: str, fields: Mapping[Any, Any] | None) -> Entry:
    raw_fields = {_text(k): _text(v) for k, v in (fields or {}).items()}
    raw = json.dumps(raw_fields, sort_keys=True)

    def dead(error: str) -> DeadLetter:
        return DeadLetter(stream, entry_id, error, raw)

    if "e" not in raw_fields:
        return dead("no field 'e'")
    try:
        body = json.loads(raw_fields["e"])
    except ValueError as exc:
        return dead(f"'e' is not JSON: {exc}")
    if not isinstance(body, dict):
        return dead("'e' is not a JSON object")
    kind, call_id, ts = body.get("type"), body.get("call_id"), body.get("ts")
    if not isinstance(kind, str) or not kind:
        return dead("'type' missing or not a non-empty string")
    if not isinstance(call_id, str) or not call_id:
        return dead("'call_id' missing or not a non-empty string")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts) or ts <= 0:
        return dead("'ts' missing or not a positive epoch-ms number")
    return Event(stream, entry_id, kind, call_id, int(ts), body)
