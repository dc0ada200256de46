"""A pool of rtpengine nodes: weighted choice for new calls, stickiness, failover.

Stickiness. A call's media lives on the node that took its offer; answer, delete and every
later command must reach that node, whichever Kamailio worker (or process, after a restart)
handles the request. The mapping lives in Redis, one key per call::

    <prefix>:call:{<call-id>}  ->  node name        (EX sticky_ttl)

One Redis round trip per command: an offer claims the key with ``SET NX GET EX`` (Redis 7;
a re-offer finds the existing node in the reply and pushes its expiry back), later commands
read it with GETEX, which also pushes the expiry back, so an active call never loses its
mapping, and ``delete`` takes it with GETDEL (put back should the node not answer). A delete
with ``via_branch`` ends one fork only and keeps the mapping. Every operation touches a single
key, so the pool
works unchanged on Redis Cluster; the braces make the Call-ID the key's hash tag, so other
per-call keys written as ``...{<call-id>}`` land in the same slot and can share a MULTI.
The value is the node's *name*, not its address, so readdressing a node keeps its calls.
Should the key be gone anyway (expired on a call silent for longer than the TTL, Redis
flushed, Redis unreachable), a command for the call asks the nodes in turn and remaps the call
to the one that knows it: slower, never wrong, since a node that lacks the call says so.

Health. A node that does not answer a command in time is marked down for everyone::

    <prefix>:down   hash  node name -> epoch ms of the last failure

New calls skip a node marked down less than ``retry_after`` seconds ago. After that a worker
that would choose it pings it first (``probe_timeout``): a pong removes the mark and the node
takes calls again; silence renews the mark, so across all workers a dead node costs about one
probe per ``retry_after``. `check()` pings every node and updates the marks; run it
periodically (a timer process, an asyncio task) to keep marks fresh so that no call ever pays
for a probe. Workers re-read the marks at most every ``health_refresh`` seconds.

Calls already anchored on a dead node are not moved (their media is gone with the node):
commands for them raise `NgUnavailable`, except a re-offer (re-INVITE), which re-anchors the
call on a live node.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from control.rtpengine.codec import NgReply, NgValue
from control.rtpengine.commands import CallCommands
from control.rtpengine.errors import (
    NgCallNotFound,
    NgError,
    NgNoNodeAvailable,
    NgOverloaded,
    NgUnavailable,
)
from control.rtpengine.ng import NgClient
from control.rtpengine.transport import TransportName

if TYPE_CHECKING:
    from control.settings import Settings

log = logging.getLogger(__name__)

RedisClient = redis.Redis | RedisCluster
T = TypeVar("T")


def worker_redis(url: str, *, timeout: float = 0.2) -> redis.Redis:
    """A Redis client fit for a Kamailio worker: short timeouts and no retries (redis-py's
    default retries with backoff for seconds, which would stall SIP processing)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def configured_nodes(settings: Settings) -> list[Node]:
    """The stack's nodes from ``rtpengine_nodes`` ("host:port[:weight]", named rtp0, rtp1, …);
    none configured: the stack's own rtpengine, named "local"."""
    if not settings.rtpengine_nodes:
        return [Node("local", settings.ng_host, settings.ng_port)]
    found = []
    for index, spec in enumerate(settings.rtpengine_nodes):
        host, port, *weight = spec.rsplit(":", 2) if spec.count(":") >= 2 else (*spec.split(":"),)
        found.append(Node(f"rtp{index}", host, int(port), int(weight[0]) if weight else 1))
    return found


@dataclass(frozen=True)
class Node:
    """One rtpengine as the pool knows it. ``weight`` 0 drains it: no new calls, old ones stay."""

    name: str
    host: str
    port: int
    weight: int = 1
    transport: TransportName = "udp"

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name):
            raise ValueError(f"node name {self.name!r} must be a non-empty word")
        if self.weight < 0:
            raise ValueError(f"node {self.name}: weight must not be negative")
        if not 0 < self.port < 65536:
            raise ValueError(f"node {self.name}: port {self.port} out of range")


