"""Exactly once under SIGKILL: collectors killed at random points while 10,000 synthetic calls'
events flow; the lake ends with exactly one CDR per call and every event once."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from pathlib import Path

import redis

from control.cdr import build
from control.cdr.events import Event, parse
from control.cdr.lake import Lake
from control.cdr.synthetic import traffic
from control.cdr.tables import CALL_CDR, CALL_EVENTS, DEAD_LETTERS, QUEUE_CDR
from control.settings import Settings
from tests.cdr.conftest import spawn_collector, wait_drained

CALLS = 10_000
MIN_KILLS = 8


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    lake_settings: Settings, r: redis.Redis, tmp_path: Path
) -> None:
    settings = lake_settings.model_copy(
        update={"collector_batch_size": 1500, "collector_batch_sec": 0.3}
    )
    settings.save()
    stream = settings.event_streams[0]
    entries = list(traffic(CALLS, start_ms=int(time.time() * 1000) - 3_600_000))
    ids: list[str] = []

    def produce() -> None:  # about 15 s of traffic, in bursts
        for start in range(0, len(entries), 500):
            pipe = r.pipeline(transaction=False)
            for fields in entries[start : start + 500]:
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
            ids.extend(i.decode() for i in pipe.execute())
            time.sleep(0.2)

    producer = threading.Thread(target=produce)
    producer.start()
    rng = random.Random(20260)
    log = tmp_path / "collector.log"
    lake = Lake(settings)
    kills, progress = 0, []
    while producer.is_alive() or kills < MIN_KILLS:
        lives = _recovered(log)
        proc = spawn_collector(settings, log)
        # Each life first recovers (its start-up takes longer on a loaded machine), then is
        # killed at a random point of its batches: mid-read, mid-build, mid-commit, mid-ack.
        deadline = time.monotonic() + 30
        while _recovered(log) == lives and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 2.5))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        kills += 1
        progress.append(lake.total_rows(CALL_EVENTS))
    producer.join()
    # Killed collectors did real work: the lake grew across several of their lives.
    assert len(set(progress) - {0}) >= 3, progress
    final = spawn_collector(settings, log)
    try:
        wait_drained(r, settings, timeout=90)
    finally:
        final.terminate()
        final.wait(timeout=30)
    assert kills >= MIN_KILLS
    assert _recovered(log) >= kills  # every life restarted

    parsed = [parse(stream, i, f) for i, f in zip(ids, entries, strict=True)]
    events = [e for e in parsed if isinstance(e, Event)]

    # Every event exactly once, with its stream id.
    stored = lake.read(CALL_EVENTS, columns=("stream_id",))["stream_id"].to_pylist()
    assert len(stored) == len(events)
    assert set(stored) == {e.entry_id for e in events}
    dead = lake.read(DEAD_LETTERS)["stream_id"].to_pylist()
    assert sorted(dead) == sorted(e.entry_id for e in parsed if not isinstance(e, Event))
    assert dead  # the synthetic traffic carries garbage, which must not be lost either

    # Exactly one CDR per call, equal to what the pure builder makes of the whole stream.
    expected = build.fold_cdr({}, events)
    assert len(expected) == CALLS
    cdr = lake.read(CALL_CDR).drop_columns(["start_time"]).to_pylist()
    assert len(cdr) == CALLS
    assert {row["call_id"]: row for row in cdr} == expected
    assert all(row["end_ts"] is not None for row in cdr)
    accounts = {c: row["account_id"] for c, row in expected.items()}
    queues = build.fold_queues({}, events, accounts)
    stored_queues = lake.read(QUEUE_CDR).drop_columns(["enqueued_time"]).to_pylist()
    assert len(stored_queues) == len(queues)
    assert {(q["call_id"], q["queue_id"]): q for q in stored_queues} == queues
    dispositions = json.dumps(sorted({row["disposition"] for row in cdr}))
    assert dispositions == json.dumps(
        sorted(["answered", "busy", "cancelled", "no_answer", "rejected"])
    )


def _recovered(log: Path) -> int:
    """How many collector lives have logged their recovery so far."""
    return log.read_text().count('"event": "recovered"') if log.exists() else 0
