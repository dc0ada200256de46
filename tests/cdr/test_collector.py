"""The collector against real Redis and a real lake: rows, acknowledgements, dead letters,
replay after a crash between two table commits, restarts, leases, orphaned entries."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from control.cdr.collector import heartbeat_key
from control.cdr.events import Event, parse
from control.cdr.lake import Lake
from control.cdr.tables import CALL_CDR, CALL_EVENTS, DEAD_LETTERS, QUEUE_CDR
from control.settings import Settings
from control.stack.components import Collector as CollectorComponent
from tests.cdr.conftest import Running, wait_drained

T0 = 1_790_000_000_000
RING = {"kind": "ring", "account_id": "acc_1"}


def emit(r: redis.Redis, settings: Settings, *events: dict[str, Any]) -> list[str]:
    stream = settings.event_streams[0]
    return [r.xadd(stream, {"e": json.dumps(e)}).decode() for e in events]  # type: ignore[union-attr]


def call(call_id: str, t: int, **extra: Any) -> list[dict[str, Any]]:
    base = {"call_id": call_id}
    return [
        {
            **base,
            "type": "route",
            "ts": t,
            "decision": RING,
            "device_id": "dev_1",
            "from": "1001",
            "to": "1002",
        },
        {**base, "type": "call_answered", "ts": t + 1000, "account_id": "acc_1"},
        {
            **base,
            "type": "call_ended",
            "ts": t + 31_000,
            "account_id": "acc_1",
            "cause": "caller_bye",
            "code": 200,
            **extra,
        },
    ]


def cdrs(lake: Lake) -> dict[str, dict[str, Any]]:
    return {r["call_id"]: r for r in lake.read(CALL_CDR).to_pylist()}


def test_events_become_rows_and_are_acknowledged(lake_settings: Settings, r: redis.Redis) -> None:
    emit(
        r,
        lake_settings,
        *call("c1", T0),
        {"type": "mystery", "call_id": "c1", "ts": T0 + 5, "x": 1},
    )
    r.xadd(lake_settings.event_streams[0], {"e": "{oops"})
    r.xadd(lake_settings.event_streams[0], {"other": "field"})
    with Running(lake_settings):
        wait_drained(r, lake_settings)
        beat = {
            k.decode(): v.decode()
            for k, v in r.hgetall(heartbeat_key(lake_settings.collector_consumer)).items()
        }  # type: ignore[union-attr]
        health = CollectorComponent(lake_settings).check()
    assert beat["state"] == "running" and int(beat["dead_letters"]) == 2
    assert health.ok and "dead_letters=2" in health.detail
    lake = Lake(lake_settings)
    row = cdrs(lake)["c1"]
    assert (row["disposition"], row["billsec"], row["from_num"]) == ("answered", 30, "1001")
    events = lake.read(CALL_EVENTS).to_pylist()
    assert sorted(e["type"] for e in events) == ["call_answered", "call_ended", "mystery", "route"]
    dead = lake.read(DEAD_LETTERS).to_pylist()
    assert sorted(d["error"][:8] for d in dead) == ["'e' is n", "no field"]
    assert r.xpending(lake_settings.event_streams[0], lake_settings.collector_group)["pending"] == 0
    assert CollectorComponent(lake_settings).check().detail.startswith("stopped")


def test_replay_after_a_crash_between_table_commits(
    lake_settings: Settings, r: redis.Redis
) -> None:
    """The state a crash leaves right after the call_events commit: entries delivered but not
    acknowledged, one table holding them, the others not. The next collector completes the
    other tables and writes no event twice."""
    stream, group = lake_settings.event_streams[0], lake_settings.collector_group
    ids = emit(r, lake_settings, *call("c1", T0), *call("c2", T0 + 5))
    r.xgroup_create(stream, group, id="0")
    delivered = r.xreadgroup(group, lake_settings.collector_consumer, {stream: ">"})
    fields = [f for _, f in delivered[0][1]]  # type: ignore[index]
    lake = Lake(lake_settings)
    lake.ensure()
    from control.cdr.build import event_rows

    events = [parse(stream, i, f) for i, f in zip(ids, fields, strict=True)]
    lake.commit(
        CALL_EVENTS, {stream: ids[-1]}, event_rows([e for e in events if isinstance(e, Event)], {})
    )
    with Running(lake_settings):
        wait_drained(r, lake_settings)
    assert lake.total_rows(CALL_EVENTS) == 6
    assert sorted(cdrs(lake)) == ["c1", "c2"]
    assert {row["disposition"] for row in cdrs(lake).values()} == {"answered"}


def test_restart_keeps_open_calls_and_late_events_replace_stored_rows(
    lake_settings: Settings, r: redis.Redis
) -> None:
    open_call, done = call("open", T0), call("done", T0)
    emit(r, lake_settings, open_call[0], *done)
    with Running(lake_settings):
        wait_drained(r, lake_settings)
    lake = Lake(lake_settings)
    assert cdrs(lake)["open"]["disposition"] == "in_progress"  # the start row
    # A new life: the open call's end, and a late correction for a call it never saw.
    emit(r, lake_settings, *open_call[1:], {**done[2], "ts": T0 + 40_000, "cost_micros": 1200})
    with Running(lake_settings) as collector:
        wait_drained(r, lake_settings)
        assert "open" in collector.cdr
    rows = cdrs(lake)
    assert len(lake.read(CALL_CDR)) == 2
    assert rows["open"]["disposition"] == "answered" and rows["open"]["end_ts"] == T0 + 31_000
    assert rows["done"]["cost_micros"] == 1200 and rows["done"]["end_ts"] == T0 + 40_000


def test_queue_rows_are_upserted_per_call(lake_settings: Settings, r: redis.Redis) -> None:
    base = {"call_id": "q1", "account_id": "acc_1"}
    emit(r, lake_settings,
         {**base, "type": "route", "ts": T0, "decision": {"kind": "media", "account_id": "acc_1"}, "trunk_id": "tr"},
         {**base, "type": "queue_join", "ts": T0 + 10, "queue_id": "q_a"})  # fmt: skip
    with Running(lake_settings):
        wait_drained(r, lake_settings)
        emit(r, lake_settings,
             {**base, "type": "queue_timeout", "ts": T0 + 60_000, "queue_id": "q_a"},
             {**base, "type": "queue_join", "ts": T0 + 60_010, "queue_id": "q_b"},
             {**base, "type": "queue_answer", "ts": T0 + 70_000, "queue_id": "q_b", "agent_id": "us_x"})  # fmt: skip
        wait_drained(r, lake_settings)
        emit(
            r,
            lake_settings,
            {**base, "type": "call_ended", "ts": T0 + 90_000, "cause": "callee_bye"},
        )
        wait_drained(r, lake_settings)
    lake = Lake(lake_settings)
    rows = {q["queue_id"]: q for q in lake.read(QUEUE_CDR).to_pylist()}
    assert len(lake.read(QUEUE_CDR)) == 2
    assert (rows["q_a"]["disposition"], rows["q_a"]["ended_at"]) == ("timeout", T0 + 60_000)
    assert (rows["q_b"]["disposition"], rows["q_b"]["agent_id"], rows["q_b"]["ended_at"]) == (
        "answered",
        "us_x",
        T0 + 90_000,
    )
    assert (cdrs(lake)["q1"]["queue_id"], cdrs(lake)["q1"]["agent_id"]) == ("q_b", "us_x")


def test_a_stream_has_one_collector_at_a_time(lake_settings: Settings, r: redis.Redis) -> None:
    other = lake_settings.model_copy(
        update={"collector_consumer": lake_settings.collector_consumer + "-b"}
    )
    with Running(lake_settings):
        emit(r, lake_settings, *call("c1", T0))
        wait_drained(r, lake_settings)
        with Running(other):
            deadline = time.monotonic() + 10
            while r.hget(heartbeat_key(other.collector_consumer), "state") != b"waiting":
                assert time.monotonic() < deadline
                time.sleep(0.05)
    assert Lake(lake_settings).total_rows(CALL_EVENTS) == 3


def test_entries_left_by_a_retired_consumer_are_claimed(
    lake_settings: Settings, r: redis.Redis
) -> None:
    stream, group = lake_settings.event_streams[0], lake_settings.collector_group
    emit(r, lake_settings, *call("c1", T0))
    r.xgroup_create(stream, group, id="0")
    r.xreadgroup(group, "retired-collector", {stream: ">"})  # delivered, never acknowledged
    with Running(lake_settings):
        wait_drained(r, lake_settings)
    assert sorted(cdrs(Lake(lake_settings))) == ["c1"]
    assert Lake(lake_settings).total_rows(CALL_EVENTS) == 3
