"""Redis plumbing shared by the live-state adapters: a client fit for a SIP worker, and Lua
scripts run by digest with the NOSCRIPT fallback (a restarted or failed-over Redis has
forgotten every script; the first call after that loads it again)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import NoScriptError
from redis.retry import Retry

RedisClient = redis.Redis | RedisCluster
Pipeline = redis.client.Pipeline | ClusterPipeline


def worker_redis(url: str, *, timeout: float = 0.2) -> redis.Redis:
    """Short timeouts and no retries: redis-py's default retries with backoff for seconds,
    which would hold a SIP request (and the Kamailio worker) hostage during an outage."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


class Lua:
    """One script: EVALSHA always (one round trip), SCRIPT LOAD + retry on NOSCRIPT."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, client: RedisClient, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    def queue(self, pipe: Pipeline, keys: Sequence[str], args: Sequence[Any]) -> None:
        # Not pipe.evalsha(): redis-py's cluster pipeline blocks that name, yet routes the
        # command itself by its first key like any other.
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]


def run_pipeline(
    client: RedisClient,
    pipe: Pipeline,
    scripts: Mapping[int, tuple[Lua, Sequence[str], Sequence[Any]]],
) -> list[Any]:
    """Execute ``pipe``; replies that are NOSCRIPT (``scripts`` maps their position to the
    call) are run again after loading the script. Other errors are raised."""
    replies: list[Any] = pipe.execute(raise_on_error=False)
    for index, reply in enumerate(replies):
        if isinstance(reply, NoScriptError) and index in scripts:
            script, keys, args = scripts[index]
            replies[index] = script(client, keys, args)
        elif isinstance(reply, Exception):
            raise reply
    return replies


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
