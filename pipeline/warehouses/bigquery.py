"""BigQuery as a warehouse: tables ``{service}_tripdata``, ``zones`` and the load log
``pipeline_loads`` in ``{project}.{dataset}``, loaded from the Parquet objects in the bucket.
The load tasks (``pipeline.tasks.load``) import this module only when they check or run.

A month's load: the trips table is created when missing (the registry's explicit schema +
``source_month``, partitioned by month on the pickup time, clustered on ``source_month``)
or refused when its columns differ; the object's own Parquet schema is checked against the
table (names, order, types: a load job matches columns by position on some engines and
casts silently); a load job with an explicit schema fills a staging table; its row count
must equal the manifest's; then one transaction deletes the month and inserts the staged
rows, and records the load. Re-runs never duplicate.

Multi-statement scripts cannot take query parameters on every engine, so the literals in
them are validated here and inlined; identifiers come from the registry and from settings
checked against BigQuery's naming rules.

Credentials: Application Default Credentials; an ``http://`` endpoint (an emulator) is
called without any, so no token ever travels in clear. Nothing here logs a credential.
"""

from __future__ import annotations

import io
import os
import re
from datetime import UTC, date, datetime, timedelta

import google.auth.exceptions
import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core import exceptions as api
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from pipeline.core.datasets import ZONES
from pipeline.core.errors import SettingsError
from pipeline.core.manifest import Manifest
from pipeline.core.months import month_key
from pipeline.core.service import Service
from pipeline.core.text import one_line
from pipeline.lake.keys import partition_root
from pipeline.lake.root import lake_target
from pipeline.warehouses import base
from pipeline.warehouses.base import LOAD_LOG, SOURCE_MONTH, trips_table
from pipeline.warehouses.settings import BigQuerySettings

NAME = "BigQuery"

_TYPES = base.sql_types(id="INT64", money="FLOAT64", time="TIMESTAMP", text="STRING",
                        date="DATE")
DIALECT = base.Dialect(NAME, ddl_types=_TYPES, reported_types=_TYPES)
# The API reports some types by their legacy names.
_LEGACY_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}
# Hive-style folders (year=YYYY/month=MM) become two INT64 columns of a load from the lake.
# BigQuery names them from the URI prefix; the emulator adds them by position, sorted by
# name (month, year), so the staging table lists them in that order.
HIVE_COLUMNS = ("month", "year")
STAGING_HOURS = 24
_LITERAL = re.compile(r"^[A-Za-z0-9_.+-]*$")
_PROJECT = re.compile(r"^[a-z][a-z0-9.:-]{1,62}[a-z0-9]$")
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")


def check_settings(s: BigQuerySettings) -> None:
    """Fail before anything is scheduled when ``[bigquery]`` is not set up (the bucket the
    loads read from is the ``gcs`` sink's check)."""
    if not s.project or not s.dataset:
        raise SettingsError("sink 'bigquery' needs [bigquery] project and dataset "
                            "(see README, Google Cloud)")
    if not _PROJECT.match(s.project):
        raise SettingsError(f"[bigquery] project {s.project!r} is not a Google Cloud project id")
    if not _DATASET.match(s.dataset):
        raise SettingsError(f"[bigquery] dataset {s.dataset!r} is not a BigQuery dataset name "
                            "(letters, digits and underscores)")


_client: tuple[tuple[object, ...], bigquery.Client] | None = None


def client(s: BigQuerySettings) -> bigquery.Client:
    """The process's client (made again after a fork or a change of settings)."""
    global _client
    key = (os.getpid(), s.project, s.location, s.endpoint)
    if _client is None or _client[0] != key:
        check_settings(s)
        plain_http = s.endpoint.startswith("http://")
        try:
            made = bigquery.Client(
                project=s.project, location=s.location or None,
                credentials=AnonymousCredentials() if plain_http else None,
                client_options=ClientOptions(api_endpoint=s.endpoint) if s.endpoint else None,
            )
        except google.auth.exceptions.DefaultCredentialsError:
            raise base.WarehouseError(
                "no Google credentials for BigQuery: run `gcloud auth application-default "
                "login` or set GOOGLE_APPLICATION_CREDENTIALS (see README, Google Cloud)"
            ) from None
        _client = (key, made)
    return _client[1]


