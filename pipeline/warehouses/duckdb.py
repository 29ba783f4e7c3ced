"""The embedded DuckDB warehouse (``[duckdb] path``): its tables, a month's load and what
it holds.

The load tasks (``pipeline.tasks.load``) import this module only when they check or run, so
a process that never touches the warehouse never loads DuckDB. A connection that meets
another process's write lock waits for it, up to ``[duckdb] lock_timeout``.

Its settings (``DuckDBSettings``: the file, the bounds of a load, the schema every table
lives in, created when missing) are passed in by the load tasks. Columns keep TLC's
spelling (``VendorID``): DuckDB matches unquoted names case-insensitively, so ``select
vendorid from green_tripdata`` works."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import tenacity

from pipeline.core.datasets import ZONES
from pipeline.core.manifest import Manifest
from pipeline.core.service import Service
from pipeline.warehouses import base
from pipeline.warehouses.base import LOAD_LOG, SOURCE_MONTH, quote, trips_table
from pipeline.warehouses.settings import DuckDBSettings

NAME = "DuckDB"

_TYPES = base.sql_types(id="BIGINT", money="DOUBLE", time="TIMESTAMP", text="VARCHAR",
                        date="DATE")
DIALECT = base.Dialect(NAME, ddl_types=_TYPES, reported_types=_TYPES)


def check_settings(settings: DuckDBSettings) -> None:
    """Before scheduling: a schema is named (the file is made on first use)."""
    _schema(settings)


def _is_lock_conflict(error: BaseException) -> bool:
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


# Memory DuckDB's block allocator keeps for the process once used (it is never handed back).
# A load frees and allocates blocks all the time; without it each block went back to the
# OS and faulted in again: a 10M-row month loaded with 400 thousand page faults in 5.2-5.7 s
# and 9.7-10.7 CPU s, and with 64MB kept, 230 thousand in 4.5-4.9 s and 8.5-9.3 CPU s, for
# 7-15 MB more peak RSS (128MB and 300MB bought nothing more). Writers only: a check's
# read-only connection frees little, and the long-lived scheduling process makes those.
WRITER_BLOCK_MEMORY = "64MB"


def _open(path: Path, read_only: bool, settings: DuckDBSettings) -> duckdb.DuckDBPyConnection:
    """Connect, waiting up to ``[duckdb] lock_timeout`` for another process's lock."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_is_lock_conflict),
        wait=tenacity.wait_random_exponential(multiplier=0.1, max=2),
        stop=tenacity.stop_after_delay(settings.lock_timeout),
        reraise=True,
    )
    # Row order within a table means nothing here; not keeping it makes loads faster and
    # lighter.
    options: dict[str, object] = {"memory_limit": settings.memory_limit,
                                  "threads": settings.threads,
                                  "preserve_insertion_order": False}
    if not read_only:
        options["block_allocator_memory"] = WRITER_BLOCK_MEMORY
    return retrying(duckdb.connect, str(path), read_only=read_only, config=options)


# DuckDB names the holder: 'Conflicting lock is held in /usr/bin/python3 (PID 4242) by user'
_HOLDER = re.compile(r"held in (?P<program>\S.*?) \(PID (?P<pid>\d+)\)")


def _locked(path: Path, error: BaseException, waited: float) -> str:
    """One line: the file, who holds it (program and PID, from DuckDB's message), how long
    this process waited."""
    found = _HOLDER.search(str(error))
    holder = (f"process {found['pid']} ({found['program']})" if found
              else "another process")
    return (f"DuckDB file {path} is locked by {holder}: waited {waited:g} s ([duckdb] "
            "lock_timeout); close that process or wait for it, then run again")


