"""Child processes owned by the stack.

Each component runs as the leader of its own session, so its pid is also the process group of
everything it forks (Kamailio workers, gunicorn workers). Stopping kills that group and waits
until no member is left. A pid is only trusted together with its start time read from
``/proc``, so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ProcessRecord:
    """What `sipio down` needs to find (and only find) a process that `sipio up` started."""

    name: str
    pid: int
    start_ticks: int
    argv: list[str]
    log: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_ticks=int(data["start_ticks"]),
            argv=[str(a) for a in data["argv"]],
            log=str(data["log"]),
        )


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after its closing parenthesis.
    return raw[raw.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of stat


def is_running(record: ProcessRecord) -> bool:
    fields = _stat_fields(record.pid)
    if fields is None or fields[0] == "Z":
        return False
    return int(fields[19]) == record.start_ticks


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def spawn(
    name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path
) -> ProcessRecord:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ticks = start_ticks(proc.pid)
    if ticks is None:  # exited before we could look: record it so the caller sees it dead
        ticks = -1
    _reapers[proc.pid] = proc
    return ProcessRecord(name, proc.pid, ticks, list(argv), str(log_path))


# Popen objects of children started by this process, so they are reaped (no zombies) when they
# exit while we still run; `sipio up` exits right after start and init adopts them.
_reapers: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> None:
    proc = _reapers.get(pid)
    if proc is not None and proc.poll() is not None:
        del _reapers[pid]


def stop(record: ProcessRecord, timeout: float = 10.0) -> bool:
    """Stop a component and everything in its process group. True when nothing is left."""
    if not is_running(record) and start_ticks(record.pid) is not None:
        # The pid belongs to another process now. Linux never reuses a pid while a process
        # group of that number exists, so ours is already empty: nothing of ours to signal.
        return True
    _signal_group(record.pid, signal.SIGTERM)
    if _wait_group_gone(record.pid, timeout):
        return True
    _signal_group(record.pid, signal.SIGKILL)
    return _wait_group_gone(record.pid, 5.0)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap(pgid)
        if not group_members(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def log_tail(path: Path | str, lines: int = 20) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])