def table_id(s: BigQuerySettings, name: str) -> str:
    return f"{s.project}.{s.dataset}.{name}"


def _sql(s: BigQuerySettings, name: str) -> str:
    return f"`{table_id(s, name)}`"


def _literal(value: object) -> str:
    """A validated SQL literal for a script (which takes no parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        raise TypeError("no booleans in load scripts")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):
        return f"DATE '{value:%Y-%m-%d}'"
    text = str(value)
    if not _LITERAL.match(text):
        raise ValueError(f"refusing to inline {text!r} into SQL")
    return f"'{text}'"


def _fields(schema: pa.Schema) -> list[bigquery.SchemaField]:
    return [bigquery.SchemaField(name, kind) for name, kind in DIALECT.columns(schema)]


def _reported(table: bigquery.Table) -> list[tuple[str, str]]:
    return [(f.name, _LEGACY_TYPES.get(f.field_type, f.field_type)) for f in table.schema]


def _check_dataset(s: BigQuerySettings) -> None:
    try:
        client(s).get_dataset(f"{s.project}.{s.dataset}")
    except api.NotFound:
        raise base.WarehouseError(
            f"BigQuery dataset {s.project}.{s.dataset} does not exist or these credentials "
            "cannot see it: create it once (see README, Google Cloud) or fix [bigquery] dataset"
        ) from None


def ensure_table(s: BigQuerySettings, name: str, schema: pa.Schema,
                 partition_by: str | None = None,
                 cluster_by: list[str] | None = None) -> bigquery.Table:
    """The table, created when missing; refused (left as it is) when its columns differ."""
    try:
        table = client(s).get_table(table_id(s, name))
    except api.Forbidden as e:
        raise base.WarehouseError(f"BigQuery denied access to {table_id(s, name)}: "
                             f"{one_line(e)}") from None
    except api.NotFound:
        _check_dataset(s)
        table = bigquery.Table(table_id(s, name), schema=_fields(schema))
        if partition_by:
            table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.MONTH, field=partition_by)
        table.clustering_fields = cluster_by
        table = client(s).create_table(table, exists_ok=True)
    missing = DIALECT.check_columns(table_id(s, name), schema, _reported(table))
    if missing:
        # New NULLABLE columns at the end: a schema change that keeps every row (DDL rather
        # than a metadata patch, so that the storage of an emulator follows as well).
        for column in missing:
            client(s).query(f"ALTER TABLE {_sql(s, name)} ADD COLUMN IF NOT EXISTS "
                           f"`{column.name}` {DIALECT.ddl_types[column.type]}").result()
        table = client(s).get_table(table_id(s, name))
        known = {f.name for f in table.schema}
        if any(column.name not in known for column in missing):
            # The emulator's DDL leaves the table's metadata behind: patch it to match.
            table.schema = [*table.schema, *_fields(pa.schema(
                [c for c in missing if c.name not in known]))]
            table = client(s).update_table(table, ["schema"])
    return table


def check_parquet(s: BigQuerySettings, url: str, table: bigquery.Table) -> None:
    """Refuse an object whose Parquet columns are not the table's (names, order, types)."""
    with lake_target(url).open("rb") as f:
        schema = pq.read_schema(f)
    found = [(field.name, _TYPES.get(field.type, str(field.type))) for field in schema]
    expected = [(name, kind) for name, kind in _reported(table) if name != SOURCE_MONTH]
    if found != expected:
        differences = [f"{e[0]} {e[1]} is {f[0]} {f[1]}"
                       for e, f in zip(expected, found, strict=False) if e != f]
        differences = differences or [f"{len(found)} columns instead of {len(expected)}"]
        raise base.WarehouseError(f"{url} does not match table {table_id(s, table.table_id)} "
                             f"({'; '.join(differences[:3])}); nothing was loaded")


