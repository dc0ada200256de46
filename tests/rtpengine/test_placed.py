"""`NgPool.at`: calls whose node the caller keeps (Kamailio's transaction and dialog) cost no
Redis round trip on their home node, and every command still reaches the node of the offer,
from any worker, with or without the node in hand."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from control.rtpengine import NgCallNotFound, NgPool, Node
from control.rtpengine.pool import rendezvous
from tests.harness.rtpengine import RtpengineNode
from tests.rtpengine.sdp import audio_sdp

CALLER = audio_sdp("alice", "192.0.2.10", 49170)
CALLEE = audio_sdp("bob", "198.51.100.20", 51000)


class CountingRedis(redis.Redis):
    """A real client that counts the commands it sends (pipelines count once)."""

    sent = 0

    def execute_command(self, *args: object, **options: object) -> object:
        CountingRedis.sent += 1
        return super().execute_command(*args, **options)


def pool_of(nodes: dict[RtpengineNode, int], client: redis.Redis, prefix: str) -> NgPool:
    return NgPool(
        [Node(n.name, n.host, n.ng_port, weight=w) for n, w in nodes.items()],
        client,
        prefix=prefix,
        timeout=0.3,
        health_refresh=3600,  # the health marks are read once: only per-call traffic counts
    )


def test_rendezvous_order_is_stable_and_follows_weights() -> None:
    nodes = [Node("a", "127.0.0.1", 1), Node("b", "127.0.0.1", 2, weight=3), Node("c", "h", 3, 0)]
    firsts = [rendezvous(f"call-{i}@x", nodes)[0] for i in range(4000)]
    assert rendezvous("call-1@x", nodes) == rendezvous("call-1@x", list(reversed(nodes)))
    assert "c" not in firsts  # drained: never a home
    assert 0.70 < firsts.count("b") / len(firsts) < 0.80  # weight 3 of 4


def test_home_calls_cost_no_redis_round_trip_and_stay_findable(
    node_a: RtpengineNode, node_b: RtpengineNode, redis_client: redis.Redis, prefix: str
) -> None:
    counting = CountingRedis(connection_pool=redis_client.connection_pool)
    worker = pool_of({node_a: 1, node_b: 1}, counting, prefix)
    worker.status()  # reads the health marks once
    CountingRedis.sent = 0
    calls = {}
    for i in range(8):
        call_id = f"placed-{i}@sipio.test"
        node = worker.at(None).offer(call_id, CALLER, from_tag="a").node
        assert node == rendezvous(call_id, worker.nodes.values())[0]
        assert worker.at(node).answer(call_id, CALLEE, from_tag="a", to_tag="b").node == node
        calls[call_id] = node
    assert CountingRedis.sent == 0
    assert set(calls.values()) == {"a", "b"}
    assert not list(redis_client.scan_iter(match=f"{prefix}:call:*"))

    # Another process without the node in hand (a restart): the home node is asked first.
    other = pool_of({node_a: 1, node_b: 1}, redis_client, prefix)
    for call_id, node in list(calls.items())[:4]:
        assert other.answer(call_id, CALLEE, from_tag="a", to_tag="b").node == node
        other.delete(call_id)
        with pytest.raises(NgCallNotFound):
            worker.client(node).query(call_id)
    CountingRedis.sent = 0
    for call_id, node in list(calls.items())[4:]:
        worker.at(node).delete(call_id)
        with pytest.raises(NgCallNotFound):
            worker.client(node).query(call_id)
    assert CountingRedis.sent == 0


def test_calls_off_their_home_node_are_recorded(
    tmp_path: Path, node_b: RtpengineNode, redis_client: redis.Redis, prefix: str
) -> None:
    x = RtpengineNode("x", tmp_path)
    x.start()
    try:
        worker = pool_of({x: 1, node_b: 1}, redis_client, prefix)
        homed_on_x = [
            c
            for c in (f"exc-{i}@sipio.test" for i in range(40))
            if rendezvous(c, worker.nodes.values())[0] == "x"
        ][:3]
        x.kill()
        began = time.monotonic()
        moved = [worker.at(None).offer(c, CALLER, from_tag="a").node for c in homed_on_x]
        assert moved == ["b", "b", "b"]
        assert time.monotonic() - began < 0.3 + 3 * 0.1  # x was waited for once
        for call_id in homed_on_x:
            assert redis_client.get(f"{prefix}:call:{{{call_id}}}") == b"b"

        x.start()  # back: it must not be asked about calls it never took
        other = pool_of({x: 1, node_b: 1}, redis_client, prefix)
        other.check()
        assert other.answer(homed_on_x[0], CALLEE, from_tag="a", to_tag="b").node == "b"
        assert other.at("b").answer(homed_on_x[1], CALLEE, from_tag="a", to_tag="b").node == "b"
        for call_id in homed_on_x:
            other.at("b").delete(call_id)
            assert redis_client.exists(f"{prefix}:call:{{{call_id}}}") == 0

        # A re-offer whose node died re-anchors the call on its home node, mapping dropped.
        call_id = homed_on_x[0]
        redis_client.set(f"{prefix}:call:{{{call_id}}}", "b", ex=60)
        node_b_down = NgPool(
            [Node("x", x.host, x.ng_port), Node("b", "127.0.0.1", 9, weight=1)],
            redis_client,
            prefix=prefix,
            timeout=0.2,
        )
        assert node_b_down.at("b").offer(call_id, CALLER, from_tag="a").node == "x"
        assert redis_client.exists(f"{prefix}:call:{{{call_id}}}") == 0
        node_b_down.at("x").delete(call_id)
    finally:
        x.stop()
