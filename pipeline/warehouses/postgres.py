"""Loads into PostgreSQL, the database of ``[postgres] url`` (``postgresql://user@host:port/db``).

A month's Parquet is streamed in record batches into ``COPY ... FROM STDIN`` in binary
format (see ``pipeline.warehouses.pg_copy``), so memory stays bounded whatever the month's size. The
month's rows are replaced in one transaction: lock, delete, copy, count against the
manifest, record in the load log, commit. A killed load is rolled back by the server and
leaves the previous state; a transaction-scoped advisory lock on (table, month) makes a
second process loading the same month wait, so rows are never doubled. Loads of different
months and the DuckDB branch run in parallel.

The load tasks (``pipeline.tasks.load``) import this module only when they check or
run. Passwords come from the url, ``PGPASSWORD`` or ``~/.pgpass`` (libpq's usual places)
and are never part of a message: errors name the server as ``host:port``.

Its settings (``PostgresSettings``: the url, the connection timeout, the schema every
table lives in, created when missing) are passed in by the load tasks. Column names are in
lower case (``vendorid``), so unquoted SQL works as Postgres users expect; a table an
earlier version made with TLC's quoted spelling (``"VendorID"``, DDL 1) is renamed in
place by the next load of that table, in the load's DDL transaction, rows kept. Until then
its completeness check says no, so that load runs.

Why one module of some 360 lines: connecting (one-line errors), the DDL with its in-place
rename and the COPY load share one connection's transaction and locking rules.
"""

from __future__ import annotations

import contextlib
import re
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg.conninfo import conninfo_to_dict

from pipeline.core.datasets import ZONES
from pipeline.core.manifest import Manifest
from pipeline.core.service import Service
from pipeline.core.text import one_line, redact
from pipeline.warehouses import base, pg_copy
from pipeline.warehouses.base import LOAD_LOG, SOURCE_MONTH, quote, trips_table
from pipeline.warehouses.settings import PostgresSettings

NAME = "PostgreSQL"

DIALECT = base.Dialect(
    NAME,
    ddl_types=base.sql_types(id="BIGINT", money="DOUBLE PRECISION", time="TIMESTAMP",
                             text="TEXT", date="DATE"),
    reported_types=base.sql_types(id="bigint", money="double precision",
                                  time="timestamp without time zone", text="text", date="date"),
    lower_case=True,
)
# The DDL's version, written as each table's comment when the pipeline creates it. A table
# stamped with a newer version belongs to a newer pipeline and is refused, not altered.
# 1: TLC's column names, quoted ("VendorID"); 2: in lower case (vendorid). Stamping 2 on a
# renamed table keeps an older pipeline, which would COPY into "VendorID", off it.
DDL_VERSION = 2
DDL_COMMENT = "nyc-taxi-pipeline DDL {version}"
# Rows per record batch: ~15 MB of COPY data for yellow, two batches in memory at a time.
BATCH_ROWS = 1 << 16
APPLICATION_NAME = "nyc-taxi-pipeline"


# --------------------------------------------------------------------------- connecting


@dataclass(frozen=True)
class Server:
    """Where ``[postgres] url`` points, as messages may show it (never the password)."""

    url: str
    host: str
    port: str
    user: str
    dbname: str
    password: str | None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def redact(self, text: str) -> str:
        """``text`` without the password or any URL credentials."""
        return redact(text, self.password)


def check_settings(settings: PostgresSettings) -> None:
    """Fail before anything is scheduled when ``[postgres] url`` is empty or malformed, or
    ``[postgres] schema`` empty."""
    server(settings)
    _schema(settings)


def server(settings: PostgresSettings) -> Server:
    """The server ``[postgres] url`` names; a clear error when it is empty or malformed."""
    url = settings.url.strip()
    if not url:
        raise base.WarehouseError("[postgres] url is empty: set it to postgresql://user@host:port/db")
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise base.WarehouseError(
            "[postgres] url is not a valid connection string: expected "
            "postgresql://user@host:port/db") from None
    return Server(
        url=url,
        host=parts.get("host") or "local socket",
        port=str(parts.get("port") or 5432),
        user=str(parts.get("user") or "(login name)"),
        dbname=str(parts.get("dbname") or "(user name)"),
        password=str(parts["password"]) if parts.get("password") else None,
    )