def _query(s: BigQuerySettings, sql: str,
           params: list[bigquery.ScalarQueryParameter] | None = None) -> list[tuple]:
    job = client(s).query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params or []))
    return [tuple(row.values()) for row in job.result()]


def _staging(s: BigQuerySettings, name: str, schema: pa.Schema) -> bigquery.Table:
    """A fresh staging table (it expires by itself if a crash leaves it behind)."""
    client(s).delete_table(table_id(s, name), not_found_ok=True)
    table = bigquery.Table(table_id(s, name), schema=_fields(schema))
    table.expires = datetime.now(UTC) + timedelta(hours=STAGING_HOURS)
    return client(s).create_table(table)


def _swap(s: BigQuerySettings, table: str, columns: list[str], staging: str,
          month: date | None, rows: int, checksum: str) -> None:
    """In one transaction: replace the month's rows (all rows for zones) and log the load."""
    names = ", ".join(f"`{c}`" for c in columns)
    where = f"{SOURCE_MONTH} = {_literal(month)}" if month else "TRUE"
    insert = (f"INSERT INTO {_sql(s, table)} ({names}, {SOURCE_MONTH}) "
              f"SELECT {names}, {_literal(month)} FROM {_sql(s, staging)}" if month else
              f"INSERT INTO {_sql(s, table)} ({names}) SELECT {names} FROM {_sql(s, staging)}")
    log_where = f"{SOURCE_MONTH} = {_literal(month)}" if month else f"{SOURCE_MONTH} IS NULL"
    script = "\n".join([
        "BEGIN TRANSACTION;",
        f"DELETE FROM {_sql(s, table)} WHERE {where};",
        insert + ";",
        f"DELETE FROM {_sql(s, LOAD_LOG)} WHERE table_name = {_literal(table)} AND {log_where};",
        f"INSERT INTO {_sql(s, LOAD_LOG)} ({', '.join(base.LOAD_LOG_SCHEMA.names)}) VALUES "
        f"({', '.join(map(_literal, base.load_log_row(table, month, rows, checksum)[:-1]))}, "
        "CURRENT_TIMESTAMP());",
        "COMMIT TRANSACTION;",
    ])
    client(s).query(script).result()


def _count(s: BigQuerySettings, table: str) -> int:
    return _query(s, f"SELECT count(*) FROM {_sql(s, table)}")[0][0]


def _load_config(schema: pa.Schema, **options: object) -> bigquery.LoadJobConfig:
    """A Parquet load with an explicit schema that replaces the staging table's rows."""
    return bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET, schema=_fields(schema),
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE, **options)


def _hive_options(url: str) -> bigquery.HivePartitioningOptions:
    """The lake's ``year=YYYY/month=MM`` folders as INT64 columns, named as on the emulator."""
    options = bigquery.HivePartitioningOptions()
    options.mode = "CUSTOM"
    options.source_uri_prefix = partition_root(url) + "/{year:INTEGER}/{month:INTEGER}"
    return options


def load_month(service: Service, month: date, source: str, manifest: Manifest,
               s: BigQuerySettings) -> int:
    """Replace the month's rows of ``{service}_tripdata`` with the object at ``source``
    (a ``gs://`` URL)."""
    url = source
    table_name = trips_table(service)
    label = f"{service.name} {month_key(month)}"
    table = ensure_table(s, table_name, DIALECT.trips_schema(service), service.pickup_column,
                         [SOURCE_MONTH])
    ensure_table(s, LOAD_LOG, base.LOAD_LOG_SCHEMA)
    check_parquet(s, url, table)
    staging = f"{table_name}__staging_{month:%Y%m}"
    hive = [pa.field(name, pa.int64()) for name in HIVE_COLUMNS]
    _staging(s, staging, pa.schema([*service.schema, *hive]))
    try:
        job = client(s).load_table_from_uri(url, table_id(s, staging), job_config=_load_config(
            service.schema, hive_partitioning=_hive_options(url)))
        try:
            job.result()
        except api.GoogleAPICallError as e:
            raise base.WarehouseError(f"{label}: BigQuery could not load {url}: "
                                 f"{one_line(e)}") from None
        # Counted by a query: a load job's output_rows is not reliable on every engine.
        staged = _count(s, staging)
        base.check_rows(f"{NAME} staging", service, month, staged, manifest,
                   then="the table was left as it was")
        _swap(s, table_name, service.columns, staging, month, staged, manifest.parquet_sha256)
    finally:
        client(s).delete_table(table_id(s, staging), not_found_ok=True)
    return staged


