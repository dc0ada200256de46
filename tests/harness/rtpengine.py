"""Extra rtpengine daemons for tests that need more than the stack's one.

Each node runs in userspace (``--table=-1``) on free loopback ports, with the ng protocol on
UDP, TCP and HTTP/WebSocket, a recording directory, and optionally named interfaces (several
loopback addresses) to exercise ``direction``. It is started with the stack's own process
helpers, so stopping kills its whole process group, and `kill` simulates a crash (SIGKILL)
while `start` brings it back on the same ports.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from control.rtpengine import NgClient, NgError
from control.settings import Settings
from control.stack import supervisor
from control.stack.components import CLEAN_PATH
from control.stack.ports import free_port, free_udp_range
from control.stack.process import ProcessRecord, log_tail, spawn, stop


class RtpengineNode:
    def __init__(self, name: str, base: Path, interfaces: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.name = name
        self.dir = base / name
        self.recording_dir = self.dir / "recordings"
        self.interfaces = interfaces
        self.host = "127.0.0.1"
        self.ng_port = free_port(tcp=False)
        self.tcp_port = free_port(udp=False)
        self.http_port = free_port(udp=False)
        self.rtp = free_udp_range(200)
        self.record: ProcessRecord | None = None

    def argv(self) -> list[str]:
        return [
            "rtpengine",
            "--config-file=none",
            "--table=-1",
            *(f"--interface={spec}" for spec in self.interfaces),
            f"--listen-ng={self.host}:{self.ng_port}",
            f"--listen-tcp-ng={self.host}:{self.tcp_port}",
            f"--listen-http={self.host}:{self.http_port}",
            f"--port-min={self.rtp.start}",
            f"--port-max={self.rtp.stop - 1}",
            f"--recording-dir={self.recording_dir}",
            "--recording-method=pcap",
            "--foreground",
            "--log-stderr",
            "--log-level=6",
            "--delete-delay=0",
        ]

    def start(self, timeout: float = 10.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.record = spawn(
            f"rtpengine-{self.name}",
            self.argv(),
            {"PATH": CLEAN_PATH, "LANG": "C.UTF-8"},
            self.dir / "rtpengine.log",
            self.dir,
        )
        deadline = time.monotonic() + timeout
        with NgClient(self.host, self.ng_port, timeout=0.2) as ng:
            while time.monotonic() < deadline:
                try:
                    if ng.ping():
                        return
                except NgError:
                    pass
        self.stop()
        raise RuntimeError(f"rtpengine {self.name} did not start:\n{log_tail(self.log)}")

    @property
    def log(self) -> Path:
        return self.dir / "rtpengine.log"

    def kill(self) -> None:
        """Crash the node (SIGKILL, no clean-up), and wait until it is gone."""
        assert self.record is not None
        os.killpg(self.record.pid, signal.SIGKILL)
        stop(self.record, timeout=5.0)
        self.record = None

    def stop(self) -> None:
        if self.record is not None:
            stop(self.record, timeout=5.0)
            self.record = None


@contextmanager
def stack_with_extra_node(
    base: Path, weights: tuple[int, int] = (1, 1)
) -> Iterator[tuple[Settings, RtpengineNode]]:
    """A whole stack anchoring media on its own rtpengine and an extra node, with these
    weights (the stack's, the extra's)."""
    from tests.conftest import free_settings

    extra = RtpengineNode("extra", base)
    extra.start()
    settings = free_settings(base / "stack")
    nodes = [f"{settings.ng_host}:{settings.ng_port}:{weights[0]}",
             f"{extra.host}:{extra.ng_port}:{weights[1]}"]  # fmt: skip
    settings = settings.model_copy(update={"rtpengine_nodes": nodes})
    supervisor.up(settings)
    try:
        yield settings, extra
    finally:
        supervisor.down(settings.state_dir)
        extra.stop()
