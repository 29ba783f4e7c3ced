"""What every warehouse sink shares: table names, the DDL derived from the registry, the
load log, and the zone lookup as an Arrow table.

Identifiers in SQL come from the dataset registry only, never from user strings; values
travel as bound parameters.

A trips table is the registry's columns plus ``source_month`` (the month of the file a row
came from; pickups can lie outside it). A month's load replaces exactly the rows of its
``source_month`` in one transaction and records itself in the load log
``pipeline_loads`` (table, month, rows, Parquet checksum), which ``complete()`` checks
together with the actual row count.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import luigi
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.core.datasets import ZONES
from pipeline.core.errors import PipelineError
from pipeline.core.manifest import Manifest
from pipeline.core.months import month_key
from pipeline.core.service import KINDS, Service
from pipeline.core.version import __version__
from pipeline.lake.targets import check_pending_reads

SOURCE_MONTH = "source_month"
LOAD_LOG = "pipeline_loads"
ZONES_TABLE = "zones"


class WarehouseError(PipelineError):
    """A warehouse refused or could not take a load. The message is one line."""


Loaded = tuple[int, str, int]  # rows in the load log, its checksum, rows actually there
_many_months: dict[tuple[object, str], dict[date, Loaded]] | None = None


@contextlib.contextmanager
def asking_about_many_months() -> Iterator[None]:
    """While the block runs, ``loaded`` of an engine that pays a round trip per question
    (PostgreSQL, BigQuery) answers every month of a table from one query, read at the
    block's first question about that table and kept until the block ends: a job's plan
    asks about each month of its range (the whole history: 605 a sink; 0.2 s a question on
    the BigQuery emulator, a second or so on BigQuery). Outside the block each question is
    asked as it comes: luigi forks each task's process from the scheduling one, and its
    checks must see the loads made since."""
    global _many_months
    outer = _many_months
    _many_months = {} if outer is None else outer
    try:
        yield
    finally:
        _many_months = outer


def held_months(settings: object, table: str,
                read: Callable[[], dict[date, Loaded]]) -> dict[date, Loaded] | None:
    """Inside :func:`asking_about_many_months`: every month's answer for ``table`` (``read``
    once per block); outside it None, and the caller asks about its month alone."""
    if _many_months is None:
        return None
    if (settings, table) not in _many_months:
        _many_months[settings, table] = read()
    return _many_months[settings, table]


class Warehouse(Protocol):
    """What every engine module offers the load tasks and ``status``.

    ``loaded`` and ``rows_by_month`` read; ``load_month`` and ``load_zones`` replace a month
    (or the lookup) in one transaction and record it in the load log. ``source`` is where
    the month's Parquet is: a local path, or a ``gs://`` URL for an engine that reads the
    bucket itself. ``settings`` are the engine's own (``pipeline.warehouses.settings``),
    read from luigi.cfg by the tasks and passed in: where the tables live, how to reach
    them.
    """

    NAME: str

    def check_settings(self, settings: Any) -> None: ...
    def loaded(self, table: str, month: date | None,
               settings: Any) -> tuple[int, str, int] | None: ...
    def load_month(self, service: Service, month: date, source: str,
                   manifest: Manifest, settings: Any) -> int: ...
    def load_zones(self, zones: pa.Table, checksum: str, settings: Any) -> None: ...
    def rows_by_month(self, service: Service, settings: Any) -> dict[date, int]: ...


def check_rows(engine: str, service: Service, month: date, rows: int, manifest: Manifest,
               then: str = "rolled back") -> None:
    """The final check of every month load, inside its transaction: the table holds exactly
    the manifest's rows for the month, and the file read is the one the manifest describes
    (its sha256, hashed alongside the load's read), or the load is undone."""
    if rows != manifest.rows:
        raise WarehouseError(
            f"{service.name} {month_key(month)}: {engine} holds {rows} rows after the load, "
            f"the manifest {manifest.rows}; {then}")
    check_pending_reads()


def load_log_row(table: str, month: date | None, rows: int, checksum: str) -> list[object]:
    """The values of one ``pipeline_loads`` row, in ``LOAD_LOG_SCHEMA`` order."""
    return [table, month, rows, checksum, __version__, datetime.now(UTC).replace(tzinfo=None)]


def trips_table(service: Service) -> str:
    return f"{service.name}_tripdata"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_schema_name(setting: str, name: str) -> str:
    """A schema name from the settings, stripped; a one-line error when empty."""
    name = name.strip()
    if not name:
        raise WarehouseError(f"{setting} is empty: name a schema (or leave the default)")
    return name


def sql_types(*, id: str, money: str, time: str, text: str, date: str) -> dict[pa.DataType, str]:
    """An engine's names for the registry's column kinds (``KINDS``), and for ``date`` (the
    ``source_month`` column): the Arrow type -> SQL type map of a ``Dialect``."""
    named = {"id": id, "money": money, "time": time, "text": text}
    return {KINDS[kind]: sql for kind, sql in named.items()} | {pa.date32(): date}


@dataclass(frozen=True)
class Dialect:
    """How one SQL engine spells the registry's types, in DDL and in information_schema, and
    its column names: TLC's spelling (``VendorID``), or folded to lower case
    (``lower_case``: PostgreSQL, where unquoted SQL folds names so, and ``"VendorID"`` would
    have to be quoted in every query)."""

    name: str
    ddl_types: dict[pa.DataType, str]
    reported_types: dict[pa.DataType, str]
    lower_case: bool = False

    def column_name(self, name: str) -> str:
        """A registry column's name in this engine's tables."""
        return name.lower() if self.lower_case else name

    def columns(self, schema: pa.Schema) -> list[tuple[str, str]]:
        return [(self.column_name(f.name), self.ddl_types[f.type]) for f in schema]

    def trips_schema(self, service: Service) -> pa.Schema:
        return service.schema.append(pa.field(SOURCE_MONTH, pa.date32()))

    def create_table(self, table: str, schema: pa.Schema) -> str:
        body = ", ".join(f"{quote(n)} {t}" for n, t in self.columns(schema))
        return f"CREATE TABLE IF NOT EXISTS {quote(table)} ({body})"

    def renames(self, found: list[str]) -> list[tuple[str, str]]:
        """(old, new) for each column of an existing table spelled otherwise than this
        engine now names it (``"VendorID"`` -> ``vendorid``), when the new name is free."""
        if not self.lower_case:
            return []
        taken = set(found)
        return [(n, n.lower()) for n in found if n != n.lower() and n.lower() not in taken]

    def check_columns(self, table: str, schema: pa.Schema,
                      found: list[tuple[str, str]]) -> list[pa.Field]:
        """The registry columns an existing table lacks, to be added; refuse anything else.

        A table may lag the registry by columns the registry gained since it was created
        (issue 8: ``airport_fee``...): its columns, ``source_month`` aside, are then a
        prefix of the registry's, in order, and the missing ones are returned for
        ``ALTER TABLE ... ADD COLUMN`` (they come after ``source_month``). Any other
        difference refuses the table, which is left as it is (nothing dropped or retyped).
        """
        expected = [(self.column_name(f.name), self.reported_types[f.type].casefold())
                    for f in schema]
        actual = [(name, kind.casefold()) for name, kind in found]
        if actual == expected:
            return []
        movable = expected[-1] if expected and expected[-1][0] == SOURCE_MONTH else None
        if movable and movable in actual:
            head, rest = expected[:-1], [c for c in actual if c != movable]
            if head[:len(rest)] == rest:
                return list(schema)[len(rest):-1]
        differences = [
            f"{e[0]} {e[1]} is {a[0]} {a[1]}" for e, a in zip(expected, actual, strict=False)
            if e != a
        ] or [f"{len(actual)} columns instead of {len(expected)}"]
        raise WarehouseError(
            f"{self.name} table {table} has an incompatible schema "
            f"({'; '.join(differences[:3])}); it was left as it is: migrate or drop it"
        )

    def add_column(self, table: str, column: pa.Field) -> str:
        return (f"ALTER TABLE {quote(table)} ADD COLUMN {quote(self.column_name(column.name))} "
                f"{self.ddl_types[column.type]}")


LOAD_LOG_SCHEMA = pa.schema([
    ("table_name", pa.string()),
    (SOURCE_MONTH, pa.date32()),
    ("rows", pa.int64()),
    ("checksum", pa.string()),
    ("pipeline_version", pa.string()),
    ("loaded_at", pa.timestamp("us")),
])


def read_zones(path: Path) -> tuple[pa.Table, str]:
    """The zone lookup with its registry schema, and the sha256 of the file it came from."""
    data = path.read_bytes()
    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(column_names=ZONES.schema.names, skip_rows=1),
        convert_options=pacsv.ConvertOptions(
            column_types=dict(zip(ZONES.schema.names, ZONES.schema.types, strict=True)),
            null_values=[""], strings_can_be_null=True,
        ),
    )
    ids = table.column("LocationID")
    if ids.null_count or pc.count_distinct(ids).as_py() != table.num_rows:
        raise WarehouseError("zones: LocationID must be unique and never empty")
    return table.cast(ZONES.schema), hashlib.sha256(data).hexdigest()