def _connect_reason(error: BaseException) -> str:
    """libpq's reason alone: 'connection to server at "h", port p failed: X' -> 'X'."""
    first = next((line for line in str(error).splitlines() if line.strip()), "")
    reason = one_line(first or error).rsplit(" failed: ", 1)[-1]
    return re.sub(r"^(FATAL|ERROR):\s*", "", reason)


@contextlib.contextmanager
def connect(settings: PostgresSettings) -> Iterator[psycopg.Connection]:
    """An autocommit connection (transactions are explicit); every error is one line."""
    target = server(settings)
    try:
        con = psycopg.connect(
            target.url,
            autocommit=True,
            connect_timeout=settings.connect_timeout,
            application_name=APPLICATION_NAME,
        )
    except psycopg.Error as e:
        raise base.WarehouseError(target.redact(
            f"cannot connect to PostgreSQL at {target.where} (database {target.dbname}, "
            f"user {target.user}): {_connect_reason(e)}")) from None
    try:
        with con:
            yield con
    except base.WarehouseError:
        raise
    except psycopg.Error as e:
        raise base.WarehouseError(target.redact(
            f"PostgreSQL at {target.where}: {type(e).__name__}: {one_line(e)}")) from None


def _schema(settings: PostgresSettings) -> str:
    """``[postgres] schema``, checked."""
    return base.check_schema_name("[postgres] schema", settings.schema)


@contextlib.contextmanager
def connect_in(settings: PostgresSettings) -> Iterator[psycopg.Connection]:
    """``connect()`` with the search path set to ``[postgres] schema`` alone: unqualified
    names resolve there, and tables are created there (``ensure_tables`` creates the
    schema)."""
    with connect(settings) as con:
        con.execute(f"SET search_path TO {quote(_schema(settings))}")
        yield con


# --------------------------------------------------------------------------- DDL


def _lock_key(name: str) -> int:
    """A stable signed 32-bit key for ``pg_advisory_xact_lock(key, sub_key)``."""
    return zlib.crc32(f"{APPLICATION_NAME}:{name}".encode()) - (1 << 31)


def _ensure_table(cur: psycopg.Cursor, table: str, schema: pa.Schema, index_month: bool) -> None:
    """Create the table (and its month index) when missing; refuse it when incompatible."""
    if _missing(cur, quote(table)):
        cur.execute(DIALECT.create_table(table, schema))
        cur.execute(f"COMMENT ON TABLE {quote(table)} IS "
                    f"'{DDL_COMMENT.format(version=DDL_VERSION)}'")
    else:
        cur.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", [quote(table)])
        (comment,) = cur.fetchone()  # type: ignore[misc]
        version = re.fullmatch(DDL_COMMENT.format(version=r"(\d+)"), comment or "")
        if version and int(version[1]) > DDL_VERSION:
            raise base.WarehouseError(
                f"PostgreSQL table {table} was created by a newer pipeline (DDL {version[1]}, "
                f"this one knows {DDL_VERSION}); it was left as it is")
        found = _columns(cur, table)
        renames = dict(DIALECT.renames([name for name, _ in found]))
        # Checked as it will be once renamed: an incompatible table is left untouched.
        missing = DIALECT.check_columns(
            table, schema, [(renames.get(name, name), kind) for name, kind in found])
        if renames:
            # Once per table, in the caller's transaction: all renamed or none.
            for old, new in renames.items():
                cur.execute(f"ALTER TABLE {quote(table)} RENAME COLUMN {quote(old)} "
                            f"TO {quote(new)}")
            cur.execute(f"COMMENT ON TABLE {quote(table)} IS "
                        f"'{DDL_COMMENT.format(version=DDL_VERSION)}'")
        for column in missing:
            # Earlier months keep their rows; the new column is null for them (no rewrite).
            cur.execute(DIALECT.add_column(table, column))
    index = quote(f"{table}_{SOURCE_MONTH}")
    # Looked up first: even CREATE INDEX IF NOT EXISTS waits for a share lock on the table,
    # that is, for every running load of another month to commit.
    if index_month and _missing(cur, index):
        cur.execute(f"CREATE INDEX {index} ON {quote(table)} ({quote(SOURCE_MONTH)})")


