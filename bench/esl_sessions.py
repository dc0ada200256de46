"""Concurrent flow sessions one controller process sustains, and its per-command latency.

Starts Redis and ``sipio esl-controller`` (one process, flows in a SQLite config DB) on free
ports. The FreeSWITCH test peer (``tests/esl/peer.py``: recorded frames, FreeSWITCH's order of
events) then keeps N calls up at once through the outbound socket, each running
``docs/flows/main-ivr.json``: answer, menu (key 1), sales queue (times out), voicemail, hang-up.
Every application "plays" for ``--media`` seconds, like prompts do, so the number of
concurrent sessions, not the call rate, is what is offered.

Latency per command is measured on the peer's side: from the moment it sends an application's
CHANNEL_EXECUTE_COMPLETE to the moment the next command arrives, i.e. everything the
controller does between two applications (event parsing, interpreter step, Redis write-ahead
save and trace flush, command encoding).

Baseline, same run, same peer and concurrency: a raw ESL handler process (this file with
``--raw``) that sends the same application sequence with the same ``esl`` library but no flow
interpreter, no Redis: the round trip of the ESL layer itself.

    python -m bench.esl_sessions [--sessions 50,200,500,1000] [--media 1.0] [--calls-per-session 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.common import start_one
from control.db import make_engine
from control.db import models as m
from control.db.migrate import upgrade
from control.settings import Settings
from control.stack.components import RedisServer
from control.stack.ports import free_port
from control.stack.process import stop
from tests.esl.harness import doc
from tests.esl.peer import Caller, FreeSwitchPeer, Reaction, sipio_headers

ACCOUNT = "acc_bench"
MOH = "local_stream://moh"


def flow_db(path: Path) -> str:
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(insert(m.Account).values(id=ACCOUNT, name="bench"))
        c.execute(insert(m.CallFlow).values(id="flow_main_ivr", account_id=ACCOUNT, name="ivr",
                                            published_version=1))  # fmt: skip
        c.execute(insert(m.CallFlowVersion).values(
            id="cfv_1", account_id=ACCOUNT, flow_id="flow_main_ivr", version=1,
            status="published", document=doc("main-ivr.json"), published_at=1,
        ))  # fmt: skip
    engine.dispose()
    return url


def launch(argv: list[str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening"):
        process.kill()
        raise RuntimeError(f"{argv[:3]} did not start: {line!r}")
    return process


def caller(media: float) -> Caller:
    def react(app: str, arg: str, n: int) -> Reaction | None:
        if app == "play_and_get_digits":
            return Reaction(digits="1", delay=media)
        if app == "playback" and arg == MOH:
            return Reaction(variables={"sipio_queue_result": "timeout"}, delay=media)
        if app in ("voicemail", "playback"):
            return Reaction(delay=media)
        return None

    return Caller(react=react)


async def sessions(port: int, concurrent: int, calls_each: int, media: float) -> dict[str, Any]:
    """``concurrent`` callers, each placing ``calls_each`` calls back to back."""
    peer = FreeSwitchPeer()
    turnarounds: list[float] = []
    failures = 0
    done = 0

    async def one_caller(index: int) -> None:
        nonlocal failures, done
        await asyncio.sleep(index * 0.002)  # ramp up: a burst of TCP connects is not the point
        for _ in range(calls_each):
            headers = sipio_headers(ACCOUNT, "flow:flow_main_ivr")
            try:
                record = await peer.call([("127.0.0.1", port)], headers, caller(media), timeout=60)
            except Exception:
                failures += 1
                continue
            apps = [a for a, _ in record.apps]
            if apps != ["answer", "play_and_get_digits", "multiset", "playback", "voicemail"]:
                failures += 1
            done += 1
            turnarounds.extend(record.turnarounds)

    started = time.perf_counter()
    await asyncio.gather(*(one_caller(i) for i in range(concurrent)))
    wall = time.perf_counter() - started
    ms = sorted(t * 1000 for t in turnarounds)
    return {
        "calls": done,
        "failures": failures,
        "wall": wall,
        "calls_per_s": done / wall,
        "commands": len(ms),
        "p50": statistics.median(ms) if ms else float("nan"),
        "p95": ms[int(len(ms) * 0.95)] if ms else float("nan"),
        "p99": ms[int(len(ms) * 0.99)] if ms else float("nan"),
    }


# --- the raw baseline: same applications, no interpreter, no Redis -------------------------------
async def raw_server(port: int) -> None:
    from esl.outbound import OutboundServer, OutboundSession

    script = [
        ("answer", None),
        ("play_and_get_digits", "1 1 1 5000 none /m/menu.wav silence_stream://250 d [0-9*#]+ 5000"),
        ("multiset", "sipio_queue=q_sales sipio_queue_exits=timeout sipio_queue_result="),
        ("playback", MOH),
        ("voicemail", f"default {ACCOUNT} vm_sales"),
    ]

    async def handle(session: OutboundSession) -> None:
        channel = await session.connect()
        await asyncio.gather(  # the controller's own set-up, same filters
            session.resume(),
            session.myevents(),
            session.filter("Event-Name", "CHANNEL_EXECUTE_COMPLETE"),
            session.filter("Event-Name", "CHANNEL_HANGUP"),
            session.linger(1),
        )
        for app, arg in script:
            execution = await session.execute(app, arg, uuid=channel.uuid)
            await execution.complete
        await session.hangup("NORMAL_CLEARING", uuid=channel.uuid)
        await session.hung_up.wait()

    server = OutboundServer(handle, "127.0.0.1", port)
    await server.start()
    print(f"listening 127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


async def isolated(redis_url: str, count: int = 500) -> tuple[float, float]:
    """(step µs, write-ahead save µs) one at a time: the controller's own cost per command
    without any concurrency, to read the figures under load against."""
    from datetime import UTC, datetime

    from control.core.flow import FlowContext, parse_flow, start, step
    from esl.session_store import SessionRecord, SessionStore

    flow, now, ctx = parse_flow(doc("main-ivr.json")), datetime.now(UTC), FlowContext()
    first = start(flow, now, ctx, call_id="bench@isolated", variables={"caller_number": "1"})
    began = time.perf_counter()
    for _ in range(count):
        after = step(flow, first.state, "digits", {"digits": "1"}, now, ctx, seq=first.command.seq)
    step_us = (time.perf_counter() - began) / count * 1e6
    store = SessionStore.from_url(redis_url)
    epoch = await store.claim(ACCOUNT, "bench@isolated", "bench")
    record = SessionRecord(ACCOUNT, "bench@isolated", epoch, "bench", after.state,
                           after.command.to_json())  # fmt: skip
    for _ in range(50):
        await store.save(record)
    began = time.perf_counter()
    for _ in range(count):
        await store.save(record)
    save_us = (time.perf_counter() - began) / count * 1e6
    await store.close()
    return step_us, save_us


def row(label: str, concurrent: int, r: dict[str, Any], extra: str = "") -> str:
    return (
        f"{label:<20} {concurrent:>6} {r['calls']:>6} {r['failures']:>4} {r['calls_per_s']:>8.1f}"
        f" {r['commands']:>7} {r['p50']:>7.2f} {r['p95']:>7.2f} {r['p99']:>7.2f}  {extra}"
    )


def controller_stats(process: subprocess.Popen[str]) -> dict[str, Any]:
    """Stop a controller; its last stdout line holds its own figures."""
    process.terminate()
    out, _ = process.communicate(timeout=20)
    for line in out.splitlines():
        if line.startswith("stats "):
            found: dict[str, Any] = json.loads(line[6:])
            return found
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="50,200,500,1000", help="concurrency levels")
    parser.add_argument("--calls-per-session", type=int, default=2)
    parser.add_argument("--media", type=float, default=1.0, help="seconds each app plays")
    parser.add_argument("--raw", type=int, help=argparse.SUPPRESS)  # baseline server mode
    args = parser.parse_args()
    if args.raw:
        asyncio.run(raw_server(args.raw))
        return
    levels = [int(x) for x in args.sessions.split(",")]
    with tempfile.TemporaryDirectory(prefix="sipio-bench-esl-") as tmp:
        settings = Settings(state_dir=Path(tmp), redis_port=free_port(udp=False))
        redis_record = start_one(RedisServer(settings))
        sipio = str(Path(sys.executable).parent / "sipio")
        db_url = flow_db(Path(tmp) / "flows.db")
        raw_port = free_port(udp=False)
        raw = launch([sys.executable, "-m", "bench.esl_sessions", "--raw", str(raw_port)])
        try:
            step_us, save_us = asyncio.run(isolated(settings.redis_url))
            print(f"controller cost per command, alone: interpreter step {step_us:.0f} µs, "
                  f"Redis write-ahead save {save_us:.0f} µs")  # fmt: skip
            print(f"each call: answer, menu, queue, voicemail; {args.media}s per application")
            print("latency: last application completed -> next command, seen by FreeSWITCH")
            print(f"{'':<20} {'conc.':>6} {'calls':>6} {'fail':>4} {'calls/s':>8}"
                  f" {'cmds':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")  # fmt: skip
            for level in levels:
                result = asyncio.run(sessions(raw_port, level, args.calls_per_session, args.media))
                print(row("raw ESL (baseline)", level, result), flush=True)
                port = free_port(udp=False)
                controller = launch([sipio, "esl-controller", "--state-dir", tmp, "--port",
                                     str(port), "--redis-url", settings.redis_url,
                                     "--db-url", db_url, "--node-id", "bench"])  # fmt: skip
                try:
                    result = asyncio.run(sessions(port, level, args.calls_per_session, args.media))
                finally:
                    own = controller_stats(controller)
                inside = (f"own step+save p50 {own.get('step_save_p50_ms', 0):.2f} "
                          f"p95 {own.get('step_save_p95_ms', 0):.2f} ms")  # fmt: skip
                print(row("controller", level, result, inside), flush=True)
        finally:
            raw.terminate()
            raw.wait(10)
            stop(redis_record)


if __name__ == "__main__":
    main()
