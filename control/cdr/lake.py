"""The Iceberg side: catalog from settings, table creation and evolution, idempotent commits.

Idempotency lives in the snapshot summary: every commit records, under ``sipio.offsets``, the
highest stream entry id per stream whose rows the table now holds. A commit whose entries are
already covered by the table's offsets is skipped, so replaying a batch after a crash writes
nothing twice. pyiceberg's own commit retry is switched off per table because it would re-send
the summary computed before the conflict; ``commit`` retries itself with fresh offsets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pyarrow as pa
import structlog
from pyarrow.fs import FileSelector, FileSystem, FileType
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NoSuchNamespaceError,
    NoSuchTableError,
)
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import Table

from control.cdr.build import Row
from control.cdr.events import newer
from control.cdr.expr import And, BooleanExpression, Or, ge, is_in, lt, owner
from control.cdr.tables import TABLES, TableSpec
from control.settings import Settings

log = structlog.get_logger("lake")

OFFSETS = "sipio.offsets"
TABLE_PROPERTIES = {
    "commit.retry.num-retries": "0",  # see module docstring
    "write.parquet.compression-codec": "zstd",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
}
COMMIT_ATTEMPTS = 8
# Unreferenced files younger than this may belong to a commit in flight: never swept.
ORPHAN_MIN_AGE_SEC = 86_400
SWEPT_SUFFIXES = (".parquet", ".avro", ".metadata.json")
DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Upkeep:
    table: str
    rewritten: list[tuple[str, int]]  # (partition, data files before the rewrite)
    snapshots_expired: int
    orphans: list[str]  # paths removed


class LakeError(Exception):
    """The lake cannot be reached or a commit kept conflicting."""


def catalog_properties(settings: Settings) -> dict[str, str]:
    if settings.lake_catalog:
        return dict(settings.lake_catalog)
    lake = settings.lake_dir
    return {
        "type": "sql",
        "uri": f"sqlite:///{lake / 'catalog.db'}",
        "warehouse": (lake / "warehouse").as_uri(),
    }


def offsets_of(table: Table) -> dict[str, str]:
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return {}
    raw = snapshot.summary.additional_properties.get(OFFSETS)
    return dict(json.loads(raw)) if raw else {}


def merge_offsets(current: dict[str, str], batch: dict[str, str]) -> dict[str, str]:
    merged = dict(current)
    for stream, entry_id in batch.items():
        if newer(entry_id, merged.get(stream)):
            merged[stream] = entry_id
    return merged


def covered(table_offsets: dict[str, str], batch: dict[str, str]) -> bool:
    """True when the table already holds every entry up to the batch's last ids."""
    return all(not newer(top, table_offsets.get(stream)) for stream, top in batch.items())


def ms_to_us(ms: int) -> int:
    return ms * 1000


