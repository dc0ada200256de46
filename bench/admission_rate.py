"""Admissions per second against a real Redis, beside a plain INCR/DECR in the same run.

Starts its own redis-server on a free port and measures, for a typical inbound call (account
``in``, trunk, DID, callee user and one sliding-window rule, all passing):

- one client, one request in flight: INCR / DECR (the baseline round trip), ``admit``
  (EVALSHA + SET of the steering key, one round trip), ``release`` by call-id (GET, then
  EVALSHA + DEL) and with the decision token (one round trip);
- one client, pipelined in batches: INCR against ``admit_many``;
- several processes at once, one in flight each: INCR against ``admit`` (Redis' own ceiling,
  where the Lua work shows).

    python -m bench.admission_rate [--calls 20000] [--batch 100] [--procs 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from bench.common import per_second, start_one
from control.core.admission import AccountLimits, CallFacts, LimitBook, Rule, TrunkLimits, plan
from control.live.admission import AdmissionStore
from control.live.client import worker_redis
from control.settings import Settings
from control.stack.components import RedisServer
from control.stack.ports import free_port
from control.stack.process import stop

BIG = 10**9
BOOK = LimitBook(
    accounts={"acc_bench": AccountLimits(max_in=BIG)},
    users={f"us_{i}": BIG for i in range(50)},
    dids={"did_bench": BIG},
    trunks={"tr_bench": TrunkLimits("acc_bench", BIG)},
    rules={"acc_bench": (Rule("lim_bench", "acc_bench", "account", None, "in", 60, BIG),)},
)


def facts(tag: str, i: int) -> CallFacts:
    return CallFacts(
        f"{tag}-{i}@bench",
        "acc_bench",
        callee_user_id=f"us_{i % 50}",
        did_id="did_bench",
        in_trunk_id="tr_bench",
    )


def batched(count: int, batch: int, action: Callable[[int, int], object]) -> tuple[float, float]:
    """``action(first, size)`` handles one batch; returns (items per second, us per item)."""
    action(-batch, batch)
    started = time.perf_counter()
    for first in range(0, count, batch):
        action(first, min(batch, count - first))
    wall = time.perf_counter() - started
    return count / wall, wall / count * 1e6


def _worker(url: str, kind: str, tag: str, count: int, start: Any, out: Any) -> None:
    client = worker_redis(url, timeout=5.0)
    store = AdmissionStore(client, prefix="bench:cac")
    start.wait()
    started = time.perf_counter()
    for i in range(count):
        if kind == "incr":
            client.incr("bench:incr:{acc_bench}")
        else:
            store.admit(facts(tag, i), BOOK, policy="open")
    out.put(time.perf_counter() - started)


def parallel(url: str, kind: str, procs: int, count: int) -> float:
    """Operations per second of ``procs`` processes together, one in flight each."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(procs), ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(url, kind, f"{kind}{p}", count, start, out))
        for p in range(procs)
    ]
    for w in workers:
        w.start()
    slowest = max(out.get(timeout=300) for _ in workers)
    for w in workers:
        w.join()
    return procs * count / slowest


def measure(url: str, args: argparse.Namespace) -> list[tuple[str, float, float]]:
    client = worker_redis(url, timeout=5.0)
    store = AdmissionStore(client, prefix="bench:cac")
    n, batch = args.calls, args.batch
    rows: list[tuple[str, float, float]] = []

    def row(label: str, figures: tuple[float, float]) -> None:
        rows.append((label, *figures))

    row("INCR (baseline)", per_second(n, lambda i: client.incr("bench:n:{acc_bench}")))
    row("DECR (baseline)", per_second(n, lambda i: client.decr("bench:n:{acc_bench}")))
    tokens: dict[int, str] = {}

    def admit(i: int) -> None:
        decision = store.admit(facts("one", i), BOOK, policy="open")
        assert decision.admitted, decision
        tokens[i] = decision.token

    row("admit (5 dimensions)", per_second(n, admit))
    row(
        "release by call-id (2 round trips)",
        per_second(n // 2, lambda i: store.release(f"one-{i}@bench")),
    )
    row(
        "release with token (1 round trip)",
        per_second(
            n // 2, lambda i: store.release(f"one-{n // 2 + i}@bench", accounts=tokens[n // 2 + i])
        ),
    )

    def incr_batch(first: int, size: int) -> None:
        pipe = client.pipeline(transaction=False)
        for _ in range(size):
            pipe.incr("bench:n:{acc_bench}")
        pipe.execute()

    def admit_batch(first: int, size: int) -> None:
        plans = [plan(facts("many", first + i), BOOK) for i in range(size)]
        assert all(d.admitted for d in store.admit_many(plans))

    row(f"INCR, pipelined x{batch} (baseline)", batched(n, batch, incr_batch))
    row(f"admit_many, pipelined x{batch}", batched(n, batch, admit_batch))
    per_proc = max(1, n // args.procs)
    rate = parallel(url, "incr", args.procs, per_proc)
    rows.append((f"INCR, {args.procs} processes (baseline)", rate, 1e6 / rate))
    rate = parallel(url, "admit", args.procs, per_proc)
    rows.append((f"admit, {args.procs} processes", rate, 1e6 / rate))
    client.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--procs", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sipio-bench-cac-") as tmp:
        settings = Settings(state_dir=Path(tmp) / "stack", redis_port=free_port(udp=False))
        settings.run_dir.mkdir(parents=True)
        record = start_one(RedisServer(settings))
        try:
            version = redis.Redis(port=settings.redis_port).info("server")["redis_version"]
            rows = measure(settings.redis_url, args)
        finally:
            stop(record)

    print(
        f"\nadmission control, redis {version} on loopback, {os.cpu_count()} cores, "
        f"{args.calls} calls"
    )
    print(f"{'operation':<40} {'per second':>11} {'us each':>9}")
    for label, rate, each in rows:
        print(f"{label:<40} {rate:>11.0f} {each:>9.1f}")


if __name__ == "__main__":
    main()
