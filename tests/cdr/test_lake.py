"""The Iceberg side on a real SQL catalog (SQLite) and local warehouse: partitioning,
idempotent commits, schema evolution, compaction, and DuckDB reading the tables offline."""

from __future__ import annotations

import os
import sysconfig
import time
from collections.abc import Iterable
from pathlib import Path

import duckdb
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType

from control.cdr.build import new_cdr
from control.cdr.lake import TABLE_PROPERTIES, Lake, rows_filter
from control.cdr.tables import CALL_CDR, CALL_EVENTS, TABLES
from control.settings import Settings

T0 = 1_790_000_000_000
DAY = 86_400_000


def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


def cdr(call: str, ts: int, account: str | None = "acc_1", **extra: object) -> dict[str, object]:
    return {**new_cdr(call, ts), "account_id": account, **extra}


def event(call: str, ts: int, n: int, account: str | None = "acc_1") -> dict[str, object]:
    return {"call_id": call, "ts": ts, "account_id": account, "emitter": "sip", "type": "route",
            "node_id": None, "outcome": None, "data": "{}", "stream": "s", "stream_id": f"{n}-0"}  # fmt: skip


def data_files(lake: Lake, spec: object) -> list[str]:
    return [t.file.file_path for t in lake.table(spec).scan().plan_files()]  # type: ignore[arg-type]


def test_tables_are_partitioned_by_day_and_account(tmp_path: Path) -> None:
    lake = Lake(settings(tmp_path))
    lake.ensure()
    for spec in TABLES:
        fields = [(f.name, str(f.transform)) for f in lake.table(spec).spec().fields]
        assert fields[0] == ("day", "day")
        assert (("account_id", "identity") in fields) == spec.by_account
    lake.commit(
        CALL_CDR, {"s": "1-0"}, [cdr("a", T0), cdr("b", T0 + DAY, "acc_2"), cdr("c", T0, None)]
    )
    paths = sorted(p.split("/data/")[1].rsplit("/", 1)[0] for p in data_files(lake, CALL_CDR))
    assert paths == ["day=2026-09-21/account_id=acc_1", "day=2026-09-21/account_id=null",
                     "day=2026-09-22/account_id=acc_2"]  # fmt: skip


def test_a_batch_already_in_a_table_is_not_written_again(tmp_path: Path) -> None:
    lake = Lake(settings(tmp_path))
    lake.ensure()
    rows = [event("a", T0, 1), event("a", T0 + 1, 2)]
    assert lake.commit(CALL_EVENTS, {"s": "2-0"}, rows) is True
    assert lake.commit(CALL_EVENTS, {"s": "2-0"}, rows) is False  # replay after a crash
    assert lake.commit(CALL_EVENTS, {"s": "1-5"}, rows) is False  # older than the offsets
    assert lake.total_rows(CALL_EVENTS) == 2
    assert lake.offsets(CALL_EVENTS) == {"s": "2-0"}
    lake.commit(CALL_EVENTS, {"t": "7-0"}, [event("b", T0, 7)])  # another stream (shard)
    assert lake.offsets(CALL_EVENTS) == {"s": "2-0", "t": "7-0"}
    assert {k: lake.table(CALL_EVENTS).properties[k] for k in TABLE_PROPERTIES} == TABLE_PROPERTIES


def test_replacing_rows_touches_only_the_named_ones(tmp_path: Path) -> None:
    lake = Lake(settings(tmp_path))
    lake.ensure()
    lake.commit(CALL_CDR, {"s": "1-0"}, [cdr("a", T0), cdr("b", T0), cdr("c", T0, None)])
    done = cdr("a", T0, end_ts=T0 + 5000, disposition="answered")
    where = rows_filter(CALL_CDR, [("acc_1", T0, "a")])
    lake.commit(CALL_CDR, {"s": "2-0"}, [done], where)
    rows = {r["call_id"]: r for r in lake.read(CALL_CDR).to_pylist()}
    assert sorted(rows) == ["a", "b", "c"]
    assert rows["a"]["end_ts"] == T0 + 5000 and rows["b"]["end_ts"] is None


