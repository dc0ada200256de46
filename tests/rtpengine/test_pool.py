"""The node pool against real rtpengine daemons and real Redis: stickiness, health, failover."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from control.rtpengine import (
    AsyncNg,
    NgCallNotFound,
    NgNoNodeAvailable,
    NgPool,
    NgUnavailable,
    Node,
)
from control.rtpengine.pool import worker_redis
from control.stack.ports import free_port
from tests.harness.rtpengine import RtpengineNode
from tests.rtpengine.sdp import audio_sdp

CALLER = audio_sdp("alice", "192.0.2.10", 49170)
CALLEE = audio_sdp("bob", "198.51.100.20", 51000)


def pool_of(
    nodes: dict[RtpengineNode, int],
    redis_client: redis.Redis | RedisCluster,
    prefix: str,
    seed: int = 7,
    **kwargs: float,
) -> NgPool:
    """A pool as one Kamailio worker would hold it (short timeouts, seeded choice)."""
    return NgPool(
        [Node(n.name, n.host, n.ng_port, weight=w) for n, w in nodes.items()],
        redis_client,
        prefix=prefix,
        rng=random.Random(seed),
        **({"timeout": 0.3} | kwargs),  # type: ignore[arg-type]
    )


def test_calls_stick_to_their_node_across_workers_and_restarts(
    node_a: RtpengineNode, node_b: RtpengineNode, redis_client: redis.Redis, prefix: str
) -> None:
    worker1 = pool_of({node_a: 1, node_b: 1}, redis_client, prefix)
    calls = {
        f"sticky-{i}@sipio.test": worker1.offer(f"sticky-{i}@sipio.test", CALLER, from_tag="a").node
        for i in range(8)
    }
    assert set(calls.values()) == {"a", "b"}  # the weighted choice spreads calls

    worker2 = pool_of({node_a: 1, node_b: 1}, redis_client, prefix, seed=99)  # another process
    for call_id, node in calls.items():
        answered = worker2.answer(call_id, CALLEE, from_tag="a", to_tag="b")
        assert answered.node == node
        assert call_id in worker2.client(node).list_calls()
        other = "b" if node == "a" else "a"
        assert call_id not in worker2.client(other).list_calls()

    call_id, node = next(iter(calls.items()))
    key = f"{prefix}:call:{{{call_id}}}"
    assert redis_client.get(key) == node.encode()
    assert 7190 < redis_client.ttl(key) <= 7200
    redis_client.expire(key, 10)
    worker2.query(call_id)  # any command of the call refreshes the TTL
    assert redis_client.ttl(key) > 7190

    for call_id in calls:
        worker2.delete(call_id)
        assert redis_client.exists(f"{prefix}:call:{{{call_id}}}") == 0
    assert not set(calls) & set(worker1.client("a").list_calls() + worker1.client("b").list_calls())


def test_drained_node_keeps_its_calls_but_gets_no_new_ones(
    node_a: RtpengineNode, node_b: RtpengineNode, redis_client: redis.Redis, prefix: str
) -> None:
    before = pool_of({node_a: 0, node_b: 1}, redis_client, prefix)
    assert before.offer("drain-old@sipio.test", CALLER, from_tag="a").node == "b"
    drained = pool_of({node_a: 1, node_b: 0}, redis_client, prefix)
    assert {
        drained.offer(f"drain-{i}@sipio.test", CALLER, from_tag="a").node for i in range(5)
    } == {"a"}
    assert drained.answer("drain-old@sipio.test", CALLEE, from_tag="a", to_tag="b").node == "b"
    for call_id in ["drain-old@sipio.test", *(f"drain-{i}@sipio.test" for i in range(5))]:
        drained.delete(call_id)


def test_lost_mapping_is_found_again_on_the_nodes(
    node_a: RtpengineNode, node_b: RtpengineNode, redis_client: redis.Redis, prefix: str
) -> None:
    pool = pool_of({node_a: 1, node_b: 1}, redis_client, prefix)
    node = pool.offer("lost@sipio.test", CALLER, from_tag="a").node
    redis_client.delete(f"{prefix}:call:{{lost@sipio.test}}")  # expired, or Redis was flushed
    assert pool.answer("lost@sipio.test", CALLEE, from_tag="a", to_tag="b").node == node
    assert pool.node_of("lost@sipio.test") == node  # remapped
    redis_client.delete(f"{prefix}:call:{{lost@sipio.test}}")
    pool.delete("lost@sipio.test")
    with pytest.raises(NgCallNotFound):
        pool.query("lost@sipio.test")

    # A mapping to a node taken out of the configuration: a re-offer anchors anew.
    redis_client.set(f"{prefix}:call:{{moved@sipio.test}}", "retired", ex=60)
    node = pool.offer("moved@sipio.test", CALLER, from_tag="a").node
    assert node in {"a", "b"} and pool.node_of("moved@sipio.test") == node
    pool.delete("moved@sipio.test")


def test_killing_a_node_moves_new_calls_to_the_survivor(
    tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    x, y = RtpengineNode("x", tmp_path), RtpengineNode("y", tmp_path)
    x.start()
    y.start()
    try:
        worker1 = pool_of({x: 1, y: 1}, redis_client, prefix, timeout=0.4)
        anchored = {
            f"pre-{i}": worker1.offer(f"pre-{i}", CALLER, from_tag="a").node for i in range(6)
        }
        on_y = [call for call, node in anchored.items() if node == "y"]
        on_x = [call for call, node in anchored.items() if node == "x"]
        assert on_x and len(on_y) >= 2

        y.kill()
        started = time.monotonic()
        after = [worker1.offer(f"post-{i}", CALLER, from_tag="a") for i in range(6)]
        assert {reply.node for reply in after} == {"x"}
        assert time.monotonic() - started < 0.4 + 6 * 0.1  # at most one offer waited for y
        assert {f"post-{i}" for i in range(6)} <= set(worker1.client("x").list_calls())

        worker2 = pool_of({x: 1, y: 1}, redis_client, prefix, timeout=0.4, seed=3)
        assert worker2.status() == {"x": True, "y": False}  # learnt from Redis, not by waiting
        for i in range(4):
            began = time.monotonic()
            assert worker2.offer(f"other-{i}", CALLER, from_tag="a").node == "x"
            assert time.monotonic() - began < 0.2

        assert worker2.answer(on_x[0], CALLEE, from_tag="a", to_tag="b").node == "x"
        with pytest.raises(NgUnavailable):  # its media died with y: say so, do not pretend
            worker2.answer(on_y[0], CALLEE, from_tag="a", to_tag="b")
        reoffer = worker2.offer(on_y[1], CALLER, from_tag="a")  # a re-INVITE re-anchors it
        assert reoffer.node == "x" and worker1.node_of(on_y[1]) == "x"

        y.start()  # back on the same ports, as after a restart
        assert worker1.check() == {"x": True, "y": True}
        assert worker2.status() == {"x": True, "y": True}
        later = {worker2.offer(f"later-{i}", CALLER, from_tag="a").node for i in range(8)}
        assert "y" in later
    finally:
        x.stop()
        y.stop()


def test_no_live_node_is_a_typed_error(redis_client: redis.Redis, prefix: str) -> None:
    dead = Node("dead", "127.0.0.1", free_port(tcp=False))
    pool = NgPool([dead], redis_client, prefix=prefix, timeout=0.2)
    with pytest.raises(NgNoNodeAvailable):
        pool.offer("nowhere@sipio.test", CALLER, from_tag="a")
    assert pool.status() == {"dead": False}
    assert redis_client.hexists(f"{prefix}:down", "dead")
    started = time.monotonic()
    with pytest.raises(NgNoNodeAvailable):  # marked down: refused at once, no second wait
        pool.offer("nowhere-2@sipio.test", CALLER, from_tag="a")
    assert time.monotonic() - started < 0.1


def test_pool_degrades_without_redis(node_a: RtpengineNode, node_b: RtpengineNode) -> None:
    """Redis hangs (accepts, never answers): the first command pays one Redis timeout, then the
    pool leaves Redis alone and finds calls by asking the nodes."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    try:
        gone = worker_redis(f"redis://127.0.0.1:{hung.getsockname()[1]}/0", timeout=0.2)
        pool = pool_of({node_a: 1, node_b: 1}, gone, "test:no-redis")
        started = time.monotonic()
        calls = {f"hung-{i}": pool.offer(f"hung-{i}", CALLER, from_tag="a").node for i in range(4)}
        for call_id, node in calls.items():  # no mapping anywhere: found by asking the nodes
            assert pool.answer(call_id, CALLEE, from_tag="a", to_tag="b").node == node
            pool.delete(call_id)
        assert time.monotonic() - started < 0.2 + 0.5  # one Redis timeout, not one per command
        assert set(calls.values()) == {"a", "b"}
    finally:
        hung.close()