def _columns(cur: psycopg.Cursor, table: str) -> list[tuple[str, str]]:
    """(name, type) of each column of an existing table, in order."""
    # pg_attribute, not information_schema: the latter hides the columns of a table this
    # role has no privilege on, which would misreport a foreign table's schema.
    cur.execute(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum", [quote(table)])
    return cur.fetchall()


def _missing_schema(cur: psycopg.Cursor, name: str) -> bool:
    cur.execute("SELECT to_regnamespace(%s) IS NULL", [quote(name)])
    return bool(cur.fetchone()[0])  # type: ignore[index]


def _missing(cur: psycopg.Cursor, relation: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NULL", [relation])
    return bool(cur.fetchone()[0])  # type: ignore[index]


def ensure_tables(con: psycopg.Connection, table: str, schema: pa.Schema,
                  index_month: bool, namespace: str | None = None) -> None:
    """The table and the load log, in their own transaction, one process at a time (two
    concurrent ``CREATE TABLE IF NOT EXISTS`` can collide in the catalog), in the schema
    ``namespace`` (created when missing; the connection's search path names it, see
    ``connect_in``)."""
    with con.transaction(), con.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", [_lock_key("ddl")])
        # Looked up first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the
        # database even when the schema exists.
        if namespace is not None and _missing_schema(cur, namespace):
            cur.execute(f"CREATE SCHEMA {quote(namespace)}")
        _ensure_table(cur, table, schema, index_month)
        _ensure_table(cur, LOAD_LOG, base.LOAD_LOG_SCHEMA, index_month=False)


# --------------------------------------------------------------------------- loads


def _lock_month(cur: psycopg.Cursor, table: str, month: date | None) -> None:
    """Until commit or rollback, no other load of this table's month runs."""
    sub_key = month.year * 100 + month.month if month else 0
    cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_lock_key(table), sub_key])


def _record_load(cur: psycopg.Cursor, table: str, month: date | None, rows: int,
                 checksum: str) -> None:
    cur.execute(
        f"DELETE FROM {quote(LOAD_LOG)} WHERE table_name = %s "
        f"AND {SOURCE_MONTH} IS NOT DISTINCT FROM %s", [table, month])
    cur.execute(f"INSERT INTO {quote(LOAD_LOG)} VALUES (%s, %s, %s, %s, %s, %s)",
                base.load_log_row(table, month, rows, checksum))


def _copy(cur: psycopg.Cursor, table: str, batches: Iterator[pa.RecordBatch],
          schema: pa.Schema) -> None:
    """Binary COPY of the batches; the next batch is read and encoded in a helper thread
    while this one is sent, so the server is never kept waiting for the client."""
    pg_copy.check_schema(schema)
    columns = ", ".join(quote(DIALECT.column_name(name)) for name in schema.names)
    with cur.copy(f"COPY {quote(table)} ({columns}) FROM STDIN (FORMAT binary)") as copy, \
            ThreadPoolExecutor(1, "pg-copy-encoder") as encoder:
        copy.write(pg_copy.SIGNATURE)
        encoded = encoder.submit(_next_encoded, batches)
        while (chunks := encoded.result()) is not None:
            encoded = encoder.submit(_next_encoded, batches)
            for chunk in chunks:
                copy.write(chunk)
        copy.write(pg_copy.TRAILER)


def _next_encoded(batches: Iterator[pa.RecordBatch]) -> list[memoryview] | None:
    batch = next(batches, None)
    return None if batch is None else pg_copy.encode(batch)


def _month_batches(parquet: Path, service: Service, month: date) -> Iterator[pa.RecordBatch]:
    """The Parquet file's rows with ``source_month``, a bounded batch at a time."""
    # No pre-buffering and no decoding threads: both raise the peak RSS far more than they
    # save time, and the server, not the client, sets the pace of a COPY.
    with pq.ParquetFile(parquet, pre_buffer=False) as file:
        source_month = pa.scalar(month, pa.date32())
        for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=service.columns,
                                       use_threads=False):
            yield batch.append_column(SOURCE_MONTH, pa.repeat(source_month, batch.num_rows))


def load_month(service: Service, month: date, source: str | Path, manifest: Manifest,
               settings: PostgresSettings) -> int:
    """Replace the month's rows of ``{service}_tripdata`` in ``schema`` with the Parquet
    file at ``source``, atomically."""
    table = trips_table(service)
    columns = DIALECT.trips_schema(service)
    with connect_in(settings) as con:
        ensure_tables(con, table, columns, index_month=True, namespace=_schema(settings))
        with con.transaction(), con.cursor() as cur, \
                contextlib.closing(_month_batches(Path(source), service, month)) as batches:
            _lock_month(cur, table, month)
            cur.execute(f"DELETE FROM {quote(table)} WHERE {SOURCE_MONTH} = %s", [month])
            _copy(cur, table, batches, columns)
            cur.execute(f"SELECT count(*) FROM {quote(table)} WHERE {SOURCE_MONTH} = %s",
                        [month])
            (rows,) = cur.fetchone()  # type: ignore[misc]
            base.check_rows(NAME, service, month, rows, manifest)
            _record_load(cur, table, month, rows, manifest.parquet_sha256)
    return rows


