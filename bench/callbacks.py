"""Queue callbacks: what a dialer costs while callbacks wait, and callbacks placed per second.

Starts its own redis-server and the inbound FreeSWITCH stand-in of ``tests/esl``
(``bgapi originate`` answered by scripted phones at once, talk 0 s), then:

1. idle: ``--pending`` callbacks waiting in ``--accounts`` accounts with no agent ready, one
   ``CallbackDialer`` for ``--seconds``: its process CPU and Redis commands per second.
   Baseline: the same dialer with no callback at all.
2. placement: ``--calls`` callbacks served by ``--agents`` ready agents (no wrap-up): callbacks
   completed per second (offer, originate, answered, bridge, hang-up, finished, events).
   Baseline: bare ``bgapi originate`` round trips to the same stand-in (no ACD, no Redis).

    python -m bench.callbacks [--pending 1000] [--accounts 10] [--calls 300] [--agents 20]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from bench.common import own_redis
from control.core.acd import QueueConfig
from control.core.presence import Login, Membership, Profile, Register, Seat
from control.live.acd import AcdStore
from control.live.client import worker_redis
from esl.apps import MediaConfig
from esl.callbacks import CallbackDialer, CallbackPolicy
from esl.inbound import InboundClient
from esl.queues_source import QueueSetup, StaticQueueSource
from tests.esl.fs_inbound import InboundFreeSwitch
from tests.esl.fs_originate import Originator, Phone

NUMBER = "+4930123456"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pending", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--agents", type=int, default=20)
    args = parser.parse_args()
    originator = Originator()
    with own_redis() as url, InboundFreeSwitch(originator=originator).running() as fs:
        asyncio.run(run(url, fs, originator, args))


def queue_of(account: str, users: list[str]) -> tuple[QueueConfig, QueueSetup]:
    row = {"id": "q_bench", "account_id": account, "agent_ring_timeout_sec": 5,
           "wrap_up_sec": 0, "max_wait_sec": 600}  # fmt: skip
    setup = QueueSetup(row=row, members={u: Membership("q_bench", 1) for u in users})
    return QueueConfig.from_row(row), setup


def dialer(acd: AcdStore, setups: dict[tuple[str, str], QueueSetup], fs: InboundFreeSwitch,
           ) -> CallbackDialer:  # fmt: skip
    return CallbackDialer.connect(
        acd, StaticQueueSource(setups), fs.host, fs.port, "ClueCon", MediaConfig(),
        policy=CallbackPolicy(poll_sec=1.0),
    )  # fmt: skip


async def commands(acd: AcdStore) -> int:
    info = await asyncio.to_thread(acd.redis.info, "stats")
    return int(info["total_commands_processed"])


async def idle(acd: AcdStore, fs: InboundFreeSwitch, pending: int, accounts: int,
               seconds: float) -> tuple[float, float]:  # fmt: skip
    """(CPU % of one core, Redis commands/s) of a dialer holding ``pending`` callbacks."""
    setups = {}
    for a in range(accounts):
        account = f"acc_idle{a}_{uuid.uuid4().hex[:6]}"
        cfg, setup = queue_of(account, [])
        setups[(account, cfg.id)] = setup
        for n in range(pending // accounts):
            acd.join(cfg, f"cb-{a}-{n}")
            acd.callback(cfg, f"cb-{a}-{n}", f"number:{NUMBER}", 3600)
    d = dialer(acd, setups, fs)
    await d.start()
    await asyncio.sleep(min(3.0, seconds))  # every callback claimed, its loop running
    cpu, cmds, wall = time.process_time(), await commands(acd), time.monotonic()
    await asyncio.sleep(seconds)
    used = time.process_time() - cpu
    done = (await commands(acd) - cmds) / (time.monotonic() - wall)
    await d.stop()
    for (account, queue_id), _ in setups.items():  # leave Redis empty for the next phase
        cfg = QueueConfig(queue_id, account)
        for caller in acd.callbacks(account):
            acd.leave(cfg, caller.call_id, "callback_expired")
    return 100 * used / seconds, done


async def placement(acd: AcdStore, fs: InboundFreeSwitch, originator: Originator, calls: int,
                    agents: int) -> float:  # fmt: skip
    account = f"acc_place_{uuid.uuid4().hex[:6]}"
    users = [f"us_{i}" for i in range(agents)]
    cfg, setup = queue_of(account, users)
    profile = Profile(auto_ready_on_login=True, memberships=(Membership(cfg.id, 1),))
    for user in users:
        acd.presence.apply(account, user, Register(f"dev_{user}"))
        acd.presence.apply(account, user, Login((Seat(cfg.id, 1),)), profile)
        originator.agents[user] = Phone(delay=0.0, talk=0.0)
    originator.callers[NUMBER] = Phone(delay=0.0, talk=0.0)
    for n in range(calls):
        acd.join(cfg, f"cbp-{n}")
        acd.callback(cfg, f"cbp-{n}", f"number:{NUMBER}", 3600)
    start = time.monotonic()
    d = dialer(acd, {(account, cfg.id): setup}, fs)
    await d.start()
    while acd.callbacks(account) or d.driving:
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - start
    await d.stop()
    return calls / elapsed


async def bare_originates(fs: InboundFreeSwitch, originator: Originator, count: int) -> float:
    client = await InboundClient.connect(fs.host, fs.port, "ClueCon")
    await client.events(["BACKGROUND_JOB"])
    originator.agents["bare"] = Phone(delay=0.0, talk=0.0)
    start = time.monotonic()
    for _ in range(count):
        leg = str(uuid.uuid4())
        job = await client.bgapi(
            f"originate {{x=1}}[origination_uuid={leg}]sofia/internal/bare@h"
            f" &bridge({{y=1}}sofia/internal/{NUMBER}@h)"
        )
        await job.result(timeout=5)
    rate = count / (time.monotonic() - start)
    await client.exit()
    return rate


async def run(url: str, fs: InboundFreeSwitch, originator: Originator,
              args: argparse.Namespace) -> None:  # fmt: skip
    acd = AcdStore(worker_redis(url, timeout=2.0))
    base_cpu, base_cmds = await idle(acd, fs, 0, 1, args.seconds)
    cpu, cmds = await idle(acd, fs, args.pending, args.accounts, args.seconds)
    rows = [
        ("idle dialer, no callback", f"{base_cpu:6.1f} % of a core, {base_cmds:8.0f} Redis cmd/s"),
        (f"idle dialer, {args.pending} waiting",
         f"{cpu:6.1f} % of a core, {cmds:8.0f} Redis cmd/s ({args.accounts} accounts, no agent)"),
    ]  # fmt: skip
    rate = await placement(acd, fs, originator, args.calls, args.agents)
    bare = await bare_originates(fs, originator, args.calls)
    rows += [
        ("callbacks placed end to end", f"{rate:8.1f} /s ({args.calls}, {args.agents} agents)"),
        ("baseline: bare bgapi originate", f"{bare:8.1f} /s (same stand-in, no ACD, no Redis)"),
    ]
    for name, figure in rows:
        print(f"{name:34s} {figure}")


if __name__ == "__main__":
    main()