@contextlib.contextmanager
def connect(settings: DuckDBSettings, read_only: bool = False
            ) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A connection to the warehouse file, closed after use; None when a reader finds no file."""
    path = Path(settings.path).absolute()
    if read_only and not path.exists():
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = _open(path, read_only, settings)
    except duckdb.IOException as e:
        if _is_lock_conflict(e):
            raise base.WarehouseError(_locked(path, e, settings.lock_timeout)) from None
        raise base.WarehouseError(f"DuckDB file {path} cannot be opened: {e}") from None
    try:
        yield con
    finally:
        con.close()


def _schema(settings: DuckDBSettings) -> str:
    """``[duckdb] schema``, checked."""
    return base.check_schema_name("[duckdb] schema", settings.schema)


@contextlib.contextmanager
def connect_in(settings: DuckDBSettings, read_only: bool = False
               ) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """``connect()`` with ``[duckdb] schema`` as the current schema (unqualified names
    resolve there; a writer creates it when missing); None when a reader finds no file or
    no such schema."""
    name = _schema(settings)
    with connect(settings, read_only=read_only) as con:
        if con is None:
            yield None
            return
        if not read_only:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(name)}")
        # Qualified by the file's catalog: a bare name could also be an attached database.
        (catalog,) = con.execute("SELECT current_database()").fetchone()  # type: ignore[misc]
        try:
            con.execute(f"USE {quote(catalog)}.{quote(name)}")
        except duckdb.CatalogException:
            yield None
            return
        yield con


def _ensure_table(con: duckdb.DuckDBPyConnection, table: str, schema: pa.Schema) -> None:
    con.execute(DIALECT.create_table(table, schema))
    found = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    for column in DIALECT.check_columns(table, schema, found):
        # Earlier months keep their rows; the new column is null for them.
        con.execute(DIALECT.add_column(table, column))


def _record_load(con: duckdb.DuckDBPyConnection, table: str, month: date | None, rows: int,
                 checksum: str) -> None:
    _ensure_table(con, LOAD_LOG, base.LOAD_LOG_SCHEMA)
    con.execute(
        f"DELETE FROM {LOAD_LOG} WHERE table_name = ? AND {SOURCE_MONTH} IS NOT DISTINCT FROM ?",
        [table, month],
    )
    con.execute(f"INSERT INTO {LOAD_LOG} VALUES (?, ?, ?, ?, ?, ?)",
                base.load_log_row(table, month, rows, checksum))


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back, keeping the error that made it necessary: a commit that failed on a full
    disk has already ended the transaction, and rollback() would then raise its own."""
    with contextlib.suppress(duckdb.TransactionException):
        con.rollback()


def load_month(service: Service, month: date, source: str, manifest: Manifest,
               settings: DuckDBSettings) -> int:
    """Replace the month's rows of ``{service}_tripdata`` with the Parquet file at
    ``source``, atomically."""
    table = trips_table(service)
    columns = ", ".join(quote(c) for c in service.columns)
    with connect_in(settings) as con:
        assert con is not None
        _ensure_table(con, table, DIALECT.trips_schema(service))
        con.begin()
        try:
            con.execute(f"DELETE FROM {quote(table)} WHERE {SOURCE_MONTH} = ?", [month])
            con.execute(
                f"INSERT INTO {quote(table)} ({columns}, {SOURCE_MONTH}) "
                f"SELECT {columns}, ?::DATE FROM read_parquet(?)",
                [month, str(source)],
            )
            rows = _count_month(con, table, month)
            base.check_rows(NAME, service, month, rows, manifest)
            _record_load(con, table, month, rows, manifest.parquet_sha256)
            con.commit()
        except BaseException:
            _rollback(con)
            raise
    return rows


def load_zones(zones: pa.Table, checksum: str, settings: DuckDBSettings) -> None:
    """Replace the zones table with the lookup, in one transaction."""
    with connect_in(settings) as con:
        assert con is not None
        _ensure_table(con, base.ZONES_TABLE, ZONES.schema)
        con.begin()
        try:
            con.execute(f"DELETE FROM {base.ZONES_TABLE}")
            con.register("new_zones", zones)
            con.execute(f"INSERT INTO {base.ZONES_TABLE} SELECT * FROM new_zones")
            _record_load(con, base.ZONES_TABLE, None, zones.num_rows, checksum)
            con.commit()
        except BaseException:
            _rollback(con)
            raise