def load_zones(zones: pa.Table, checksum: str, s: BigQuerySettings) -> None:
    """Replace table ``zones`` with the lookup, in one transaction."""
    ensure_table(s, base.ZONES_TABLE, ZONES.schema)
    ensure_table(s, LOAD_LOG, base.LOAD_LOG_SCHEMA)
    staging = f"{base.ZONES_TABLE}__staging"
    _staging(s, staging, ZONES.schema)
    buffer = io.BytesIO()
    pq.write_table(zones, buffer)
    buffer.seek(0)
    try:
        client(s).load_table_from_file(buffer, table_id(s, staging),
                                      job_config=_load_config(ZONES.schema)).result()
        _swap(s, base.ZONES_TABLE, ZONES.schema.names, staging, None, zones.num_rows, checksum)
    finally:
        client(s).delete_table(table_id(s, staging), not_found_ok=True)


def loaded(table: str, month: date | None,
           s: BigQuerySettings) -> tuple[int, str, int] | None:
    """(rows in the load log, checksum in the load log, rows actually there) or None."""
    if month is not None:
        held = base.held_months(s, table, lambda: _loaded_months(table, s))
        if held is not None:
            return held.get(month)
    where = f"{SOURCE_MONTH} = @month" if month else "TRUE"
    log_where = f"l.{SOURCE_MONTH} = @month" if month else f"l.{SOURCE_MONTH} IS NULL"
    params = [bigquery.ScalarQueryParameter("table_name", "STRING", table)]
    if month:
        params.append(bigquery.ScalarQueryParameter("month", "DATE", month))
    try:
        rows = _query(
            s,
            f"SELECT l.rows, l.checksum, (SELECT count(*) FROM {_sql(s, table)} WHERE {where}) "
            f"FROM {_sql(s, LOAD_LOG)} l WHERE l.table_name = @table_name AND {log_where}", params)
    except (api.NotFound, api.Forbidden):
        # Not loaded as far as these credentials can see; run() names what is missing.
        return None
    return rows[0] if rows else None  # type: ignore[return-value]


def _loaded_months(table: str, s: BigQuerySettings) -> dict[date, base.Loaded]:
    """``loaded`` of every month of ``table`` in one query (empty without the tables)."""
    try:
        rows = _query(
            s,
            f"SELECT l.{SOURCE_MONTH}, l.rows, l.checksum, coalesce(c.n, 0) "
            f"FROM {_sql(s, LOAD_LOG)} l LEFT JOIN (SELECT {SOURCE_MONTH}, count(*) AS n "
            f"FROM {_sql(s, table)} GROUP BY 1) c ON c.{SOURCE_MONTH} = l.{SOURCE_MONTH} "
            f"WHERE l.table_name = @table_name AND l.{SOURCE_MONTH} IS NOT NULL",
            [bigquery.ScalarQueryParameter("table_name", "STRING", table)])
    except (api.NotFound, api.Forbidden):
        return {}
    return {month: (n, checksum, there) for month, n, checksum, there in rows}


def rows_by_month(service: Service, s: BigQuerySettings) -> dict[date, int]:
    """Rows of each source month in ``{service}_tripdata`` (one query; empty without a table)."""
    try:
        rows = _query(s, f"SELECT {SOURCE_MONTH}, count(*) FROM {_sql(s, trips_table(service))} "
                      "GROUP BY 1")
    except api.NotFound:
        return {}
    return dict(rows)  # type: ignore[arg-type]
