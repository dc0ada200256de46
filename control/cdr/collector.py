"""The collector: Redis stream entries → Iceberg rows, exactly once.

One loop per process. Entries are read through a consumer group, gathered into a batch (by size
or age), turned into rows, committed table by table, and only then acknowledged. A process
killed anywhere leaves its entries pending; its successor (same consumer name) reads them again,
and each table's ``sipio.offsets`` tells which of them it already holds (``lake.py``).

Ownership: the offsets are per-stream watermarks, so a stream must have one writer at a time.
A lease in Redis (``sipio:collector:lock:<stream>``, renewed every loop) enforces it; scale out
by sharding events over several streams, one collector each.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow.compute as pc
import redis
import structlog

from control.cdr import build
from control.cdr.build import Row
from control.cdr.events import DeadLetter, Entry, Event, highest, newer, parse
from control.cdr.expr import And, ge, is_in, is_null
from control.cdr.lake import Lake, ms_to_us, rows_filter
from control.cdr.rates import RateBook
from control.cdr.tables import CALL_CDR, CALL_EVENTS, DEAD_LETTERS, QUEUE_CDR, TABLES, TableSpec
from control.core.rating import cost_micros
from control.settings import Settings

log = structlog.get_logger("collector")

HEARTBEAT_TTL_MS = 60_000
ENDED_GRACE_MS = 10 * 60_000  # ended calls stay in memory this long for late events
TRIM_EVERY_SEC = 10.0
EXPIRE_EVERY_SEC = 60.0
TRIMMED = "entry trimmed from the stream before it was stored"
LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


def heartbeat_key(consumer: str) -> str:
    return f"sipio:collector:{consumer}"


def lock_key(stream: str) -> str:
    return f"sipio:collector:lock:{stream}"


class LeaseLost(Exception):
    """Another collector owns a stream now: drop in-memory state and start over."""


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Collector:
    def __init__(
        self, settings: Settings, *, lake: Lake | None = None, rates: RateBook | None = None
    ) -> None:
        self.settings = settings
        self.streams = list(settings.event_streams)
        self.group = settings.collector_group
        self.consumer = settings.collector_consumer
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=10.0)
        self.lake = lake or Lake(settings)
        self.rates = rates or RateBook(settings.db_url)
        self._lease = self.redis.register_script(LEASE)
        self.stats: dict[str, int] = {"entries": 0, "batches": 0, "dead_letters": 0, "unrated": 0}
        self._last_trim = self._last_expire = 0.0
        self._reset()

    def _reset(self) -> None:
        """In-memory view of recent calls, as the lake holds them (never ahead of it)."""
        self.cdr: dict[str, Row] = {}
        self.stored_cdr: dict[str, tuple[str | None, int]] = {}  # call → (account, start_ts)
        self.queues: dict[str, dict[str, Row]] = {}
        self.stored_queues: dict[str, list[tuple[str | None, int]]] = {}
        self.max_ts = 0

    # -- service loop -----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._heartbeat("starting")
                if not self._acquire(stop):
                    return
                self.lake.ensure()
                self._reset()
                self._recover()
                self._claim_orphans()
                self._loop(stop)
            except LeaseLost as exc:
                log.warning("lease lost; starting over", detail=str(exc))
            except Exception:  # a service keeps going: state is rebuilt from the lake
                log.exception("collector error; retrying from the lake's state")
                stop.wait(1.0)
        self._heartbeat("stopped")

    def _acquire(self, stop: threading.Event) -> bool:
        ttl = int(self.settings.collector_lock_ttl_sec * 1000)
        while not stop.is_set():
            held = [
                s
                for s in self.streams
                if not self._lease(keys=[lock_key(s)], args=[self.consumer, ttl])
            ]
            if not held:
                for stream in self.streams:
                    try:
                        self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
                    except redis.ResponseError as exc:
                        if "BUSYGROUP" not in str(exc):
                            raise
                return True
            self._heartbeat("waiting", detail=f"streams leased by another collector: {held}")
            stop.wait(1.0)
        return False

    def _renew(self) -> None:
        ttl = int(self.settings.collector_lock_ttl_sec * 1000)
        for stream in self.streams:
            if not self._lease(keys=[lock_key(stream)], args=[self.consumer, ttl]):
                raise LeaseLost(f"stream {stream} is leased by another collector")

    def _loop(self, stop: threading.Event) -> None:
        size, age = self.settings.collector_batch_size, self.settings.collector_batch_sec
        pending = {s: "0" for s in self.streams}  # own unacknowledged entries come first
        batch: list[Entry] = []
        started = 0.0
        while not stop.is_set():
            self._renew()
            self._heartbeat("running")
            room = size - len(batch)
            recovering = bool(pending)
            if recovering:
                got = self._read(pending, room, None)
                for stream in list(pending):
                    ids = [e.entry_id for e in got if e.stream == stream]
                    if ids:
                        pending[stream] = ids[-1]
                    else:
                        del pending[stream]
            else:
                wait = age - (time.monotonic() - started) if batch else age
                block = max(1, int(min(wait, 1.0) * 1000))
                got = self._read({s: ">" for s in self.streams}, room, block)
            if got and not batch:
                started = time.monotonic()
            batch.extend(got)
            aged = time.monotonic() - started >= age
            if batch and (len(batch) >= size or (not pending and (recovering or aged))):
                self.flush(batch)
                batch = []
            self._trim()
            self._expire()

    def _read(self, ids: Mapping[str, str], count: int, block: int | None) -> list[Entry]:
        streams: dict[Any, Any] = dict(ids)
        reply: Any = self.redis.xreadgroup(
            self.group, self.consumer, streams, count=count, block=block
        )
        entries: list[Entry] = []
        for stream_name, items in reply or []:
            stream = _s(stream_name)
            for entry_id, fields in items:
                if not fields:  # still pending, but trimmed away before it was stored
                    entries.append(DeadLetter(stream, _s(entry_id), TRIMMED, ""))
                else:
                    entries.append(parse(stream, _s(entry_id), fields))
        return entries

    # -- one batch --------------------------------------------------------------------------
    def flush(self, batch: Sequence[Entry]) -> None:
        """Commit the batch's rows table by table, then acknowledge it. Each table only gets
        the entries past its own offsets, so a batch replayed after a crash that hit between
        two table commits completes the missing tables and duplicates nothing."""
        top = highest((e.stream, e.entry_id) for e in batch)
        marks = {spec.name: self.lake.offsets(spec) for spec in TABLES}

        def fresh(spec: TableSpec) -> list[Entry]:
            mark = marks[spec.name]
            return [e for e in batch if newer(e.entry_id, mark.get(e.stream))]

        dead = [e for e in fresh(DEAD_LETTERS) if isinstance(e, DeadLetter)]
        for_events = [e for e in fresh(CALL_EVENTS) if isinstance(e, Event)]
        for_cdr = [e for e in fresh(CALL_CDR) if isinstance(e, Event)]
        for_queues = [e for e in fresh(QUEUE_CDR) if isinstance(e, Event)]
        self._lookup(build.needs_lookup([*for_cdr, *for_queues], self.cdr))

        cdr = build.fold_cdr(self.cdr, for_cdr)
        self._price(build.ended_unpriced(self.cdr, cdr), cdr)
        accounts = _Accounts(cdr, self.cdr)
        queues = build.fold_queues(self.queues, for_queues, accounts)
        queue_calls = {call for call, _ in queues}
        queue_rows = {c: dict(self.queues.get(c, {})) for c in queue_calls}
        for (call, queue_id), row in queues.items():
            queue_rows[call][queue_id] = row

        self.lake.commit(DEAD_LETTERS, top, build.dead_rows(dead))
        self.lake.commit(CALL_EVENTS, top, build.event_rows(for_events, accounts))
        self.lake.commit(
            CALL_CDR,
            top,
            list(cdr.values()),
            rows_filter(CALL_CDR, [(*self.stored_cdr[c], c) for c in cdr if c in self.stored_cdr]),
        )
        self.lake.commit(
            QUEUE_CDR,
            top,
            [row for rows in queue_rows.values() for row in rows.values()],
            rows_filter(QUEUE_CDR, [(a, ms, c) for c in queue_calls
                                    for a, ms in self.stored_queues.get(c, [])]),
        )  # fmt: skip
        self._ack(batch)

        for call, row in cdr.items():
            self.cdr[call] = row
            self.stored_cdr[call] = (row["account_id"], row["start_ts"])
        for call, rows in queue_rows.items():
            self.queues[call] = rows
            self.stored_queues[call] = [(r["account_id"], r["enqueued_at"]) for r in rows.values()]
        self.max_ts = max([self.max_ts, *(e.ts for e in batch if isinstance(e, Event))])
        self.stats["entries"] += len(batch)
        self.stats["batches"] += 1
        self.stats["dead_letters"] += len(dead)
        self._evict()

    def _price(self, calls: list[str], cdr: dict[str, Row]) -> None:
        """Cost of the calls this batch ends, from their accounts' rate tables."""
        tables = self.rates.tables({cdr[c]["account_id"] for c in calls if cdr[c]["account_id"]})
        for call in calls:
            row = cdr[call]
            table = tables.get(row["account_id"]) if row["account_id"] else None
            cost = cost_micros(
                table, row["direction"], row["to_num"], bool(row["answered"]), row["billsec"]
            )
            cdr[call] = {**row, "cost_micros": cost}
            self.stats["unrated"] += cost is None

    def _ack(self, batch: Iterable[Entry]) -> None:
        by_stream: dict[str, list[str]] = {}
        for entry in batch:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        pipe = self.redis.pipeline(transaction=False)
        for stream, ids in by_stream.items():
            for start in range(0, len(ids), 10_000):
                pipe.xack(stream, self.group, *ids[start : start + 10_000])
        pipe.execute()

    # -- calls in memory --------------------------------------------------------------------
    def _remember(self, cdr_rows: list[Row], queue_rows: list[Row]) -> None:
        for row in cdr_rows:
            call = row["call_id"]
            self.cdr[call] = row
            self.stored_cdr[call] = (row["account_id"], row["start_ts"])
        for row in queue_rows:
            call = row["call_id"]
            self.queues.setdefault(call, {})[row["queue_id"]] = row
            self.stored_queues.setdefault(call, []).append((row["account_id"], row["enqueued_at"]))

    def _recover(self) -> None:
        """Open calls of the last ``cdr_open_horizon_sec``, with every queue row they have."""
        since = int(time.time() * 1000) - self.settings.cdr_open_horizon_sec * 1000
        cdr = self.lake.read(CALL_CDR, And(is_null("end_ts"), ge("start_time", ms_to_us(since))))
        queues = self.lake.read(QUEUE_CDR, ge("enqueued_time", ms_to_us(since)))
        queues = queues.filter(pc.is_in(queues["call_id"], cdr["call_id"]))
        self._remember(_rows(cdr, CALL_CDR), _rows(queues, QUEUE_CDR))
        log.info("recovered", open_calls=len(self.cdr), queue_rows=queues.num_rows)

    def _lookup(self, calls: set[str]) -> None:
        """Stored rows of calls updated while not in memory (a full scan: kept rare)."""
        if not calls:
            return
        cdr = self.lake.read(CALL_CDR, is_in("call_id", calls))
        queues = self.lake.read(QUEUE_CDR, is_in("call_id", calls))
        self._remember(_rows(cdr, CALL_CDR), _rows(queues, QUEUE_CDR))

    def _evict(self) -> None:
        ended_before = self.max_ts - ENDED_GRACE_MS
        opened_before = self.max_ts - self.settings.cdr_open_horizon_sec * 1000
        gone = [
            call
            for call, row in self.cdr.items()
            if (row["end_ts"] is not None and row["end_ts"] < ended_before)
            or row["start_ts"] < opened_before
        ]
        for call in gone:
            for memory in (self.cdr, self.stored_cdr, self.queues, self.stored_queues):
                memory.pop(call, None)

    # -- stream housekeeping ----------------------------------------------------------------
    def _claim_orphans(self) -> None:
        """Entries left pending under another consumer name of the group (a renamed or retired
        collector) become ours: we own the stream, nobody else will finish them."""
        for stream in self.streams:
            start = "0-0"
            while True:
                reply = self.redis.xautoclaim(
                    stream, self.group, self.consumer, min_idle_time=0, start_id=start,
                    count=1000,
                )  # fmt: skip
                start = _s(reply[0])
                trimmed = [_s(i) for i in (reply[2] if len(reply) > 2 else [])]
                if trimmed:
                    self.flush([DeadLetter(stream, i, TRIMMED, "") for i in trimmed])
                if start == "0-0":
                    break

    def _trim(self) -> None:
        """Drop entries that every group of the stream has acknowledged (opt-in)."""
        if not self.settings.collector_trim_acked:
            return
        if time.monotonic() - self._last_trim < TRIM_EVERY_SEC:
            return
        self._last_trim = time.monotonic()
        for stream in self.streams:
            floors = []
            for group in self.redis.xinfo_groups(stream):
                summary = self.redis.xpending(stream, _s(group["name"]))
                if summary["pending"]:
                    floors.append(_s(summary["min"]))
                else:
                    ms, _, seq = _s(group["last-delivered-id"]).partition("-")
                    floors.append(f"{ms}-{int(seq) + 1}")
            if floors:
                floor = min(floors, key=lambda i: tuple(int(p) for p in i.split("-")))
                self.redis.xtrim(stream, minid=floor, approximate=False)

    def _expire(self) -> None:
        """Keep table metadata small: every commit copies it, snapshots included."""
        if time.monotonic() - self._last_expire < EXPIRE_EVERY_SEC:
            return
        self._last_expire = time.monotonic()
        cut = int(time.time() * 1000) - self.settings.lake_snapshot_retention_sec * 1000
        for spec in TABLES:
            self.lake.expire_snapshots(spec, cut)

    def _heartbeat(self, state: str, detail: str = "") -> None:
        key = heartbeat_key(self.consumer)
        values: dict[Any, Any] = {
            "state": state, "pid": os.getpid(), "ts": int(time.time() * 1000),
            "streams": ",".join(self.streams), "detail": detail, **self.stats,
        }  # fmt: skip
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping=values)
        pipe.pexpire(key, HEARTBEAT_TTL_MS)
        pipe.execute()


class _Accounts(Mapping[str, str | None]):
    """Account of a call: as this batch leaves it, else as it was known before."""

    def __init__(self, *layers: Mapping[str, Row]) -> None:
        self.layers = layers

    def __getitem__(self, call: str) -> str | None:
        for layer in self.layers:
            row = layer.get(call)
            if row is not None and row["account_id"]:
                return str(row["account_id"])
        raise KeyError(call)

    def __iter__(self) -> Any:
        return iter({c for layer in self.layers for c in layer})

    def __len__(self) -> int:
        return len({c for layer in self.layers for c in layer})


def _rows(table: Any, spec: TableSpec) -> list[Row]:
    names = [n for n, _, _ in spec.columns if n != spec.time_col]
    rows: list[Row] = table.select(names).to_pylist()
    return rows
