"""Run SIPp scenarios (Debian package ``sip-tester``) against a stack.

SIPp's built-in uac/uas ignore Record-Route, so proxied dialogs use the scenario copies in
``scenarios/`` that honour it (``rrs="true"``, ``[routes]``, ``[next_url]``). Under load pass
``-buff_size 4194304``: the default socket buffers drop datagrams and show up as false failures.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from control.stack.ports import free_port

SCENARIOS = Path(__file__).with_name("scenarios")
LOAD_BUFFER = 4194304

# SIPp's documented exit codes.
EXIT_MEANING = {
    0: "all calls succeeded",
    1: "at least one call failed",
    97: "exit on internal command",
    99: "normal exit without calls processed",
    255: "fatal error",
    254: "fatal error binding a socket",
}


class SippMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class SippResult:
    returncode: int
    output: str
    messages: str  # full SIP trace (-trace_msg)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def meaning(self) -> str:
        return EXIT_MEANING.get(self.returncode, f"exit code {self.returncode}")


def scenario(name: str) -> Path:
    path = SCENARIOS / name
    if not path.exists():
        raise FileNotFoundError(f"no SIPp scenario {name!r} in {SCENARIOS}")
    return path


class SippProcess:
    """A SIPp run in the background (a phone waiting for calls, say)."""

    def __init__(self, argv: list[str], work: tempfile.TemporaryDirectory[str], timeout: float):
        self._work = work
        self.timeout = timeout
        self.dir = Path(work.name)
        self.proc = subprocess.Popen(
            argv, cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def wait(self) -> SippResult:
        try:
            output, _ = self.proc.communicate(timeout=self.timeout + 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            output, _ = self.proc.communicate()
        messages = self.dir / "messages.log"
        errors = self.dir / "errors.log"
        text = messages.read_text(errors="replace") if messages.exists() else ""
        if errors.exists():
            output += "\n" + errors.read_text(errors="replace")
        self._work.cleanup()
        return SippResult(self.proc.returncode, output, text)

    def stop(self) -> SippResult:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.wait()


def start(
    scenario_file: Path | str,
    target: str | None,
    *,
    calls: int = 1,
    rate: float | None = None,
    local_ip: str = "127.0.0.1",
    local_port: int = 0,
    transport: str = "u1",
    timeout: float = 30.0,
    keys: Mapping[str, str | int] | None = None,
    auth: tuple[str, str] | None = None,
    extra: Sequence[str] = (),
) -> SippProcess:
    """Start SIPp; ``target`` None for a UAS that only waits for calls on ``local_port``."""
    binary = shutil.which("sipp")
    if binary is None:
        raise SippMissing("sipp not found: install the Debian package sip-tester (make deps)")
    if local_port == 0:  # SIPp reads 0 as "5060, else the next free one": pick one ourselves
        local_port = free_port(local_ip)
    work = tempfile.TemporaryDirectory(prefix="sipio-sipp-")
    argv = [binary] + ([target] if target else []) + [
        "-sf", str(scenario_file),
        "-m", str(calls),
        "-i", local_ip,
        "-p", str(local_port),
        "-t", transport,
        "-nostdin",
        "-timeout", f"{max(1, int(timeout))}s",
        "-trace_msg", "-message_file", str(Path(work.name) / "messages.log"),
        "-trace_err", "-error_file", str(Path(work.name) / "errors.log"),
    ]  # fmt: skip
    if rate is not None:
        argv += ["-r", str(rate)]
    for key, value in (keys or {}).items():
        argv += ["-key", key, str(value)]
    if auth is not None:
        argv += ["-au", auth[0], "-ap", auth[1]]
    argv += list(extra)
    return SippProcess(argv, work, timeout)


def run(scenario_file: Path | str, target: str | None, **kwargs: object) -> SippResult:
    """Run a scenario to completion."""
    return start(scenario_file, target, **kwargs).wait()  # type: ignore[arg-type]
