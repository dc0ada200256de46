"""Rows/s the collector ingests into Iceberg, and how long a single-call trace takes on the lake.

Starts Redis on a free port, writes synthetic calls' events (``control.cdr.synthetic``) to a
stream, then runs the collector until the stream is drained: entries/s and rows/s (event rows
plus CDR and queue rows, upserts included), end to end from Redis to committed snapshots.
Then it looks up single-call traces (``sipio trace``) on the lake as ingested and after
``sipio cdr compact``.

Baselines on the same rows, same run: pyarrow writing the event rows as one zstd Parquet file
(no Redis, no Iceberg, no CDR upserts), and a pyarrow dataset scan filtered on call_id over
that file; DuckDB's iceberg_scan over the lake answers the same lookup too.

    python -m bench.cdr_rate [--calls 260000] [--batch 20000] [--lookups 20]

The default (260,000 calls: 1,002,001 stream entries, over a million events) is what
``make bench`` runs; ``--calls 10000`` is a smoke run of well under a minute.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import redis

from control.cdr.build import event_rows, fold_cdr
from control.cdr.collector import Collector
from control.cdr.events import Event, parse
from control.cdr.lake import Lake
from control.cdr.query import trace
from control.cdr.synthetic import traffic
from control.cdr.tables import CALL_CDR, CALL_EVENTS, QUEUE_CDR, TABLES
from control.settings import Settings
from control.stack.ports import free_port

STREAM = "sipio:events"


def timed(func: object, *args: object) -> float:
    started = time.perf_counter()
    func(*args)  # type: ignore[operator]
    return time.perf_counter() - started


def lookups(label: str, func: object, calls: list[str]) -> float:
    times = [timed(func, call) * 1000 for call in calls]
    p50, p95 = statistics.median(times), sorted(times)[int(len(times) * 0.95) - 1]
    print(f"  {label:<44} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms")
    return p50


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--calls", type=int, default=260_000, help="≈3.85 events per call; default: 1M events"
    )
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--lookups", type=int, default=20)
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="cdr-bench-"))
    port = free_port(udp=False)
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        settings = Settings(
            state_dir=state, redis_port=port, collector_batch_size=args.batch,
            collector_batch_sec=1.0,
        )  # fmt: skip
        client = redis.Redis(port=port)
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        run(settings, client, args)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(state, ignore_errors=True)


def run(settings: Settings, client: redis.Redis, args: argparse.Namespace) -> None:
    start_ms = int(time.time() * 1000) - 2 * 86_400_000  # two days of traffic: several partitions
    entries = list(traffic(args.calls, start_ms=start_ms, accounts=20, interleave=200))
    ids: list[str] = []
    pipe = client.pipeline(transaction=False)
    for n, fields in enumerate(entries, 1):
        pipe.xadd(STREAM, fields)  # type: ignore[arg-type]
        if n % 10_000 == 0:
            ids += [i.decode() for i in pipe.execute()]
    ids += [i.decode() for i in pipe.execute()]
    print(f"{len(entries)} stream entries for {args.calls} calls (batch {args.batch})")

    stop = threading.Event()
    collector = Collector(settings)
    thread = threading.Thread(target=collector.run, args=(stop,))
    started = time.perf_counter()
    thread.start()
    while True:
        groups = client.xinfo_groups(STREAM)
        if groups and groups[0]["lag"] == 0 and groups[0]["pending"] == 0:
            break
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join()
    lake = Lake(settings)
    totals = {spec.name: lake.total_rows(spec) for spec in TABLES}
    rows = totals["call_events"] + totals["call_cdr"] + totals["queue_cdr"]
    print("ingest, Redis stream -> committed Iceberg snapshots (collector, exactly once):")
    print(f"  {len(entries) / elapsed:10.0f} entries/s   {rows / elapsed:10.0f} rows/s "
          f"({elapsed:.1f} s; {totals})")  # fmt: skip

    events = [e for e in (parse(STREAM, i, f) for i, f in zip(ids, entries, strict=True))
              if isinstance(e, Event)]  # fmt: skip
    accounts = {c: r["account_id"] for c, r in fold_cdr({}, events).items()}
    table = CALL_EVENTS.to_arrow(event_rows(events, accounts))
    raw = settings.state_dir / "baseline.parquet"
    write = timed(lambda: pq.write_table(table, raw, compression="zstd"))
    print("baseline, pyarrow writes the same event rows to one Parquet file:")
    print(f"  {table.num_rows / write:10.0f} rows/s ({write:.1f} s)")

    picks = random.Random(1).sample(sorted(accounts), args.lookups)
    dataset = ds.dataset(raw)

    def parquet_scan(call: str) -> pa.Table:
        return dataset.to_table(filter=ds.field("call_id") == call)

    duck = duckdb_lookup(lake)
    print(f"single-call trace lookup on {totals['call_events']} events:")
    lookups("sipio trace (lake as ingested)", lambda c: trace(lake, c), picks)
    files = {s.name: len(list(lake.table(s).scan().plan_files())) for s in (CALL_CDR, CALL_EVENTS)}
    compact = timed(lambda: [lake.compact(s, 2) for s in (CALL_EVENTS, CALL_CDR, QUEUE_CDR)])
    after = {s.name: len(list(lake.table(s).scan().plan_files())) for s in (CALL_CDR, CALL_EVENTS)}
    print(f"  (compaction {compact:.1f} s: data files {files} -> {after})")
    lookups("sipio trace (after sipio cdr compact)", lambda c: trace(lake, c), picks)
    lookups("baseline: pyarrow dataset scan, call_id filter", parquet_scan, picks)
    if duck is not None:
        lookups("DuckDB iceberg_scan of call_events", duck, picks)
    for call in picks[:3]:
        assert len(trace(lake, call)) == parquet_scan(call).num_rows


def duckdb_lookup(lake: Lake) -> object | None:
    try:
        import duckdb
    except ImportError:  # a dev dependency: the bench runs without it
        return None
    con = duckdb.connect()
    extensions = Path(sysconfig.get_paths()["purelib"]) / "duckdb_ext" / "extensions"
    con.execute("SET extension_directory = ?", [str(extensions)])
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("LOAD iceberg")

    def lookup(call: str) -> list[tuple[object, ...]]:
        location = lake.table(CALL_EVENTS).metadata_location
        return con.execute(
            "SELECT ts, type, data, stream_id FROM iceberg_scan(?) WHERE call_id = ? ORDER BY ts",
            [location, call],
        ).fetchall()

    return lookup


if __name__ == "__main__":
    main()
