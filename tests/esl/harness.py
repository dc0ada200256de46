"""Running controllers in-process for tests, and reading what they wrote to Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from esl.controller import Controller, ControllerConfig
from esl.flows import FlowSource, StaticFlowSource
from esl.http_command import HttpPolicy, HttpRunner
from esl.outbound import OutboundServer
from esl.session_store import STREAM, SessionStore, session_key

DOCS = Path(__file__).resolve().parents[2] / "docs" / "flows"


def new_account() -> str:
    return f"acc_t{uuid.uuid4().hex[:12]}"


def doc(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DOCS / name).read_text())
    return data


def static(account: str, *documents: Mapping[str, Any]) -> StaticFlowSource:
    return StaticFlowSource({(account, d["id"]): [d] for d in documents})


@dataclass
class Running:
    controller: Controller
    server: OutboundServer
    store: SessionStore

    @property
    def address(self) -> tuple[str, int]:
        return self.server.host, self.server.port


@asynccontextmanager
async def running(
    redis_url: str, flows: FlowSource, node_id: str = "ctl-a", **config: Any
) -> AsyncIterator[Running]:
    store = SessionStore.from_url(redis_url)
    http = HttpRunner(HttpPolicy(allow_private=True))  # the test HTTP server is on loopback
    settings = {"linger_sec": 1, **config}
    controller = Controller(store, flows, http, ControllerConfig(node_id=node_id, **settings))
    server = OutboundServer(controller.handle, "127.0.0.1", 0)
    await server.start()
    try:
        yield Running(controller, server, store)
    finally:
        await server.stop()
        http.close()
        await store.close()


def trace(client: redis.Redis, call_id: str) -> list[dict[str, Any]]:
    """This call's entries of ``sipio:events``, in stream order."""
    found = []
    for _, fields in reversed(client.xrevrange(STREAM, "+", "-", count=20_000)):
        event = json.loads(fields[b"e"])
        if event.get("call_id") == call_id:
            found.append(event)
    return found


def session(client: redis.Redis, account: str, call_id: str) -> dict[str, str]:
    raw = client.hgetall(session_key(account, call_id))
    return {k.decode(): v.decode() for k, v in raw.items()}
