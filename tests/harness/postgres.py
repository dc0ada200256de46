"""A throw-away PostgreSQL server (Debian ``postgresql``) in a temporary directory.

PostgreSQL refuses to run as root, so when the tests run as root (CI) the server runs as the
``postgres`` system user created by the Debian package.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from control.stack.ports import free_port


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server not installed: apt-get install postgresql (make deps)"
        )
    return Path(candidates[-1]).parent


class PostgresServer:
    def __init__(self) -> None:
        # Not under pytest's tmp_path: that tree is private to root and the server user
        # must be able to reach its data directory.
        self.base = Path(tempfile.mkdtemp(prefix="sipio-pg-"))
        self.data = self.base / "data"
        self.sockets = self.base / "sock"
        self.port = free_port(tcp=True, udp=False)
        self.bindir = _bindir()
        self.proc: subprocess.Popen[bytes] | None = None
        self._user = "postgres" if os.geteuid() == 0 else None

    def _as_server_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self._user, "--", *argv] if self._user else argv

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self._user:
            entry = pwd.getpwnam(self._user)
            for path in (self.base, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            self._as_server_user(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "sipio",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        log = open(self.base / "postgres.log", "ab")  # noqa: SIM115  (kept open for the server)
        self.proc = subprocess.Popen(
            self._as_server_user(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.sockets),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not start:\n" + (self.base / "postgres.log").read_text())

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://sipio@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        subprocess.run(
            [
                str(self.bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "sipio",
                name,
            ],
            check=True,
            capture_output=True,
        )
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # "fast" shutdown: disconnects clients
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)
