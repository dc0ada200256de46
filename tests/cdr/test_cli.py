"""`sipio cdr …` and `sipio trace` on a lake in a state directory, as an operator runs them."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
from pathlib import Path

from control.cdr.build import dead_rows, new_cdr
from control.cdr.events import DeadLetter
from control.cdr.lake import Lake
from control.cdr.tables import CALL_CDR, CALL_EVENTS, DEAD_LETTERS
from control.settings import Settings

T0 = 1_790_000_000_000


def sipio(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def test_export_compact_tables_dead_letters_and_trace(tmp_path: Path, sipio_bin: str) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    settings.save()
    lake = Lake(settings)
    lake.ensure()
    for n in range(3):  # three commits: three small files in one partition
        row = {**new_cdr(f"c{n}", T0 + n), "account_id": "acc_1", "disposition": "answered"}
        lake.commit(CALL_CDR, {"s": f"{n + 1}-0"}, [row])
        event = {"call_id": "c1", "ts": T0 + n, "account_id": "acc_1", "emitter": "sip",
                 "type": ["route", "call_answered", "call_ended"][n], "node_id": None,
                 "outcome": None, "data": json.dumps({"step": n}), "stream": "s",
                 "stream_id": f"{n + 1}-0"}  # fmt: skip
        lake.commit(CALL_EVENTS, {"s": f"{n + 1}-0"}, [event])
    lake.commit(
        DEAD_LETTERS, {"s": "9-0"}, dead_rows([DeadLetter("s", "9-0", "no field 'e'", "{}")])
    )
    state = ["--state-dir", str(settings.state_dir)]

    out = tmp_path / "cdr.csv"
    exported = sipio(
        sipio_bin, "cdr", "export", *state, "-o", str(out), "--disposition", "answered"
    )
    assert exported.returncode == 0, exported.stderr
    assert "3 CDRs exported" in exported.stderr
    with out.open(newline="") as fh:
        assert [r["call_id"] for r in csv.DictReader(fh)] == ["c0", "c1", "c2"]

    listed = sipio(
        sipio_bin, "cdr", "list", *state, "--since", "2026-09-21", "--until", "2026-09-22"
    )
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("2026-09-21", "c0", "acc_1"),
        ("2026-09-21", "c1", "acc_1"),
        ("2026-09-21", "c2", "acc_1"),
    ]
    early = sipio(sipio_bin, "cdr", "list", *state, "--until", "2026-09-21T14:00:00")
    assert early.returncode == 0 and len(early.stdout.splitlines()) == 1  # the header only

    trace = sipio(sipio_bin, "trace", "c1", *state)
    assert trace.returncode == 0, trace.stderr
    lines = trace.stdout.splitlines()
    assert [line.split()[5] for line in lines] == ["route", "call_answered", "call_ended"]
    assert "+   0.002s" in lines[2] and '{"step":2}' in lines[2]
    assert sipio(sipio_bin, "trace", "nope", *state).returncode == 1

    compacted = sipio(sipio_bin, "cdr", "compact", *state, "--min-files", "2", "--expire-days", "0")
    assert compacted.returncode == 0, compacted.stderr
    assert "call_cdr" in compacted.stdout and "3 files -> 1 rewrite" in compacted.stdout
    assert len(list(lake.table(CALL_CDR).scan().plan_files())) == 1
    tables = sipio(sipio_bin, "cdr", "tables", *state)
    assert tables.returncode == 0 and "metadata.json" in tables.stdout
    assert any(line.split()[:2] == ["call_cdr", "3"] for line in tables.stdout.splitlines())
    dead = sipio(sipio_bin, "cdr", "dead-letters", *state)
    assert dead.stdout.startswith("1 dead letters") and "no field 'e'" in dead.stdout


def test_compact_sweeps_old_orphan_files(tmp_path: Path, sipio_bin: str) -> None:
    """`sipio cdr compact` on a real local lake: an old file no snapshot references goes, a
    young one and every referenced file stay."""
    settings = Settings(state_dir=tmp_path / "state")
    settings.save()
    lake = Lake(settings)
    lake.ensure()
    for n in range(3):
        row = {**new_cdr(f"c{n}", T0 + n), "account_id": "acc_1"}
        lake.commit(CALL_CDR, {"s": f"{n + 1}-0"}, [row])
    data = Path(lake.table(CALL_CDR).location().removeprefix("file://")) / "data"
    old, young = data / "left-by-a-failed-commit.parquet", data / "in-flight.parquet"
    for planted in (old, young):
        planted.write_bytes(b"PAR1")
    files = [p for p in data.parent.rglob("*") if p.is_file() and p != young]
    past = time.time() - 2 * 86_400
    for path in files:
        os.utime(path, (past, past))
    compacted = sipio(sipio_bin, "cdr", "compact", "--state-dir", str(settings.state_dir))
    assert compacted.returncode == 0, compacted.stderr
    assert "call_cdr      0 snapshots expired, 1 orphan files removed" in compacted.stdout
    assert not old.exists() and young.exists()
    assert all(path.exists() for path in files if path != old)
    assert sorted(r["call_id"] for r in lake.read(CALL_CDR).to_pylist()) == ["c0", "c1", "c2"]