def load_zones(zones: pa.Table, checksum: str, settings: PostgresSettings) -> None:
    """Replace the zones table with the lookup, in one transaction."""
    with connect_in(settings) as con:
        ensure_tables(con, base.ZONES_TABLE, ZONES.schema, index_month=False,
                      namespace=_schema(settings))
        with con.transaction(), con.cursor() as cur:
            _lock_month(cur, base.ZONES_TABLE, None)
            cur.execute(f"DELETE FROM {quote(base.ZONES_TABLE)}")
            _copy(cur, base.ZONES_TABLE, iter(zones.to_batches()), ZONES.schema)
            _record_load(cur, base.ZONES_TABLE, None, zones.num_rows, checksum)


# How many of a table's columns still have an earlier version's (mixed-case) names; the
# table's next load renames them, and until then no month of it counts as loaded.
_EARLIER_COLUMNS = ("SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                    "AND attnum > 0 AND NOT attisdropped AND attname <> lower(attname)")


def loaded(table: str, month: date | None,
           settings: PostgresSettings) -> tuple[int, str, int] | None:
    """(rows in the load log, checksum in the load log, rows actually there) or None.

    None too when that cannot be confirmed (no url, server unreachable, no such table),
    and while the table still has an earlier version's column names (its next load renames
    them): the task then runs, and its run fails with the reason on one line, instead of
    the completeness check failing the scheduling of the whole run.
    """
    if month is not None:
        held = base.held_months(settings, table, lambda: _loaded_months(table, settings))
        if held is not None:
            return held.get(month)
    where = f"{SOURCE_MONTH} = %s" if month else "true"
    try:
        with connect_in(settings) as con:
            row = con.execute(
                f"SELECT l.rows, l.checksum, "
                f"(SELECT count(*) FROM {quote(table)} WHERE {where}), "
                f"({_EARLIER_COLUMNS}) "
                f"FROM {quote(LOAD_LOG)} l WHERE l.table_name = %s "
                f"AND l.{SOURCE_MONTH} IS NOT DISTINCT FROM %s",
                [*([month] if month else []), quote(table), table, month],
            ).fetchone()
    except base.WarehouseError:
        return None
    if row is None or row[3]:
        return None
    return tuple(row[:3])  # type: ignore[return-value]


def _loaded_months(table: str, settings: PostgresSettings) -> dict[date, base.Loaded]:
    """``loaded`` of every month of ``table`` in one query; empty when that cannot be
    confirmed (as ``loaded``'s None: no server, no table, an earlier version's columns)."""
    try:
        with connect_in(settings) as con:
            if con.execute("SELECT to_regclass(%s)", [quote(table)]).fetchone() == (None,):
                return {}
            (old_columns,) = con.execute(
                _EARLIER_COLUMNS, [quote(table)]).fetchone()  # type: ignore[misc]
            if old_columns:
                return {}
            rows = con.execute(
                f"SELECT l.{SOURCE_MONTH}, l.rows, l.checksum, coalesce(c.n, 0) "
                f"FROM {quote(LOAD_LOG)} l LEFT JOIN (SELECT {SOURCE_MONTH}, count(*) AS n "
                f"FROM {quote(table)} GROUP BY 1) c ON c.{SOURCE_MONTH} = l.{SOURCE_MONTH} "
                f"WHERE l.table_name = %s AND l.{SOURCE_MONTH} IS NOT NULL", [table]).fetchall()
    except base.WarehouseError:
        return {}
    return {month: (n, checksum, there) for month, n, checksum, there in rows}


def rows_by_month(service: Service, settings: PostgresSettings) -> dict[date, int]:
    """Rows of each source month in ``{service}_tripdata`` (one query; empty without a table)."""
    table = trips_table(service)
    with connect_in(settings) as con:
        if con.execute("SELECT to_regclass(%s)", [quote(table)]).fetchone() == (None,):
            return {}
        rows = con.execute(
            f"SELECT {SOURCE_MONTH}, count(*) FROM {quote(table)} GROUP BY 1").fetchall()
    return dict(rows)