def holds(found: tuple[int, str, int] | None, expected: tuple[int, str] | None) -> bool:
    """The warehouse holds what the lake says: ``found`` (rows and checksum in the load
    log, rows actually in the table, from ``loaded()``) against ``expected`` (rows and
    checksum from the lake); False when either is missing."""
    if expected is None or found is None:
        return False
    rows, checksum, actual = found
    return (rows, checksum) == expected and actual == rows


def month_loaded(engine: Warehouse, service: Service, month: date, manifest: Manifest | None,
                 settings: Any) -> bool:
    """The warehouse's fact of a month: its load log and its table hold the manifest's rows
    and Parquet checksum. Without a manifest nothing is loaded as it describes, and the
    engine is not asked."""
    if manifest is None:
        return False
    return holds(engine.loaded(trips_table(service), month, settings),
                 (manifest.rows, manifest.parquet_sha256))


class LoadedTarget(luigi.Target):
    """Exists when a warehouse's load log and its table both hold what the lake says.

    ``loaded()`` gives (rows in the load log, checksum in the load log, rows actually in
    the table) or None; ``expected()`` gives (rows, checksum) from the lake or None.
    """

    def __init__(
        self,
        loaded: Callable[[], tuple[int, str, int] | None],
        expected: Callable[[], tuple[int, str] | None],
        what: str = "a load into the warehouse",
    ) -> None:
        self.loaded, self.expected = loaded, expected
        self.what = what

    def __str__(self) -> str:
        # luigi names a missing output in its messages ("Unfulfilled dependency ... (...)").
        return self.what

    def __repr__(self) -> str:
        return f"LoadedTarget({self.what!r})"

    def exists(self) -> bool:
        expected = self.expected()
        return expected is not None and holds(self.loaded(), expected)
