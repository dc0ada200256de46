"""``sipio esl-controller``: the controller as a process.

It listens for FreeSWITCH's ``socket`` application, reads flows from the config DB and keeps
sessions in Redis. Stopping it (SIGTERM/SIGINT) closes the calls' sockets at once: each call
was told to ``resume``, so FreeSWITCH continues its dialplan into the next ``socket`` action,
i.e. another controller, which takes the call over from Redis. Draining hour-long calls on
every restart is what that design avoids.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Engine

from control.core.flow import CommandKind
from control.db.engine import make_engine
from control.live.acd import AcdStore
from esl.apps import MediaConfig
from esl.callbacks import CallbackDialer, CallbackPolicy
from esl.conference import ConferenceFeature, ConferenceStore, EslTarget
from esl.controller import Controller, ControllerConfig, Feature
from esl.flows import SqlFlowSource
from esl.http_command import HttpPolicy, HttpRunner
from esl.outbound import OutboundServer
from esl.queue import QueueFeature
from esl.queues_source import SqlQueueSource
from esl.session_store import SessionStore
from esl.voicemail import VoicemailConfig, VoicemailFeature, VoicemailStore

log = structlog.get_logger("esl.service")


@dataclass(frozen=True)
class ServiceConfig:
    redis_url: str
    db_url: str
    host: str = "127.0.0.1"
    port: int = 8084
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    http: HttpPolicy = field(default_factory=HttpPolicy)
    voicemail: VoicemailConfig = field(default_factory=VoicemailConfig)
    callbacks: CallbackPolicy = field(default_factory=CallbackPolicy)
    # FreeSWITCH's inbound event socket, for placing queue callbacks; None: no dialer here
    freeswitch: EslTarget | None = None


async def serve(
    config: ServiceConfig,
    ready: Callable[[str, int], None] | None = None,
    done: Callable[[dict[str, float]], None] | None = None,
) -> None:
    engine = make_engine(config.db_url)
    store = SessionStore.from_url(config.redis_url)
    http = HttpRunner(config.http)
    queue = queue_feature(engine, config, http)
    controller = Controller(
        store, SqlFlowSource(engine), http, config.controller,
        features={**media_features(engine, config), CommandKind.ENQUEUE: queue},
    )  # fmt: skip
    server = OutboundServer(controller.handle, config.host, config.port)
    host, port = await server.start()
    dialer = callback_dialer(queue, config)
    if dialer is not None:
        await dialer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    log.info("esl.controller.listening", host=host, port=port, node=config.controller.node_id)
    if ready is not None:
        ready(host, port)
    try:
        await stop.wait()
    finally:
        figures = summary(controller)
        log.info("esl.controller.stopping", active=len(server.active), **figures)
        await server.stop(grace=0)
        if dialer is not None:
            await dialer.stop()
        if done is not None:
            done(figures)
        http.close()
        await store.close()
        engine.dispose()


def media_features(engine: Engine, config: ServiceConfig) -> dict[CommandKind, Feature]:
    """Commands the controller runs itself, against our DB and media store (voicemail,
    conference rooms); PINs are resolved through the process's secret store at use time."""
    return {
        CommandKind.VOICEMAIL: VoicemailFeature(VoicemailStore(engine), config.voicemail),
        CommandKind.CONFERENCE: ConferenceFeature(ConferenceStore(engine)),
    }


def queue_feature(engine: Engine, config: ServiceConfig, http: HttpRunner) -> QueueFeature:
    """Queued callers (esl/queue.py): ACD state in the same Redis as the sessions, queue
    rows, in-queue options and memberships read from the config DB (2 s cache)."""
    acd = AcdStore.from_url(config.redis_url)
    return QueueFeature(acd, SqlQueueSource(engine), http=http, callbacks=config.callbacks)


def callback_dialer(queue: QueueFeature, config: ServiceConfig) -> CallbackDialer | None:
    """The queue callback dialer on this node's FreeSWITCH (same ACD and queue source as the
    queue feature). Without a readable event-socket password the controller runs without
    one, and says so: callbacks then wait for another controller's dialer."""
    target = config.freeswitch
    if target is None:
        return None
    try:
        password = target.password()
    except Exception as exc:  # no store, no secret, store unreachable: run without a dialer
        log.error("esl.callbacks.disabled", reason=f"event socket password: {type(exc).__name__}")
        return None
    return CallbackDialer.connect(
        queue.acd, queue.queues, target.host, target.port, password, config.controller.media,
        node_id=config.controller.node_id, policy=config.callbacks,
    )  # fmt: skip


def summary(controller: Controller) -> dict[str, float]:
    """Counters, and the controller's own time between a result and the next command
    (interpreter step + Redis write-ahead save), in ms."""
    stats = controller.stats
    times = sorted(stats.turnaround_ms)

    def pct(q: float) -> float:
        return round(times[min(len(times) - 1, int(len(times) * q))], 3) if times else 0.0

    return {
        "calls": stats.calls, "resumed": stats.resumed, "rejected": stats.rejected,
        "lost": stats.lost, "commands": stats.commands,
        "step_save_p50_ms": pct(0.5), "step_save_p95_ms": pct(0.95), "step_save_p99_ms": pct(0.99),
    }  # fmt: skip


def run(config: ServiceConfig) -> None:
    """The CLI's entry: one line on stdout when listening, one JSON line of figures at exit."""
    asyncio.run(
        serve(
            config,
            ready=lambda h, p: print(f"listening {h}:{p}", flush=True),
            done=lambda figures: print(f"stats {json.dumps(figures)}", flush=True),
        )
    )


def media_config(proxy: str, media_root: str, recordings_root: str) -> MediaConfig:
    """The stack's media store: the API serves voicemail audio from the same directories."""
    return MediaConfig(proxy=proxy, media_root=media_root, recordings_root=recordings_root)