def test_pool_on_cluster(
    node_a: RtpengineNode, node_b: RtpengineNode, cluster: RedisCluster
) -> None:
    pool = pool_of({node_a: 1, node_b: 1}, cluster, "sipio:rtpengine")
    call_id = "cluster@sipio.test"
    node = pool.offer(call_id, CALLER, from_tag="a").node
    key = f"sipio:rtpengine:call:{{{call_id}}}"
    assert cluster.get(key) == node.encode()
    assert cluster.keyslot(key) == cluster.keyslot(call_id)  # the hash tag
    assert pool.answer(call_id, CALLEE, from_tag="a", to_tag="b").node == node
    pool.delete(call_id)
    assert cluster.exists(key) == 0


def test_asyncio_services_share_one_pool(
    node_a: RtpengineNode, node_b: RtpengineNode, redis_client: redis.Redis, prefix: str
) -> None:
    async def main() -> set[tuple[str, str]]:
        async with AsyncNg(pool_of({node_a: 1, node_b: 1}, redis_client, prefix)) as media:
            ids = [f"async-{i}@sipio.test" for i in range(24)]
            offers = await asyncio.gather(
                *(media.run(media.target.offer, c, CALLER, from_tag="a") for c in ids)
            )
            answers = await asyncio.gather(
                *(media.run(media.target.answer, c, CALLEE, from_tag="a", to_tag="b") for c in ids)
            )
            assert [o.node for o in offers] == [a.node for a in answers]
            await asyncio.gather(*(media.run(media.target.delete, c) for c in ids))
            with pytest.raises(NgCallNotFound):
                await media.run(media.target.query, ids[0])
            return {(o.node, o.sdp.split("m=audio ")[1].split()[0]) for o in offers}

    anchors = asyncio.run(main())
    assert len(anchors) == 24  # every call got its own port on its node