def loaded(table: str, month: date | None,
           settings: DuckDBSettings) -> tuple[int, str, int] | None:
    """(rows in the load log, checksum in the load log, rows actually there) or None."""
    return _LOADED.of(settings, table, month)


@dataclass
class _Held:
    """A table's load log, and the rows counted so far of the months asked about."""

    logged: dict[date | None, tuple[int, str]]
    rows: Mapping[date | None, int]
    every_month_counted: bool


class _LoadedCache:
    """What the warehouse holds, kept while the warehouse file and its write-ahead log are
    unchanged (size and mtime): any commit, by any process, changes one of them, so a kept
    answer is never stale.

    A task's process asks about one month: its rows are counted alone (``WHERE source_month
    = ?``: DuckDB skips the other months' row groups by their min and max, so it takes a few
    ms however large the table). A scheduling process asks about hundreds of months: from
    its second question on, every month is counted in one ``GROUP BY``, and opening the file
    once serves them all. (Every check counting the whole table took 0.15 CPU s on a
    16.8M-row table, and grows with the table: a 17-year backfill would pay it per month.)
    """

    def __init__(self) -> None:
        self._state: object = None
        self._held: dict[tuple[str, str], _Held] = {}

    def of(self, settings: DuckDBSettings, table: str, month: date | None
           ) -> tuple[int, str, int] | None:
        schema = _schema(settings)
        state = _file_state(settings.path)
        if state != self._state:
            self._state, self._held = state, {}
        held = self._held.get((schema, table))
        if held is None or not (held.every_month_counted or month in held.rows):
            held = self._read(settings, table, month, every_month=held is not None)
            self._held[schema, table] = held
        logged = held.logged.get(month)
        return None if logged is None else (*logged, held.rows.get(month, 0))

    def _read(self, settings: DuckDBSettings, table: str, month: date | None,
              every_month: bool) -> _Held:
        with connect_in(settings, read_only=True) as con:
            if con is None:
                return _Held({}, {}, every_month_counted=True)
            try:
                logged = {m: (rows, checksum) for m, rows, checksum in con.execute(
                    f"SELECT {SOURCE_MONTH}, rows, checksum FROM {LOAD_LOG} WHERE table_name = ?",
                    [table],
                ).fetchall()}
                if table == base.ZONES_TABLE:
                    (total,) = con.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()
                    return _Held(logged, {None: total}, every_month_counted=True)
                if every_month:
                    return _Held(logged, _count_by_month(con, table), every_month_counted=True)
                rows = _count_month(con, table, month) if month in logged else 0
                return _Held(logged, {month: rows}, every_month_counted=False)
            except duckdb.CatalogException:
                return _Held({}, {}, every_month_counted=True)


def _file_state(file: str) -> object:
    path = Path(file).absolute()
    state = []
    for file in (path, path.with_name(path.name + ".wal")):
        try:
            info = file.stat()
            state.append((str(file), info.st_size, info.st_mtime_ns))
        except FileNotFoundError:
            state.append((str(file), None, None))
    return tuple(state)


_LOADED = _LoadedCache()


def rows_by_month(service: Service, settings: DuckDBSettings) -> dict[date, int]:
    """Rows of each source month in ``{service}_tripdata`` (one query; empty without a table)."""
    with connect_in(settings, read_only=True) as con:
        if con is None:
            return {}
        try:
            return _count_by_month(con, trips_table(service))
        except duckdb.CatalogException:
            return {}


def _count_month(con: duckdb.DuckDBPyConnection, table: str, month: date | None) -> int:
    """Rows of one source month of a trips table (DuckDB reads only that month's row groups)."""
    (rows,) = con.execute(
        f"SELECT count(*) FROM {quote(table)} WHERE {SOURCE_MONTH} = ?", [month]).fetchone()
    return rows


def _count_by_month(con: duckdb.DuckDBPyConnection, table: str) -> dict[date, int]:
    """Rows of each source month of a trips table, in one query."""
    return dict(con.execute(
        f"SELECT {SOURCE_MONTH}, count(*) FROM {quote(table)} GROUP BY 1").fetchall())
