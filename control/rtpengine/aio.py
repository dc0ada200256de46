"""asyncio access to a client or pool: the blocking code, run in a bounded thread pool.

Why a wrapper and not a second, asyncio-native client: the parts that can go wrong -- cookie
matching, retransmission, error mapping, stickiness in Redis, failover -- then exist once and
are tested once, against real rtpengine and Redis. The cost is a thread hop (tens of
microseconds, measured in ``bench/ng_rate.py``) on a round trip that is itself ~100 us, for
commands issued once per call or per prompt, never per packet. A dead node holds a thread for
at most the client's ``timeout``; ``max_workers`` bounds how many such waits run at once, and
the event loop never blocks. `NgClient` and `NgPool` are thread-safe for this (one socket per
thread; redis-py's connection pool).

    media = AsyncNg(NgPool(nodes, redis_client))
    reply = await media.run(media.target.offer, call_id, sdp, from_tag=tag)
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closable)


class AsyncNg(Generic[C]):
    """Runs ``target``'s blocking methods off the event loop, ``max_workers`` at a time."""

    def __init__(self, target: C, *, max_workers: int = 8) -> None:
        self.target = target
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="ng")

    async def run(self, method: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``await run(target.offer, ...)``: the call, its result or its typed exception."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(method, *args, **kwargs)
        )

    async def aclose(self) -> None:
        """Wait for running commands, then close the target's sockets."""
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
        self.target.close()

    async def __aenter__(self) -> AsyncNg[C]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