def test_schema_evolution_adds_columns_and_keeps_old_rows(tmp_path: Path) -> None:
    lake = Lake(settings(tmp_path))
    catalog = lake.catalog
    catalog.create_namespace_if_not_exists("sipio")
    # The table as an older collector made it: fewer columns, one this version does not know.
    old = Schema(*(NestedField(i, n, t, required=r) for i, (n, t, r) in enumerate(
        [c for c in CALL_CDR.columns if c[0] not in ("sip_code", "trunk_id")], 1)),
        NestedField(99, "legacy_note", StringType(), required=False))  # fmt: skip
    catalog.create_table("sipio.call_cdr", schema=old)
    table = catalog.load_table("sipio.call_cdr")
    import pyarrow as pa

    arrow = table.schema().as_arrow()
    row = {k: v for k, v in cdr("old", T0).items() if k not in ("sip_code", "trunk_id")}
    row |= {"start_time": T0 * 1000, "legacy_note": "kept"}
    table.append(pa.Table.from_pylist([row], schema=arrow))

    lake.ensure()
    names = [f.name for f in lake.table(CALL_CDR).schema().fields]
    assert {"sip_code", "trunk_id", "legacy_note"} <= set(names)
    lake.commit(CALL_CDR, {"s": "1-0"}, [cdr("new", T0, sip_code=200, trunk_id="tr_1")])
    rows = {r["call_id"]: r for r in lake.read(CALL_CDR).to_pylist()}
    assert rows["old"]["sip_code"] is None and rows["old"]["legacy_note"] == "kept"
    assert rows["new"]["sip_code"] == 200 and rows["new"]["legacy_note"] is None
    assert isinstance(lake.table(CALL_CDR).schema().find_field("start_ts").field_type, LongType)


def test_compaction_merges_small_files_and_keeps_rows_and_offsets(tmp_path: Path) -> None:
    lake = Lake(settings(tmp_path))
    lake.ensure()
    for n in range(1, 7):
        lake.commit(CALL_EVENTS, {"s": f"{n}-0"}, [event(f"c{n}", T0 + n, n)])
    lake.commit(CALL_EVENTS, {"s": "7-0"}, [event("other", T0, 7, "acc_2")])
    before = sorted(r["stream_id"] for r in lake.read(CALL_EVENTS).to_pylist())
    assert len(data_files(lake, CALL_EVENTS)) == 7
    done = lake.compact(CALL_EVENTS, min_files=4)
    assert [files for _, files in done] == [6]  # acc_2's single file was left alone
    assert len(data_files(lake, CALL_EVENTS)) == 2
    assert sorted(r["stream_id"] for r in lake.read(CALL_EVENTS).to_pylist()) == before
    assert lake.offsets(CALL_EVENTS) == {"s": "7-0"}
    assert lake.expire_snapshots(CALL_EVENTS, T0 * 10) > 0
    assert len(lake.table(CALL_EVENTS).snapshots()) == 1


def test_duckdb_reads_the_tables_offline(tmp_path: Path) -> None:
    lake = Lake(settings(tmp_path))
    lake.ensure()
    lake.commit(
        CALL_EVENTS, {"s": "3-0"}, [event("a", T0, 1), event("a", T0 + 9, 2), event("b", T0, 3)]
    )
    lake.commit(CALL_CDR, {"s": "3-0"}, [cdr("a", T0), cdr("b", T0)])
    lake.commit(
        CALL_CDR,
        {"s": "4-0"},
        [cdr("a", T0, billsec=7)],
        rows_filter(CALL_CDR, [("acc_1", T0, "a")]),
    )
    con = duckdb.connect()
    extensions = Path(sysconfig.get_paths()["purelib"]) / "duckdb_ext" / "extensions"
    con.execute("SET extension_directory = ?", [str(extensions)])
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("LOAD iceberg")
    where = lake.metadata_locations()
    trace = con.execute(
        "SELECT stream_id FROM iceberg_scan(?) WHERE call_id = 'a' ORDER BY ts",
        [where["call_events"]],
    ).fetchall()
    assert trace == [("1-0",), ("2-0",)]
    cdrs = con.execute(
        "SELECT call_id, billsec FROM iceberg_scan(?) ORDER BY call_id", [where["call_cdr"]]
    ).fetchall()
    assert cdrs == [("a", 7), ("b", None)]