class Lake:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.namespace = settings.lake_namespace
        self._tables: dict[str, Table] = {}

    @cached_property
    def catalog(self) -> Catalog:
        props = catalog_properties(self.settings)
        if not self.settings.lake_catalog:
            self.settings.lake_dir.mkdir(parents=True, exist_ok=True)
        return load_catalog("sipio", **props)

    def present(self) -> bool:
        """False for an embedded lake nobody has created yet (readers then see no rows)."""
        return bool(self.settings.lake_catalog) or (self.settings.lake_dir / "catalog.db").exists()

    def ident(self, spec: TableSpec) -> str:
        return f"{self.namespace}.{spec.name}"

    # -- tables -----------------------------------------------------------------------------
    def ensure(self) -> None:
        """Create missing tables; add columns this version knows and a table lacks."""
        self.catalog.create_namespace_if_not_exists(self.namespace)
        for spec in TABLES:
            table = self.catalog.create_table_if_not_exists(
                self.ident(spec),
                schema=spec.schema,
                partition_spec=spec.partition,
                sort_order=spec.sort_order,
                properties=TABLE_PROPERTIES,
            )
            known = {f.name for f in table.schema().fields}
            if any(name not in known for name, _, _ in spec.columns):
                with table.update_schema() as update:
                    update.union_by_name(spec.schema)
            if any(table.properties.get(k) != v for k, v in TABLE_PROPERTIES.items()):
                with table.transaction() as tx:
                    tx.set_properties(TABLE_PROPERTIES)
            self._tables[spec.name] = self.catalog.load_table(self.ident(spec))

    def table(self, spec: TableSpec, *, refresh: bool = True) -> Table:
        table = self._tables.get(spec.name)
        if table is None:
            table = self.catalog.load_table(self.ident(spec))
            self._tables[spec.name] = table
        elif refresh:
            table.refresh()
        return table

    def table_or_none(self, spec: TableSpec) -> Table | None:
        if not self.present():
            return None
        try:
            return self.table(spec)
        except (NoSuchTableError, NoSuchNamespaceError):
            return None

    def offsets(self, spec: TableSpec) -> dict[str, str]:
        return offsets_of(self.table(spec))

    def total_rows(self, spec: TableSpec) -> int:
        table = self.table_or_none(spec)
        snapshot = table.current_snapshot() if table is not None else None
        if snapshot is None or snapshot.summary is None:
            return 0
        return int(snapshot.summary.additional_properties.get("total-records", 0))

    # -- writes -----------------------------------------------------------------------------
    def commit(
        self,
        spec: TableSpec,
        batch: dict[str, str],
        rows: Sequence[Row],
        replace: BooleanExpression | None = None,
    ) -> bool:
        """Write ``rows`` (after deleting what ``replace`` matches) in one Iceberg commit, unless
        the table's offsets show this batch is there already. True when it wrote."""
        if not rows and replace is None:
            return False
        ordered = sorted(rows, key=lambda row: row[spec.time_ms])

        def write(table: Table, props: dict[str, str]) -> None:
            data = spec.to_arrow(ordered, table.schema()) if ordered else None
            _write(table, props, data, replace)

        return self._retrying(spec, batch, write)

    def _retrying(
        self,
        spec: TableSpec,
        batch: dict[str, str],
        write: Callable[[Table, dict[str, str]], None],
    ) -> bool:
        for attempt in range(COMMIT_ATTEMPTS):
            table = self.table(spec)
            current = offsets_of(table)
            if batch and covered(current, batch):
                return False
            props = {OFFSETS: json.dumps(merge_offsets(current, batch), sort_keys=True)}
            try:
                write(table, props)
                return True
            except CommitFailedException:
                time.sleep(min(0.05 * 2**attempt, 2.0))
        raise LakeError(f"{spec.name}: commit kept conflicting after {COMMIT_ATTEMPTS} attempts")

    # -- reads ------------------------------------------------------------------------------
    def read(
        self,
        spec: TableSpec,
        row_filter: BooleanExpression = AlwaysTrue(),  # noqa: B008 (immutable)
        columns: Sequence[str] = ("*",),
    ) -> pa.Table:
        table = self.table_or_none(spec)
        if table is None:
            return spec.schema.as_arrow().empty_table()
        return table.scan(row_filter=row_filter, selected_fields=tuple(columns)).to_arrow()

    # -- maintenance ------------------------------------------------------------------------
    def compact(self, spec: TableSpec, min_files: int = 4) -> list[tuple[str, int]]:
        """``upkeep`` with its defaults (what ``sipio cdr compact`` runs); returns the
        (partition, files before) rewritten. The expiry and sweep counts are logged."""
        done = self.upkeep(spec, min_files)
        log.info(
            "lake upkeep",
            table=spec.name,
            partitions_rewritten=len(done.rewritten),
            snapshots_expired=done.snapshots_expired,
            orphans_removed=len(done.orphans),
        )
        return done.rewritten

    def _compact(self, spec: TableSpec, min_files: int) -> list[tuple[str, int]]:
        """Rewrite each partition holding at least ``min_files`` data files as one sorted file
        set. Offsets are carried into the rewrite's summary; a collector commit racing it makes
        one of the two retry on fresh metadata."""
        table = self.table(spec)
        by_partition: dict[tuple[Any, ...], int] = {}
        for task in table.scan().plan_files():
            key = tuple(task.file.partition[i] for i in range(len(task.file.partition)))
            by_partition[key] = by_partition.get(key, 0) + 1
        done = []
        for key, count in sorted(by_partition.items(), key=str):
            if count < min_files:
                continue
            where = partition_filter(spec, key)

            def rewrite(
                table: Table, props: dict[str, str], where: BooleanExpression = where
            ) -> None:
                rows = table.scan(row_filter=where).to_arrow().sort_by(spec.time_ms)
                with table.transaction() as tx:
                    tx.overwrite(rows, overwrite_filter=where, snapshot_properties=props)

            self._retrying(spec, {}, rewrite)
            done.append(("/".join(str(v) for v in key), count))
        return done

    def upkeep(
        self,
        spec: TableSpec,
        min_files: int = 4,
        *,
        expire_before_ms: int | None = None,
        orphans_before_ms: int | None = None,
    ) -> Upkeep:
        """Compaction, then snapshot expiry (default: older than the retention setting), then
        the sweep of files no snapshot references (default: older than ``ORPHAN_MIN_AGE_SEC``).
        The order matters: a rewrite replaces files, expiry drops the snapshots that still
        name them, and only then are they orphans the sweep can remove."""
        now = int(time.time() * 1000)
        if expire_before_ms is None:
            expire_before_ms = now - self.settings.lake_snapshot_retention_sec * 1000
        if orphans_before_ms is None:
            orphans_before_ms = now - ORPHAN_MIN_AGE_SEC * 1000
        rewritten = self._compact(spec, min_files)
        expired = self.expire_snapshots(spec, expire_before_ms)
        removed = self.remove_orphans(spec, orphans_before_ms)
        return Upkeep(spec.name, rewritten, expired, removed)

    def remove_orphans(self, spec: TableSpec, older_than_ms: int) -> list[str]:
        """Delete the table's files that no snapshot and no kept metadata version references
        (replaced by rewrites and upserts, left by failed commits), if last modified before the
        cut: a younger file may belong to a commit still in flight. Only Iceberg file types are
        touched. Returns the paths removed."""
        table = self.table(spec)
        io = table.io
        keep = {table.metadata_location, *(e.metadata_file for e in table.metadata.metadata_log)}
        manifests = {}
        for snapshot in table.snapshots():
            keep.add(snapshot.manifest_list)
            for manifest in snapshot.manifests(io):
                manifests[manifest.manifest_path] = manifest
        for path, manifest in manifests.items():
            keep.add(path)
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=False):
                keep.add(entry.data_file.file_path)
        scheme, netloc, root = PyArrowFileIO.parse_location(table.location())
        fs = _filesystem(io, scheme, netloc)
        kept = {PyArrowFileIO.parse_location(p)[2] for p in keep}
        cut_ns = older_than_ms * 1_000_000
        removed = []
        for info in fs.get_file_info(FileSelector(root, recursive=True, allow_not_found=True)):
            if info.type != FileType.File or info.path in kept:
                continue
            if not info.path.endswith(SWEPT_SUFFIXES):
                continue
            if info.mtime_ns is None or info.mtime_ns >= cut_ns:
                continue
            fs.delete_file(info.path)
            removed.append(info.path)
        return removed

    def expire_snapshots(self, spec: TableSpec, older_than_ms: int) -> int:
        """Drop snapshots older than the cut (the current one always stays). A concurrent
        commit wins; the expiry is simply tried again next time."""
        from datetime import UTC, datetime

        table = self.table(spec)
        current = table.current_snapshot()
        keep = current.snapshot_id if current is not None else None
        old = [
            s for s in table.snapshots() if s.timestamp_ms < older_than_ms and s.snapshot_id != keep
        ]
        if not old:
            return 0
        cut = datetime.fromtimestamp(older_than_ms / 1000, UTC)
        try:
            table.maintenance.expire_snapshots().older_than(cut).commit()
        except CommitFailedException:
            return 0
        return len(old)

    def metadata_locations(self) -> dict[str, str]:
        found = {}
        for spec in TABLES:
            table = self.table_or_none(spec)
            if table is not None:
                found[spec.name] = table.metadata_location
        return found


