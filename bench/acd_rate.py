"""ACD operations per second against a real Redis, beside presence writes in the same run.

Starts its own redis-server on a free port, seats ``--agents`` agents in one queue and, one
client, one request in flight, measures a whole queue call (join, offer, answered, finished:
four atomic decisions) and an offer to a caller that is not the head (a snapshot read, no
write). Baseline: ``PresenceStore.apply`` (one read script + one compare-and-set, the same
shape as an ACD decision with a single agent) and a plain GET round trip.

    python -m bench.acd_rate [--calls 2000] [--agents 20]
"""

from __future__ import annotations

import argparse

from bench.common import own_redis, per_second
from control.core.acd import QueueConfig
from control.core.presence import (
    Available,
    ExtCallEnd,
    ExtCallStart,
    Login,
    Membership,
    Profile,
    Register,
    Seat,
)
from control.live.acd import AcdStore
from control.live.client import worker_redis

ACC = "acc_bench"
QUEUE = QueueConfig("q_bench", ACC, wrap_up_sec=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=20)
    args = parser.parse_args()
    with own_redis() as url:
        run(url, args.calls, args.agents)


def run(url: str, calls: int, agents: int) -> None:
    store = AcdStore(worker_redis(url, timeout=2.0))
    profile = Profile(auto_ready_on_login=True, memberships=(Membership(QUEUE.id, 1),))
    for i in range(agents):
        uid = f"us_{i}"
        store.presence.apply(ACC, uid, Register(f"dev_{i}"))
        store.presence.apply(ACC, uid, Login(), profile)
        store.presence.apply(ACC, uid, Available((Seat(QUEUE.id, 1),)), profile)

    def call(i: int) -> None:
        call_id = f"c{i}"
        store.join(QUEUE, call_id)
        offer = store.offer(QUEUE, call_id)
        assert offer is not None
        store.answered(QUEUE, call_id, offer.user_ids[0])
        store.finished(QUEUE, call_id, offer.user_ids[0])

    rate, each = per_second(calls, call)
    print(f"queue call (join+offer+answered+finished): {rate:8.0f}/s {each:8.0f} µs")
    print(f"  per ACD decision:                          {each / 4:8.0f} µs")
    store.join(QUEUE, "head")
    store.join(QUEUE, "second")
    store.presence.apply(ACC, "us_0", ExtCallStart("x"))
    rate, each = per_second(calls, lambda i: store.offer(QUEUE, "second"))
    print(f"offer, not the head (read only):             {each:8.0f} µs")

    def presence(i: int) -> None:
        store.presence.apply(ACC, "us_0", ExtCallStart("x") if i % 2 else ExtCallEnd("x"))

    rate, each = per_second(calls, presence)
    print(f"baseline PresenceStore.apply:                {each:8.0f} µs")
    rate, each = per_second(calls, lambda i: store.redis.get("nothing"))
    print(f"baseline GET round trip:                     {each:8.0f} µs")


if __name__ == "__main__":
    main()
