"""Text renderings for ``sipio cdr`` and ``sipio trace``: what an operator reads in a terminal."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from control.cdr.build import Row

CDR_COLUMNS = (
    ("start", 23), ("call_id", 24), ("account_id", 16), ("direction", 9), ("from_num", 14),
    ("to_num", 14), ("disposition", 11), ("duration_sec", 6), ("billsec", 6),
)  # fmt: skip


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def parse_when(value: str) -> int:
    """Epoch ms, or an ISO 8601 date / date-time (UTC unless it names an offset)."""
    if value.isdigit():
        return int(value)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def cdr_table(rows: Sequence[Row]) -> list[str]:
    lines = [" ".join(name.upper()[:width].ljust(width) for name, width in CDR_COLUMNS)]
    for row in rows:
        values = {**row, "start": when(row["start_ts"])}
        lines.append(
            " ".join(
                ("-" if values.get(n) is None else str(values[n]))[:w].ljust(w)
                for n, w in CDR_COLUMNS
            )
        )
    return lines


def timeline(rows: Sequence[Row]) -> list[str]:
    """One line per event: wall time, offset from the first event, emitter, type, details."""
    if not rows:
        return []
    first = rows[0]["ts"]
    lines = []
    for row in rows:
        details = []
        if row["node_id"]:
            details.append(f"node={row['node_id']}")
        if row["outcome"]:
            details.append(f"outcome={row['outcome']}")
        data = json.loads(row["data"] or "{}")
        if data:
            details.append(json.dumps(data, separators=(",", ":"), sort_keys=True))
        lines.append(
            f"{when(row['ts'])}  +{(row['ts'] - first) / 1000:8.3f}s  {row['emitter'] or '-':<5} "
            f"{row['type']:<17} {row['account_id'] or '-':<16} {' '.join(details)}"
        )
    return lines
