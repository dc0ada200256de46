"""ng round trips per second through sipio's client, and the cost of its codec layer.

Starts Redis and one rtpengine (userspace, as the stack runs it, plus TCP and WebSocket ng
listeners) on free ports, then measures, one request in flight at a time:

- ping over UDP, TCP and WebSocket, and over UDP through `AsyncNg` (the thread hop);
- offer + delete of a two-codec call through `NgClient`, and through `NgPool`, which adds the
  Redis work of stickiness (GETEX + SET on offer, GETEX + DEL on delete);
- encoding an offer and decoding rtpengine's replies with our codec layer beside the raw
  bencode.py calls on the same messages (no cookie handling, OrderedDict results).

    python -m bench.ng_rate [--pings 5000] [--calls 2000] [--codec 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bencode

from bench.common import per_second, start_one
from control.rtpengine import AsyncNg, MediaOptions, NgClient, NgPool, Node
from control.rtpengine.codec import decode, encode, split
from control.rtpengine.pool import worker_redis
from control.settings import Settings
from control.stack.components import RedisServer, Rtpengine
from control.stack.ports import free_port, free_stack_ports
from control.stack.process import stop

SDP = "\r\n".join(
    [
        "v=0",
        "o=alice 2890844526 2890844526 IN IP4 192.0.2.10",
        "s=SIP Call",
        "c=IN IP4 192.0.2.10",
        "t=0 0",
        "m=audio 49170 RTP/AVP 0 8 9 18 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:18 G729/8000",
        "a=fmtp:18 annexb=no",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
        "",
    ]
)
OPTIONS = MediaOptions(replace=("origin", "session-connection"), codec_strip=("G729",))


def micros(count: int, action: Callable[[], object]) -> float:
    action()
    started = time.perf_counter()
    for _ in range(count):
        action()
    return (time.perf_counter() - started) / count * 1e6


def async_pings(client: NgClient, count: int) -> tuple[float, float]:
    async def run() -> tuple[float, float]:
        media = AsyncNg(client, max_workers=1)
        for _ in range(200):
            await media.run(client.ping)
        started = time.perf_counter()
        for _ in range(count):
            await media.run(client.ping)
        wall = time.perf_counter() - started
        await media.aclose()
        return count / wall, wall / count * 1e6

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--codec", type=int, default=20000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sipio-bench-ng-") as tmp:
        settings = Settings(state_dir=Path(tmp) / "stack", **free_stack_ports(200))
        settings.run_dir.mkdir(parents=True)
        tcp_port, http_port = free_port(udp=False), free_port(udp=False)
        host = settings.ng_host
        records = [start_one(RedisServer(settings))]
        try:
            records.append(
                start_one(
                    Rtpengine(settings),
                    [
                        f"--listen-tcp-ng={host}:{tcp_port}",
                        f"--listen-http={host}:{http_port}",
                        "--log-level=5",  # the stack's level 6 logs every command
                    ],
                )
            )
            rows, codec_rows = measure(settings, tcp_port, http_port, args)
        finally:
            for record in reversed(records):
                stop(record)

    print(f"\nng round trips, one in flight, rtpengine 10.5 userspace, {os.cpu_count()} cores")
    print(f"{'command':<42} {'per second':>11} {'us each':>9}")
    for label, (rate, each) in rows:
        print(f"{label:<42} {rate:>11.0f} {each:>9.1f}")
    print(f"\nng codec, us per message ({args.codec} runs)")
    print(f"{'message':<42} {'sipio codec':>11} {'bencode.py':>11}")
    for label, ours, raw in codec_rows:
        print(f"{label:<42} {ours:>11.2f} {raw:>11.2f}")


def measure(
    settings: Settings, tcp_port: int, http_port: int, args: argparse.Namespace
) -> tuple[list[tuple[str, tuple[float, float]]], list[tuple[str, float, float]]]:
    host, port = settings.ng_host, settings.ng_port
    rows: list[tuple[str, tuple[float, float]]] = []
    udp = NgClient(host, port)
    tcp = NgClient(host, tcp_port, transport="tcp")
    ws = NgClient(host, http_port, transport="ws")
    rows.append(("ping, UDP", per_second(args.pings, lambda i: udp.ping())))
    rows.append(("ping, TCP", per_second(args.pings, lambda i: tcp.ping())))
    rows.append(("ping, WebSocket", per_second(args.pings, lambda i: ws.ping())))
    rows.append(("ping, UDP through AsyncNg", async_pings(udp, args.pings)))

    def offer_delete(client: NgClient | NgPool, tag: str) -> Callable[[int], object]:
        def run(i: int) -> object:
            call_id = f"bench-{tag}-{i}@sipio.test"
            client.offer(call_id, SDP, from_tag="a", options=OPTIONS)
            return client.delete(call_id)

        return run

    rows.append(("offer + delete, NgClient (UDP)", per_second(args.calls, offer_delete(udp, "c"))))
    redis_client = worker_redis(settings.redis_url)
    pool = NgPool([Node("n1", host, port)], redis_client, prefix="bench:rtpengine")
    rows.append(
        ("offer + delete, NgPool (UDP + Redis)", per_second(args.calls, offer_delete(pool, "p")))
    )

    # Real replies to decode: an offer's (SDP) and a query's (deeply nested stats).
    udp.offer("bench-codec@sipio.test", SDP, from_tag="a", options=OPTIONS)
    udp.answer("bench-codec@sipio.test", SDP, from_tag="a", to_tag="b")
    raw_offer = _raw_reply(
        udp, "offer", {"call-id": "bench-codec@sipio.test", "from-tag": "a", "sdp": SDP}
    )
    raw_query = _raw_reply(udp, "query", {"call-id": "bench-codec@sipio.test"})
    udp.delete("bench-codec@sipio.test")
    for client in (udp, tcp, ws, pool):
        client.close()
    redis_client.close()

    message = {"command": "offer", "call-id": "c@x", "from-tag": "a", "sdp": SDP, **OPTIONS.to_ng()}
    n = args.codec
    codec_rows = [
        (
            "encode offer request",
            micros(n, lambda: encode("k1", message)),
            micros(n, lambda: bencode.bencode(message)),
        ),
        (
            "decode offer reply",
            micros(n, lambda: decode(raw_offer)),
            micros(n, lambda: bencode.bdecode(split(raw_offer)[1])),
        ),
        (
            "decode query reply",
            micros(n, lambda: decode(raw_query)),
            micros(n, lambda: bencode.bdecode(split(raw_query)[1])),
        ),
    ]
    return rows, codec_rows


def _raw_reply(client: NgClient, command: str, message: dict[str, object]) -> bytes:
    """The undecoded reply datagram, as it comes off the socket."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        sock.sendto(encode("raw1", {**message, "command": command}), client.address)
        return sock.recv(65535)


if __name__ == "__main__":
    main()