class NgPool(CallCommands):
    """Sends each call's commands to its node; see the module docstring for the rules."""

    def __init__(
        self,
        nodes: Sequence[Node],
        redis_client: RedisClient,
        *,
        prefix: str = "sipio:rtpengine",
        sticky_ttl: int = 7200,
        timeout: float = 0.5,
        attempts: int = 3,
        retry_after: float = 5.0,
        probe_timeout: float = 0.2,
        health_refresh: float = 1.0,
        redis_backoff: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        names = [node.name for node in nodes]
        if not nodes or len(set(names)) != len(names):
            raise ValueError("a pool needs at least one node and unique node names")
        self.nodes = {node.name: node for node in nodes}
        self.redis = redis_client
        self.prefix = prefix
        self.sticky_ttl = sticky_ttl
        self.retry_after = retry_after
        self.health_refresh = health_refresh
        self.redis_backoff = redis_backoff
        self._redis_off_until = float("-inf")
        self._clients = {
            n.name: NgClient(
                n.host,
                n.port,
                timeout=timeout,
                attempts=attempts,
                transport=n.transport,
                name=n.name,
            )
            for n in nodes
        }
        self._probes = {
            n.name: NgClient(
                n.host,
                n.port,
                timeout=probe_timeout,
                attempts=2,
                transport=n.transport,
                name=n.name,
            )
            for n in nodes
        }
        self._down: dict[str, float] = {}  # node -> epoch seconds of its last failure
        self._down_read = float("-inf")  # time.monotonic() of the last read of the shared marks
        self._rng = rng or random.Random()

    # -- Redis: a failure degrades (stickiness by asking the nodes, local health) instead of
    # failing calls. Give the pool a client with short timeouts and no retries (see docs).

    def _redis(self, what: str, op: Callable[[], T], default: T) -> T:
        """Run a Redis operation; after a failure skip Redis for ``redis_backoff`` seconds, so
        an outage costs one slow call per period, not one per SIP request."""
        if time.monotonic() < self._redis_off_until:
            return default
        try:
            return op()
        except redis.RedisError as exc:
            self._redis_off_until = time.monotonic() + self.redis_backoff
            log.warning(
                "rtpengine pool: Redis %s failed, going without it for %ss: %s",
                what,
                self.redis_backoff,
                exc,
            )
            return default

    def call_key(self, call_id: str) -> str:
        return f"{self.prefix}:call:{{{call_id}}}"

    @property
    def down_key(self) -> str:
        return f"{self.prefix}:down"

    def node_of(self, call_id: str) -> str | None:
        """The node a call is anchored on, as Redis says (no TTL refresh)."""
        value = self._redis("GET", lambda: self.redis.get(self.call_key(call_id)), None)
        return _text(value)

    def _mapped(self, key: str) -> str | None:
        value = self._redis("GETEX", lambda: self.redis.getex(key, ex=self.sticky_ttl), None)
        name = _text(value)
        return name if name in self.nodes else None

    def _map(self, key: str, node: str, *, only_new: bool = False) -> bool:
        """Point the call at ``node``; with ``only_new`` only if no node holds it yet."""
        return self._redis(
            "SET", lambda: bool(self.redis.set(key, node, ex=self.sticky_ttl, nx=only_new)), True
        )

    # -- health

    def _refresh_down(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._down_read < self.health_refresh:
            return
        marks = self._redis("HGETALL", lambda: self.redis.hgetall(self.down_key), None)
        self._down_read = now
        if marks is not None:
            self._down = {
                name: _epoch(ms) for raw, ms in marks.items() if (name := _text(raw)) in self.nodes
            }

    def _mark_down(self, node: str, reason: NgError) -> None:
        if node not in self._down:
            log.warning("rtpengine node %s is down: %s", node, reason)
        now = time.time()
        self._down[node] = now
        self._redis("HSET", lambda: self.redis.hset(self.down_key, node, int(now * 1000)), 0)

    def _mark_up(self, node: str) -> None:
        if self._down.pop(node, None) is not None:
            log.warning("rtpengine node %s answers again", node)
            self._redis("HDEL", lambda: self.redis.hdel(self.down_key, node), 0)

    def _recently_down(self, node: str) -> bool:
        since = self._down.get(node)
        return since is not None and time.time() - since < self.retry_after

    def check(self) -> dict[str, bool]:
        """Ping every node now and update the shared marks; name -> answered."""
        self._refresh_down(force=True)
        result = {}
        for name in self.nodes:
            result[name] = self._probe(name)
        return result

    def status(self) -> dict[str, bool]:
        """name -> True unless the node is marked down (as all workers see it, read now)."""
        self._refresh_down(force=True)
        return {name: name not in self._down for name in self.nodes}

    def client(self, node: str) -> NgClient:
        """The node's own client, for node-wide commands (list, statistics, ping)."""
        return self._clients[node]

    def close(self) -> None:
        for client in (*self._clients.values(), *self._probes.values()):
            client.close()

    def __enter__(self) -> NgPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- choosing and talking to nodes

    def _pick(self, exclude: Iterable[str], preference: Sequence[str] | None = None) -> str | None:
        """A node for a new call among those not excluded nor recently down: the first of
        ``preference`` (the call's rendezvous order), or a weighted random one."""
        self._refresh_down()
        skip = set(exclude)
        while True:
            candidates = [
                n
                for n in self.nodes.values()
                if n.weight > 0 and n.name not in skip and not self._recently_down(n.name)
            ]
            if not candidates:
                return None
            if preference is None:
                chosen = self._rng.choices(candidates, [n.weight for n in candidates])[0].name
            else:
                names = {n.name for n in candidates}
                chosen = next(name for name in preference if name in names)
            if chosen not in self._down or self._probe(chosen):
                return chosen
            skip.add(chosen)

    def _probe(self, node: str) -> bool:
        try:
            self._probes[node].ping()
        except NgError as exc:
            self._mark_down(node, exc)
            return False
        self._mark_up(node)
        return True

    def _on(self, node: str, command: str, call_id: str, params: dict[str, NgValue]) -> NgReply:
        try:
            reply = self._clients[node].request(command, {**params, "call-id": call_id})
        except NgUnavailable as exc:
            self._mark_down(node, exc)
            raise
        if node in self._down:
            self._mark_up(node)
        return reply

    def _send(self, command: str, call_id: str, params: dict[str, NgValue]) -> tuple[str, NgReply]:
        if command == "offer":
            return self._anchor(call_id, params)
        if command == "delete" and "via-branch" not in params:
            return self._delete(call_id, params)
        node = self._mapped(self.call_key(call_id))
        if node is None:
            return self._search(command, call_id, params)
        return node, self._on(node, command, call_id, params)

    def _delete(self, call_id: str, params: dict[str, NgValue]) -> tuple[str, NgReply]:
        """GETDEL the mapping (one round trip); put it back if the node did not answer."""
        key = self.call_key(call_id)
        node = _text(self._redis("GETDEL", lambda: self.redis.getdel(key), None))
        if node is None or node not in self.nodes:
            return self._search("delete", call_id, params)
        try:
            return node, self._on(node, "delete", call_id, params)
        except NgUnavailable:
            self._map(key, node, only_new=True)  # the call may live on if the node comes back
            raise

    def _anchor(self, call_id: str, params: dict[str, NgValue]) -> tuple[str, NgReply]:
        """Offer on the call's node (a re-offer) or on a newly chosen one, failing over."""
        key = self.call_key(call_id)
        choice = self._pick(exclude=())
        held = self._claim(key, choice) if choice is not None else self._mapped(key)
        if held is not None and not self._recently_down(held):
            node: str | None = held  # a re-offer (re-INVITE), or a concurrent offer won the race
        else:
            node = choice
            if held is not None and node is not None:
                self._map(key, node)  # its node died: re-anchor the call
        tried: list[str] = []
        failure: NgError | None = None
        while node is not None:
            tried.append(node)
            try:
                return node, self._on(node, "offer", call_id, params)
            except (NgUnavailable, NgOverloaded) as exc:
                failure = exc
            node = self._pick(exclude=tried)
            if node is not None:
                self._map(key, node)
        tried_text = ", ".join(tried) or "none: all drained or down"
        raise NgNoNodeAvailable(
            f"no rtpengine node took call {call_id!r} (tried {tried_text}; last: {failure})"
        ) from failure

    # -- calls whose node the caller keeps (see `at`)

    def at(self, node: str | None) -> PlacedCall:
        """The call commands for a caller that keeps each call's node itself (Kamailio: in
        the transaction and the dialog); ``node`` is where the call's offer went (the
        ``SdpReply.node`` of an earlier command), None for a new call.

        A new call goes to the first live node of its rendezvous order (a hash of the Call-ID
        and the node names, the same in every worker and process), so Redis learns about it
        only when it lands elsewhere (failover, overload, a drained home): in steady state a
        call costs no Redis round trip at all. Commands for a known node go straight to it;
        a re-offer whose node died re-anchors the call. Without the node (another process, a
        restart) the plain pool commands still find every call: the Redis key for calls off
        their home node, the home node first otherwise.
        """
        return PlacedCall(self, node)

    def _send_placed(
        self, node: str | None, command: str, call_id: str, params: dict[str, NgValue]
    ) -> tuple[str, NgReply]:
        if node is None or node not in self.nodes:
            if command == "offer":
                return self._place(call_id, params, moved=node is not None)
            return self._send(command, call_id, params)  # ask Redis, then the nodes
        self._refresh_down()
        if command == "offer" and self._recently_down(node):
            return self._place(call_id, params, moved=True, exclude=(node,))
        try:
            reply = self._on(node, command, call_id, params)
        except NgUnavailable:
            if command != "offer":
                raise
            return self._place(call_id, params, moved=True, exclude=(node,))
        if command == "delete" and "via-branch" not in params:
            home = rendezvous(call_id, self.nodes.values())[:1]
            if [node] != home:  # its exception mapping goes with it
                key = self.call_key(call_id)
                self._redis("DEL", lambda: self.redis.delete(key), 0)
        return node, reply

    def _place(
        self,
        call_id: str,
        params: dict[str, NgValue],
        *,
        moved: bool,
        exclude: Iterable[str] = (),
    ) -> tuple[str, NgReply]:
        """Offer on the call's first live node in rendezvous order, failing over; record the
        node in Redis only when it is not the home node (or the call ``moved`` from one)."""
        preference = rendezvous(call_id, self.nodes.values())
        key = self.call_key(call_id)
        tried = list(exclude)
        failure: NgError | None = None
        while (node := self._pick(tried, preference)) is not None:
            tried.append(node)
            try:
                reply = self._on(node, "offer", call_id, params)
            except (NgUnavailable, NgOverloaded) as exc:
                failure = exc
                continue
            if node != preference[0]:
                self._map(key, node)  # an exception: every worker must find it
            elif moved:
                self._redis("DEL", lambda: self.redis.delete(key), 0)  # home again
            return node, reply
        tried_text = ", ".join(tried) or "none: all drained or down"
        raise NgNoNodeAvailable(
            f"no rtpengine node took call {call_id!r} (tried {tried_text}; last: {failure})"
        ) from failure

    def _claim(self, key: str, node: str) -> str | None:
        """Map the call to ``node`` unless it has a node already; return that node, if any.

        One round trip for a new call: SET NX GET (Redis 7). A re-offer only pushes the
        existing mapping's expiry back; a mapping to a node no longer configured is replaced.
        """
        value = self._redis(
            "SET", lambda: self.redis.set(key, node, nx=True, get=True, ex=self.sticky_ttl), None
        )
        held = _text(value)
        if held is None:
            return None
        if held not in self.nodes:
            self._map(key, node)
            return None
        self._redis("EXPIRE", lambda: self.redis.expire(key, self.sticky_ttl), False)
        return held

    def _search(
        self, command: str, call_id: str, params: dict[str, NgValue]
    ) -> tuple[str, NgReply]:
        """No mapping: ask the live nodes until one knows the call, and remap it there."""
        self._refresh_down()
        unreachable: NgUnavailable | None = None
        likely = rendezvous(call_id, self.nodes.values())  # where a placed call's offer went
        for node in dict.fromkeys([*likely, *self.nodes]):
            if self._recently_down(node):
                unreachable = NgUnavailable(f"rtpengine node {node} is down")
                continue
            try:
                reply = self._on(node, command, call_id, params)
            except NgCallNotFound:
                continue
            except NgUnavailable as exc:
                unreachable = exc
                continue
            if command != "delete":
                self._map(self.call_key(call_id), node, only_new=True)
            return node, reply
        if unreachable is not None:  # the call may well be on the node we could not ask
            raise NgUnavailable(f"call {call_id!r} not found on live nodes: {unreachable}")
        raise NgCallNotFound(command, f"no node of the pool knows call-id {call_id!r}")


class PlacedCall(CallCommands):
    """`NgPool.at`: the pool's call commands with the call's node given by the caller."""

    def __init__(self, pool: NgPool, node: str | None) -> None:
        self.pool = pool
        self.node = node

    def _send(self, command: str, call_id: str, params: dict[str, NgValue]) -> tuple[str, NgReply]:
        return self.pool._send_placed(self.node, command, call_id, params)


def rendezvous(call_id: str, nodes: Iterable[Node]) -> list[str]:
    """Names of the nodes that take new calls (weight > 0), best first for this call: weighted
    rendezvous hashing. Every process computes the same order, a node gets calls in
    proportion to its weight, and adding or removing a node moves only that node's share."""
    takers = [node for node in nodes if node.weight > 0]
    if len(takers) < 2:
        return [node.name for node in takers]  # nothing to hash
    scored = []
    for node in takers:
        digest = hashlib.blake2b(f"{node.name}\0{call_id}".encode(), digest_size=8).digest()
        unit = (int.from_bytes(digest) + 1) / (2**64 + 2)  # in (0, 1)
        scored.append((node.weight / -math.log(unit), node.name))
    return [name for _, name in sorted(scored, reverse=True)]


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _epoch(milliseconds: object) -> float:
    """A mark's time in epoch seconds; an unreadable mark counts as fresh (down now)."""
    try:
        return int(_text(milliseconds) or "") / 1000
    except ValueError:
        return time.time()