def warehouse_files(lake: Lake, spec: object) -> set[str]:
    root = Path(lake.table(spec).location().removeprefix("file://"))  # type: ignore[arg-type]
    return {str(p) for p in root.rglob("*") if p.is_file()}


def age(paths: Iterable[str], seconds: int) -> None:
    past = time.time() - seconds
    for path in paths:
        os.utime(path, (past, past))


def test_upkeep_expires_snapshots_and_sweeps_only_old_unreferenced_files(tmp_path: Path) -> None:
    lake = Lake(settings(tmp_path))
    lake.ensure()
    calls = [f"c{n}" for n in range(5)]
    lake.commit(CALL_CDR, {"s": "1-0"}, [cdr(c, T0 + i) for i, c in enumerate(calls)])
    for n in range(2, 6):  # upserts: every commit replaces the file holding the rows
        keys = [("acc_1", T0 + i, c) for i, c in enumerate(calls)]
        rows = [cdr(c, T0 + i, billsec=n) for i, c in enumerate(calls)]
        lake.commit(CALL_CDR, {"s": f"{n}-0"}, rows, rows_filter(CALL_CDR, keys))
    data_dir = Path(lake.table(CALL_CDR).location().removeprefix("file://")) / "data"
    stray, young, notes = (
        data_dir / "stray.parquet",
        data_dir / "young.parquet",
        data_dir / "notes.txt",
    )
    for planted in (stray, young, notes):
        planted.write_bytes(b"not referenced by any snapshot")
    age(warehouse_files(lake, CALL_CDR) - {str(young)}, 3 * 86_400)  # all old but one
    before = warehouse_files(lake, CALL_CDR)
    rows_before = sorted(lake.read(CALL_CDR).to_pylist(), key=lambda r: r["call_id"])
    assert [r["billsec"] for r in rows_before] == [5] * 5

    # defaults: snapshots within the retention and files younger than a day stay
    kept = lake.upkeep(CALL_CDR, min_files=100)
    assert (kept.rewritten, kept.snapshots_expired) == ([], 0)
    assert kept.orphans == [str(stray)]  # only the planted one: every other file is referenced
    assert warehouse_files(lake, CALL_CDR) == before - {str(stray)}

    now = int(time.time() * 1000)
    done = lake.upkeep(
        CALL_CDR, min_files=100, expire_before_ms=now + 1, orphans_before_ms=now - 3_600_000
    )
    assert done.snapshots_expired == 8  # an upsert commits two: delete, then append
    assert len(lake.table(CALL_CDR).snapshots()) == 1
    after = warehouse_files(lake, CALL_CDR)
    live = set(data_files(lake, CALL_CDR))
    assert {p.removeprefix("file://") for p in live} <= after  # nothing in use was removed
    assert str(young) in after and str(notes) in after  # too young / not an Iceberg file
    parquet = {p for p in after if p.endswith(".parquet")}
    assert parquet == {p.removeprefix("file://") for p in live} | {str(young)}
    assert len(done.orphans) >= 4 + 4  # replaced data files, their manifests and lists
    assert sorted(lake.read(CALL_CDR).to_pylist(), key=lambda r: r["call_id"]) == rows_before
    assert lake.offsets(CALL_CDR) == {"s": "5-0"}
    assert lake.upkeep(CALL_CDR, orphans_before_ms=now - 3_600_000).orphans == []
    lake.commit(CALL_CDR, {"s": "6-0"}, [cdr("late", T0)])  # the table still takes commits
    assert len(lake.read(CALL_CDR)) == 6
    con = duckdb.connect()
    extensions = Path(sysconfig.get_paths()["purelib"]) / "duckdb_ext" / "extensions"
    con.execute("SET extension_directory = ?", [str(extensions)])
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("LOAD iceberg")
    location = lake.metadata_locations()["call_cdr"]
    assert con.execute("SELECT count(*) FROM iceberg_scan(?)", [location]).fetchone() == (6,)
