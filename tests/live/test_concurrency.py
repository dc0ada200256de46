"""1,000 simultaneous admissions from several processes against max_in = 100: exactly 100 get
in, and once every call has ended every counter is back to zero."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import redis

from control.core.admission import AccountLimits, CallFacts, LimitBook
from control.live.admission import AdmissionStore

PROCESSES = 8
THREADS = 5
PER_THREAD = 25  # 8 * 5 * 25 = 1000 attempts
BOOK = LimitBook(
    accounts={"acc_c": AccountLimits(max_in=100)},
    users={f"us_{i}": None for i in range(10)},
    dids={"did_c": None},
)


def _attempts(url: str, prefix: str, worker: int, start: Any, out: Any) -> None:
    """One process: its threads wait for the common start, then admit as fast as they can."""
    admitted: list[str] = []
    lock = threading.Lock()

    def run(thread: int) -> None:
        store = AdmissionStore(redis.Redis.from_url(url), prefix=prefix, node=f"w{worker}")
        start.wait()
        for i in range(PER_THREAD):
            call_id = f"{worker}-{thread}-{i}@load"
            facts = CallFacts(
                call_id, "acc_c", callee_user_id=f"us_{i % 10}", did_id="did_c", in_trunk_id="tr_c"
            )
            if store.admit(facts, BOOK).admitted:
                with lock:
                    admitted.append(call_id)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(admitted)


def _releases(url: str, prefix: str, call_ids: list[str], out: Any) -> None:
    store = AdmissionStore(redis.Redis.from_url(url), prefix=prefix)
    out.put(sum(store.release(c) for c in call_ids))


def test_thousand_concurrent_attempts_admit_exactly_max_in(
    redis_client: redis.Redis, prefix: str, stack: Any
) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(PROCESSES * THREADS), ctx.Queue()
    cac = f"{prefix}:cac"
    procs = [
        ctx.Process(target=_attempts, args=(stack.redis_url, cac, w, start, out))
        for w in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    admitted = [c for _ in procs for c in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0

    assert len(admitted) == 100
    store = AdmissionStore(redis_client, prefix=cac)
    live = store.live("acc_c")
    assert live.calls == 100
    assert live.counters["in"] == 100 and live.counters["d:did_c"] == 100
    assert sum(v for k, v in live.counters.items() if k.startswith("u:")) == 100
    assert {p for c in admitted for p in [c.split("-")[0]]} != {"0"}  # more than one winner

    # Every call ends, released from several processes at once, by call-id only.
    chunks = [admitted[i::4] for i in range(4)]
    enders = [ctx.Process(target=_releases, args=(stack.redis_url, cac, c, out)) for c in chunks]
    for p in enders:
        p.start()
    released = sum(out.get(timeout=60) for _ in enders)
    for p in enders:
        p.join(timeout=30)
    assert released == 100
    assert store.live("acc_c").counters == {} and store.live("acc_c").calls == 0
    assert list(redis_client.scan_iter(match=f"{cac}:*")) == []
