"""Run SIPp scenarios (Debian package ``sip-tester``) against a stack.

SIPp's built-in uac/uas ignore Record-Route, so proxied dialogs use the scenario copies in
``scenarios/`` that honour it. Under load pass ``-buff_size 4194304``: the default socket
buffers drop datagrams and show up as false failures.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
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


def run(
    scenario_file: Path | str,
    target: str,
    *,
    calls: int = 1,
    rate: float | None = None,
    local_ip: str = "127.0.0.1",
    local_port: int = 0,
    transport: str = "u1",
    timeout: float = 30.0,
    extra: Sequence[str] = (),
) -> SippResult:
    """Run ``calls`` calls of a scenario to ``target`` (host:port) and wait for SIPp to exit."""
    binary = shutil.which("sipp")
    if binary is None:
        raise SippMissing("sipp not found: install the Debian package sip-tester (make deps)")
    if local_port == 0:  # SIPp reads 0 as "5060, else the next free one": pick one ourselves
        local_port = free_port(local_ip)
    with tempfile.TemporaryDirectory(prefix="sipio-sipp-") as work:
        trace = Path(work) / "messages.log"
        argv = [
            binary,
            target,
            "-sf",
            str(scenario_file),
            "-m",
            str(calls),
            "-i",
            local_ip,
            "-p",
            str(local_port),
            "-t",
            transport,
            "-nostdin",
            "-timeout",
            f"{max(1, int(timeout))}s",
            "-trace_msg",
            "-message_file",
            str(trace),
            "-trace_err",
            "-error_file",
            str(Path(work) / "errors.log"),
        ]
        if rate is not None:
            argv += ["-r", str(rate)]
        argv += list(extra)
        proc = subprocess.run(
            argv, cwd=work, capture_output=True, text=True, timeout=timeout + 15, check=False
        )
        messages = trace.read_text(errors="replace") if trace.exists() else ""
        errors = Path(work) / "errors.log"
        output = proc.stdout + proc.stderr
        if errors.exists():
            output += "\n" + errors.read_text(errors="replace")
    return SippResult(proc.returncode, output, messages)