def _filesystem(io: FileIO, scheme: str, netloc: str) -> FileSystem:
    """The pyarrow file system of the table's storage, configured as the catalog's I/O is."""
    if isinstance(io, PyArrowFileIO):
        return io.fs_by_scheme(scheme, netloc)
    return PyArrowFileIO(io.properties).fs_by_scheme(scheme, netloc)


def _write(
    table: Table, props: dict[str, str], data: pa.Table | None, replace: BooleanExpression | None
) -> None:
    with table.transaction() as tx:
        if replace is not None:
            tx.delete(replace, snapshot_properties=props)
        if data is not None:
            tx.append(data, snapshot_properties=props)


def partition_filter(spec: TableSpec, key: tuple[Any, ...]) -> BooleanExpression:
    """Rows of one (day[, account]) partition, as a filter on the source columns."""
    day = int(key[0])
    where: BooleanExpression = And(
        ge(spec.time_col, day * DAY_US), lt(spec.time_col, (day + 1) * DAY_US)
    )
    if spec.by_account:
        where = And(where, owner(key[1]))
    return where


def rows_filter(
    spec: TableSpec, keys: Iterable[tuple[str | None, int, str]], key_column: str = "call_id"
) -> BooleanExpression | None:
    """Exactly the stored rows with these (account, time ms, key) triples' keys, written so that
    partitions (account, day) and files (time bounds) that cannot hold them are never read."""
    by_account: dict[str | None, tuple[set[int], set[str]]] = {}
    for account, ms, key in keys:
        times, ids = by_account.setdefault(account, (set(), set()))
        times.add(ms_to_us(ms))
        ids.add(key)
    parts: list[BooleanExpression] = []
    for account, (times, ids) in sorted(by_account.items(), key=lambda item: str(item[0])):
        part: BooleanExpression = And(is_in(spec.time_col, times), is_in(key_column, ids))
        if spec.by_account:
            part = And(owner(account), part)
        parts.append(part)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else Or(*parts)
