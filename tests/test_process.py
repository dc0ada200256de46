"""Process ownership: stop exactly what was started, never a recycled pid."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from control.stack.process import ProcessRecord, group_members, is_running, spawn, stop

ENV = {"PATH": "/usr/bin:/bin"}


def test_stop_takes_down_the_whole_group(tmp_path: Path) -> None:
    record = spawn(
        "family", ["sh", "-c", "sleep 60 & sleep 60 & wait"], ENV, tmp_path / "l", tmp_path
    )

    deadline = time.monotonic() + 5
    while len(group_members(record.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(group_members(record.pid)) == 3
    assert stop(record) is True
    assert group_members(record.pid) == []


def test_process_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print('up', flush=True); time.sleep(60)"
    )
    record = spawn("stubborn", [sys.executable, "-c", script], ENV, tmp_path / "l", tmp_path)

    deadline = time.monotonic() + 5
    while "up" not in (tmp_path / "l").read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stop(record, timeout=0.5) is True
    assert not is_running(record)


def test_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        forged = ProcessRecord("ghost", bystander.pid, start_ticks=1, argv=["x"], log="")
        assert not is_running(forged)
        assert stop(forged, timeout=0.2) is True
        assert bystander.poll() is None  # still alive: it was never ours
    finally:
        bystander.kill()
        bystander.wait()


def test_own_process_is_recognised(tmp_path: Path) -> None:
    record = spawn("sleeper", ["sleep", "60"], ENV, tmp_path / "l", tmp_path)
    try:
        assert is_running(record)
        assert record.pid != os.getpid()
    finally:
        stop(record)
