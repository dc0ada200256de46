"""Reading the lake: CDR pages (``GET /v1/calls``, ``sipio cdr``) and call traces.

Pages are keyset-paginated on (start_ts, call_id). Files are planned once for the whole window,
then read one day partition at a time, oldest first, until the page is full: a page costs the
days it spans, not the window. A trace finds the call's CDR first, so that the event scan is
limited to the call's account and days instead of the whole table.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.io.pyarrow import ArrowScan

from control.cdr.build import Row
from control.cdr.events import id_key
from control.cdr.expr import And, BooleanExpression, Or, eq, ge, is_in, is_null, lt
from control.cdr.lake import Lake
from control.cdr.tables import CALL_CDR, CALL_EVENTS, TableSpec

CDR_FIELDS = tuple(n for n, _, _ in CALL_CDR.columns if n != CALL_CDR.time_col)
EVENT_FIELDS = tuple(n for n, _, _ in CALL_EVENTS.columns if n != CALL_EVENTS.time_col)
TRACE_MARGIN_MS = 3_600_000  # events of a call may precede its routing (auth) or trail its end
ORDER = [("start_ts", "ascending"), ("call_id", "ascending")]


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_cursor: str | None


def encode_cursor(start_ts: int, call_id: str) -> str:
    return base64.urlsafe_b64encode(f"{start_ts}:{call_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor("bad cursor") from None
    ts, sep, call_id = text.partition(":")
    if not sep or not ts.isdigit() or not call_id or len(ts) > 16:
        raise BadCursor("bad cursor")
    return int(ts), call_id


def list_calls(
    lake: Lake,
    *,
    accounts: Iterable[str] | None,
    since: int,
    until: int,
    limit: int,
    cursor: tuple[int, str] | None = None,
    filters: Mapping[str, str] | None = None,
) -> Page:
    """CDRs with since <= start_ts < until, in (start_ts, call_id) order, after ``cursor``.
    ``accounts`` None means every account; an empty set means none."""
    table = lake.table_or_none(CALL_CDR)
    allowed = None if accounts is None else set(accounts)
    low = since if cursor is None else max(since, cursor[0])
    if table is None or allowed == set() or low >= until:
        return Page([], None)
    where = And(
        ge("start_ts", low), lt("start_ts", until),
        ge("start_time", low * 1000), lt("start_time", until * 1000),
    )  # fmt: skip
    if allowed is not None:
        where = And(where, is_in("account_id", allowed))
    for column, value in (filters or {}).items():
        where = And(where, eq(column, value))
    scan = table.scan(row_filter=where)
    reader = ArrowScan(table.metadata, table.io, scan.projection(), scan.row_filter)
    found: list[pa.Table] = []
    count = 0
    for tasks in _by_day(scan.plan_files()):
        part = reader.to_table(tasks)
        if cursor is not None:
            after = pc.or_(
                pc.greater(part["start_ts"], cursor[0]),
                pc.and_(
                    pc.equal(part["start_ts"], cursor[0]), pc.greater(part["call_id"], cursor[1])
                ),
            )
            part = part.filter(after)
        found.append(part)
        count += part.num_rows
        if count >= limit:
            break
    if not found:
        return Page([], None)
    page = pa.concat_tables(found).sort_by(ORDER).slice(0, limit)
    rows = page.select(list(CDR_FIELDS)).to_pylist()
    full = len(rows) == limit
    return Page(rows, encode_cursor(rows[-1]["start_ts"], rows[-1]["call_id"]) if full else None)


def _by_day(tasks: Iterable[Any]) -> Iterator[list[Any]]:
    """File tasks grouped by their day partition (field 0 of the spec), oldest first."""
    days: dict[int, list[Any]] = {}
    for task in tasks:
        partition = task.file.partition
        day = partition[0] if len(partition) else 0
        days.setdefault(int(day) if day is not None else 0, []).append(task)
    for day in sorted(days):
        yield days[day]


def trace(lake: Lake, call_id: str, accounts: Iterable[str] | None = None) -> list[Row]:
    """Every event of a call, in time order (ties in stream order)."""
    allowed = None if accounts is None else set(accounts)
    where: BooleanExpression = eq("call_id", call_id)
    cdrs = lake.read(CALL_CDR, where, ("account_id", "start_ts", "end_ts")).to_pylist()
    if cdrs:
        start = min(c["start_ts"] for c in cdrs)
        end = max((c["end_ts"] or int(time.time() * 1000)) for c in cdrs)
        low, high = (start - TRACE_MARGIN_MS) * 1000, (end + TRACE_MARGIN_MS) * 1000
        where = And(where, ge("event_time", low), lt("event_time", high))
        owners = {c["account_id"] for c in cdrs if c["account_id"]}
        if owners:
            where = And(where, Or(is_in("account_id", owners), is_null("account_id")))
    rows: list[Row] = lake.read(CALL_EVENTS, where, EVENT_FIELDS).to_pylist()
    if allowed is not None:
        rows = [r for r in rows if r["account_id"] in allowed]
    rows.sort(key=lambda r: (r["ts"], id_key(r["stream_id"])))
    return rows


def to_csv(rows: Sequence[Row], fields: Sequence[str]) -> str:
    """RFC 4180: CRLF line ends, quotes only where needed, empty for null."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow(["" if row.get(f) is None else row[f] for f in fields])
    return out.getvalue()


def table_fields(spec: TableSpec) -> tuple[str, ...]:
    return tuple(n for n, _, _ in spec.columns if n != spec.time_col)
