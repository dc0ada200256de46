"""The lake's Iceberg tables: schemas, partitioning, and rows → Arrow.

Timestamps stay epoch-ms integers as the spec has them (``ts``, ``start_ts``…); each table adds
one ``timestamptz`` column derived from its time column, partitioned by ``day()`` beside
``account_id`` (hidden partitioning), so a query on a day and an account reads one partition.
Field ids are fixed here: evolution only ever adds optional columns (``Lake.ensure``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (
    IcebergType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from control.cdr.build import Row

S, L, INT, T = StringType(), LongType(), IntegerType(), TimestamptzType()


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[tuple[str, IcebergType, bool], ...]  # (name, type, required)
    time_ms: str  # epoch-ms column the partition timestamp derives from
    time_col: str  # the timestamptz column partitioned by day
    by_account: bool
    key: tuple[str, ...]  # columns identifying a row for upserts

    @property
    def schema(self) -> Schema:
        return Schema(
            *(NestedField(i, n, t, required=r) for i, (n, t, r) in enumerate(self.columns, 1))
        )

    def field_id(self, column: str) -> int:
        return next(i for i, (n, _, _) in enumerate(self.columns, 1) if n == column)

    @property
    def partition(self) -> PartitionSpec:
        fields = [PartitionField(self.field_id(self.time_col), 1000, DayTransform(), "day")]
        if self.by_account:
            fields.append(
                PartitionField(self.field_id("account_id"), 1001, IdentityTransform(), "account_id")
            )
        return PartitionSpec(*fields)

    @property
    def sort_order(self) -> SortOrder:
        return SortOrder(SortField(self.field_id(self.time_ms), IdentityTransform()))

    def to_arrow(self, rows: Sequence[Row], schema: Schema | None = None) -> pa.Table:
        """Rows (dicts with the non-derived columns) as Arrow, shaped by ``schema`` (the table's
        current one: columns matched by name, so ids assigned by any evolution fit, and
        columns this version does not know are null)."""
        target = (schema or self.schema).as_arrow()
        arrays = []
        for field in target:
            if field.name == self.time_col:
                micros = pa.array([r[self.time_ms] * 1000 for r in rows], pa.int64())
                arrays.append(micros.cast(field.type))
            else:
                arrays.append(pa.array([r.get(field.name) for r in rows], field.type))
        return pa.Table.from_arrays(arrays, schema=target)


CALL_EVENTS = TableSpec(
    "call_events",
    (("call_id", S, True), ("ts", L, True), ("account_id", S, False), ("emitter", S, False),
     ("type", S, True), ("node_id", S, False), ("outcome", S, False), ("data", S, False),
     ("stream", S, True), ("stream_id", S, True), ("event_time", T, True)),
    time_ms="ts", time_col="event_time", by_account=True, key=("stream", "stream_id"),
)  # fmt: skip

CALL_CDR = TableSpec(
    "call_cdr",
    (("call_id", S, True), ("account_id", S, False), ("direction", S, False),
     ("from_num", S, False), ("to_num", S, False), ("start_ts", L, True), ("answer_ts", L, False),
     ("end_ts", L, False), ("duration_sec", INT, False), ("billsec", INT, False),
     ("answered", INT, False), ("disposition", S, False), ("hangup_cause", S, False),
     ("queue_id", S, False), ("agent_id", S, False), ("cost_micros", L, False),
     ("sip_code", INT, False), ("route_kind", S, False), ("device_id", S, False),
     ("trunk_id", S, False), ("updated_ts", L, False), ("start_time", T, True)),
    time_ms="start_ts", time_col="start_time", by_account=True, key=("call_id",),
)  # fmt: skip

QUEUE_CDR = TableSpec(
    "queue_cdr",
    (("call_id", S, True), ("queue_id", S, True), ("account_id", S, False),
     ("agent_id", S, False), ("enqueued_at", L, True), ("connected_at", L, False),
     ("ended_at", L, False), ("disposition", S, False), ("enqueued_time", T, True)),
    time_ms="enqueued_at", time_col="enqueued_time", by_account=True, key=("call_id", "queue_id"),
)  # fmt: skip

DEAD_LETTERS = TableSpec(
    "dead_letters",
    (("stream", S, True), ("stream_id", S, True), ("received_ts", L, True), ("error", S, False),
     ("raw", S, False), ("received_time", T, True)),
    time_ms="received_ts", time_col="received_time", by_account=False, key=("stream", "stream_id"),
)  # fmt: skip

# Commit order of a batch; acknowledging the batch comes after the last one.
TABLES = (DEAD_LETTERS, CALL_EVENTS, CALL_CDR, QUEUE_CDR)
BY_NAME = {t.name: t for t in TABLES}
