"""Writing a month's canonical Parquet: row groups of 262,144 rows, written by a
helper thread while the next group is gathered, with the file's sha256 computed as the
bytes go out. Both converters (CSV.gz in ``parquetize``, TLC Parquet in ``normalize``)
feed it tables of the registry schema.

Every table also passes through the month's quality counter (``pipeline.convert.quality``),
so the data-quality report costs no second read of the file.

Memory stays within two row groups: the gatherer runs at most ``ahead`` of a group ahead of
the writer (the caller's choice: a whole group when producing rows costs as much as writing
them, less when the writer sets the pace anyway), and a group is freed as soon as it is
written.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.convert.quality import Counts, QualityCounter
from pipeline.convert.result import ParquetStats
from pipeline.core.manifest import NewColumn
from pipeline.core.service import Service

# Rows per row group. On a 10M-row month (2 cores), groups of 2^18 rows converted in
# 8.6-8.9 s, 15.2 CPU s and 320 MB peak RSS, against 9.9-11.5 s, 17-18 CPU s and 530-550 MB
# for 2^20: the writer starts sooner and the last group drains sooner, and two groups in
# memory are a quarter of the size. The file is the same size (220 MB), DuckDB loads it as
# fast or faster, and each group (~6 MB) is still far above Parquet readers' minimum.
ROW_GROUP_ROWS = 1 << 18
COMPRESSION = "snappy"
# One all-null array per type, sliced for every column a file lacks (``all_null``).
_ALL_NULL: dict[pa.DataType, pa.Array] = {}
_ALL_NULL_ROWS = 1 << 18


@dataclass(frozen=True)
class Written:
    """What a month's Parquet file holds."""

    rows: int
    rows_outside_month: int
    row_groups: int
    parquet_bytes: int
    parquet_sha256: str
    # Rows per data-quality check (``pipeline.convert.quality.CHECKS``).
    quality: Counts = field(default_factory=dict)

    def stats(self, source_bytes: int, source_sha256: str,
              dropped_columns: tuple[str, ...] = (),
              new_columns: tuple[NewColumn, ...] = ()) -> ParquetStats:
        """The conversion's result: this file, made of the source file described."""
        return ParquetStats(
            rows=self.rows, rows_outside_month=self.rows_outside_month,
            row_groups=self.row_groups, source_bytes=source_bytes,
            source_sha256=source_sha256, parquet_bytes=self.parquet_bytes,
            parquet_sha256=self.parquet_sha256, quality=self.quality,
            dropped_columns=dropped_columns, new_columns=new_columns)


class MonthWriter:
    """``with MonthWriter(service, month, out) as w: w.add(table) ...; written = w.finish()``.

    Counts rows, and the rows that break each quality check (pickups outside the month
    among them), as tables are added.
    """

    def __init__(self, service: Service, month: date, out: Path,
                 row_group_rows: int = ROW_GROUP_ROWS, ahead: float = 1.0) -> None:
        self.service, self.row_group_rows = service, row_group_rows
        # Rows gathered for the next group while the writer is still busy with one.
        self._ahead_rows = max(1, int(row_group_rows * ahead))
        self.rows = self.row_groups = 0
        self.quality = QualityCounter(service, month)
        self._gathered: list[pa.Table] = []
        self._gathered_rows = 0
        self._writing: Future[None] | None = None
        self._sink = open(out, "wb")  # noqa: SIM115 (closed by __exit__)
        self._hashed = _HashingFile(self._sink)
        self._thread = ThreadPoolExecutor(1, "parquet-writer")
        self._writer = pq.ParquetWriter(self._hashed, service.schema, compression=COMPRESSION,
                                        use_dictionary=dictionary_columns(service.schema))

    def __enter__(self) -> MonthWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            self._thread.shutdown(wait=True)
            self._writer.close()
        finally:
            self._sink.close()

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        self.quality.add(table)
        self._gathered.append(table)
        self._gathered_rows += table.num_rows
        if self._writing and self._gathered_rows >= self._ahead_rows:
            # Gather ahead of the writer only so far: memory stays bounded.
            self._writing.result()
            self._writing = None
        while self._gathered_rows >= self.row_group_rows:
            group, rest = _split(self._gathered, self.row_group_rows)
            self._hand_over(group)
            # The writer now holds the only reference to the group, so its memory is
            # freed as soon as it is written.
            del group
            self._gathered, self._gathered_rows = [rest], rest.num_rows

    def finish(self) -> Written:
        """Write what is left (an empty month still gets one empty row group), wait, close."""
        if self._gathered_rows or not self.row_groups:
            self._hand_over(pa.concat_tables(self._gathered) if self._gathered
                            else self.service.schema.empty_table())
            self._gathered, self._gathered_rows = [], 0
        if self._writing:
            self._writing.result()
        self._writer.close()
        return Written(self.rows, self.rows_outside_month, self.row_groups,
                       self._hashed.size, self._hashed.sha256.hexdigest(),
                       self.quality.counts())

    @property
    def rows_outside_month(self) -> int:
        return self.quality.rows_outside_month

    def _hand_over(self, table: pa.Table) -> None:
        """Queue one row group once the previous one is written (bounded memory)."""
        if self._writing:
            self._writing.result()
        self._writing = self._thread.submit(self._writer.write_table, table,
                                            row_group_size=max(1, table.num_rows))
        self.row_groups += 1


def all_null(rows: int, kind: pa.DataType) -> pa.Array:
    """An all-null column of ``rows`` rows: a slice of one array kept per type, so the
    columns a file lacks cost no memory however many pieces and row groups hold them."""
    shared = _ALL_NULL.get(kind)
    if shared is None or len(shared) < rows:
        shared = pa.nulls(max(rows, _ALL_NULL_ROWS), kind)
        _ALL_NULL[kind] = shared
    return shared.slice(0, rows)


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth a dictionary: all but the timestamps.

    Pickup and dropoff times are nearly unique per row, so a dictionary for them is built,
    found too large and thrown away for every page; skipping it makes the writer about a
    quarter faster and the file no larger.
    """
    return [f.name for f in schema if not pa.types.is_timestamp(f.type)]


def _split(tables: list[pa.Table], rows: int) -> tuple[pa.Table, pa.Table]:
    """The first ``rows`` rows of the gathered tables, and the rest (zero-copy slices)."""
    whole = pa.concat_tables(tables)
    return whole.slice(0, rows), whole.slice(rows)


class _HashingFile:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._sink.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True
