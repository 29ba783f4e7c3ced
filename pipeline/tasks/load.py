"""Loading the warehouses: one task shape for a month and one for the zone lookup, used by
every engine (DuckDB, PostgreSQL, BigQuery).

A load task names its engine (a module of ``pipeline.warehouses``, imported only when the
task checks or runs, so a run without that sink never loads its driver) and where it reads
the month from. Both tasks are complete when the engine's load log and its table hold what
the lake says: the manifest's rows and Parquet checksum for a month, the lookup's rows and
checksum for the zones.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import luigi
import pyarrow as pa

from pipeline import config
from pipeline.core.datasets import SERVICES
from pipeline.core.manifest import Manifest
from pipeline.lake.month_facts import LakeFacts
from pipeline.lake.month_targets import ManifestTarget
from pipeline.lake.targets import ChecksumMismatch
from pipeline.tasks.base import MonthTask, PipelineTask
from pipeline.tasks.completeness import SinkHolds, complete_in, lake_facts
from pipeline.tasks.parquetize import ParquetizeMonth
from pipeline.tasks.upload import bucket_month, bucket_parquet_url
from pipeline.tasks.zones import Zones
from pipeline.warehouses.base import (
    ZONES_TABLE,
    LoadedTarget,
    Warehouse,
    WarehouseError,
    month_loaded,
    read_zones,
    trips_table,
)
from pipeline.warehouses.settings import BigQuerySettings, DuckDBSettings, PostgresSettings

# Luigi's own logger: its lines reach the console of every run.
log = logging.getLogger("luigi-interface")


# The engines, each imported on first use (their drivers are heavy: DuckDB, psycopg, the
# BigQuery client).
def duckdb() -> Warehouse:
    from pipeline.warehouses import duckdb as engine

    return engine


def postgres() -> Warehouse:
    from pipeline.warehouses import postgres as engine

    return engine


def bigquery() -> Warehouse:
    from pipeline.warehouses import bigquery as engine

    return engine


# Each engine's settings, read here at the task's edge and passed down.
def duckdb_settings() -> DuckDBSettings:
    s = config.duckdb()
    return DuckDBSettings(path=s.path, memory_limit=s.memory_limit, threads=s.threads,
                          lock_timeout=s.lock_timeout, schema=s.schema)


def postgres_settings() -> PostgresSettings:
    s = config.postgres()
    return PostgresSettings(url=s.url, connect_timeout=s.connect_timeout, schema=s.schema)


def bigquery_settings() -> BigQuerySettings:
    s = config.bigquery()
    return BigQuerySettings(project=s.project, dataset=s.dataset, location=s.location,
                            endpoint=s.endpoint)


def duckdb_table(settings: DuckDBSettings, table: str) -> tuple[str, str]:
    """OpenLineage's namespace and name of a DuckDB table: the file, and
    ``{database}.{schema}.{table}`` (the database is named after the file)."""
    path = Path(settings.path).absolute()
    return f"duckdb://{path}", f"{path.stem}.{settings.schema}.{table}"


def postgres_table(settings: PostgresSettings, table: str) -> tuple[str, str]:
    """``postgres://{host}:{port}`` and ``{database}.{schema}.{table}``."""
    from pipeline.warehouses import postgres as engine

    server = engine.server(settings)
    return (f"postgres://{server.host}:{server.port}",
            f"{server.dbname}.{settings.schema}.{table}")


def bigquery_table(settings: BigQuerySettings, table: str) -> tuple[str, str]:
    """``bigquery`` and ``{project}.{dataset}.{table}``."""
    return "bigquery", f"{settings.project}.{settings.dataset}.{table}"


@dataclass(frozen=True)
class Engine:
    """A warehouse engine as the load tasks use it: its module (imported on first use), its
    settings from luigi.cfg, and how lineage names its tables."""

    module: Callable[[], Warehouse]
    settings: Callable[[], Any]
    lineage_table: Callable[[Any, str], tuple[str, str]]


DUCKDB = Engine(duckdb, duckdb_settings, duckdb_table)
POSTGRES = Engine(postgres, postgres_settings, postgres_table)
BIGQUERY = Engine(bigquery, bigquery_settings, bigquery_table)


class WarehouseTables:
    """A load task's engine, and how its tables are named for lineage
    (``pipeline.tasks.lineage``)."""

    warehouse: ClassVar[Engine]

    @classmethod
    def engine(cls) -> Warehouse:
        return cls.warehouse.module()

    @classmethod
    def warehouse_settings(cls) -> Any:
        """The engine's settings, read from luigi.cfg here, at the task's edge."""
        return cls.warehouse.settings()

    def table_dataset(self, table: str) -> tuple[str, str]:
        """The table's OpenLineage namespace and name."""
        return self.warehouse.lineage_table(self.warehouse_settings(), table)

    def table_columns(self, schema: pa.Schema) -> list[tuple[str, str]]:
        """The registry's columns as the engine names and types them."""
        return self.engine().DIALECT.columns(schema)  # type: ignore[attr-defined]


class ZonesLoad(WarehouseTables, PipelineTask):
    """Table ``zones`` in a warehouse; complete when it holds the lake's lookup (its rows
    and checksum)."""

    def requires(self) -> Zones:
        return Zones()

    def output(self) -> LoadedTarget:
        return LoadedTarget(
            lambda: self.engine().loaded(ZONES_TABLE, None, self.warehouse_settings()),
            self._expected, what=f"table {ZONES_TABLE} loaded by {self.task_family}")

    def _expected(self) -> tuple[int, str] | None:
        if not self.input().exists():
            return None
        with self.input().local_file() as path:
            table, checksum = read_zones(path)
        return table.num_rows, checksum

    def run(self) -> None:
        with self.input().local_file() as path:
            self.engine().load_zones(*read_zones(path), self.warehouse_settings())


class MonthLoad(WarehouseTables, MonthTask):
    """The month's rows in table ``{service}_tripdata`` of a warehouse; complete when the
    load log and the table both hold the manifest's rows and Parquet checksum, and the
    lake's month is whole (``LakeFacts.parquet_complete``, ``ParquetizeMonth``'s
    completeness: its manifest describes the Parquet file's size and footer and was made
    from the raw file there), so a month damaged in the lake after its load is repaired by
    the next run instead of hidden behind it (``pipeline.tasks.completeness``, the facts the
    jobs read too). The load reads only the file the manifest describes (its sha256, hashed
    alongside the load's own read, checked before the load commits)."""

    zones_task: ClassVar[type[ZonesLoad]]

    def requires(self) -> dict[str, luigi.Task]:
        return {"month": ParquetizeMonth(service=self.service, month=self.month),
                "zones": self.zones_task()}

    def manifest_target(self) -> ManifestTarget:
        return ParquetizeMonth(service=self.service, month=self.month).output()

    @contextlib.contextmanager
    def month_source(self, manifest: Manifest) -> Iterator[str]:
        """Where the engine reads the month from while the block runs: the lake's Parquet
        file as a local path (a bucket lake's object staged in scratch, checked against the
        manifest's sha256, removed after) — the one staging point of every load."""
        with self.manifest_target().parquet.local_file(sha256=manifest.parquet_sha256) as path:
            yield str(path)

    def output(self) -> LoadedTarget:
        manifest = self.manifest_target()
        table = trips_table(self.dataset)
        return LoadedTarget(
            lambda: self.engine().loaded(table, self.month, self.warehouse_settings()),
            lambda: (m.rows, m.parquet_sha256) if (m := manifest.read()) else None,
            what=f"{self.label} in table {table}, loaded by {self.task_family}",
        )

    @classmethod
    def holding(cls) -> SinkHolds:
        """The warehouse's fact of a month: its load log and table hold the rows and
        Parquet checksum of the lake's manifest (the ``LakeFacts`` it is given), with the
        engine's settings read once here. No task is built: the jobs ask it too, of many
        months (``pipeline.tasks.sinks.month_completeness``)."""
        engine, settings = cls.engine(), cls.warehouse_settings()
        return lambda facts: month_loaded(engine, SERVICES[facts.service], facts.month,
                                          facts.manifest, settings)

    @classmethod
    def holds(cls, facts: LakeFacts) -> bool:
        """The warehouse's fact of the month (``holding``)."""
        return cls.holding()(facts)

    def complete(self) -> bool:
        return complete_in(lake_facts(self.dataset, self.month), self.holds)

    def run(self) -> None:
        engine = self.engine()
        manifest = self.manifest_target().read()
        if manifest is None:
            raise WarehouseError(f"{self.label}: the month's manifest is missing from the lake; "
                                 "re-run to rebuild it")
        try:
            rows = self._load(engine, manifest)
        except ChecksumMismatch as e:
            # The lake's Parquet is not the file its manifest describes: converted again
            # from the raw file (when that is still the file the manifest was made from).
            log.warning("%s: %s; converting the month again from its raw file", self.label, e)
            rows = self._load(engine, ParquetizeMonth(service=self.service,
                                                      month=self.month).rebuild(str(e)))
        self.report(f"loaded {rows:,} rows into {engine.NAME} {trips_table(self.dataset)}", 100)

    def _load(self, engine: Warehouse, manifest: Manifest) -> int:
        self.report(f"loading {manifest.rows:,} rows into {engine.NAME}", 0)
        with self.month_source(manifest) as source:
            return engine.load_month(self.dataset, self.month, source, manifest,
                                     self.warehouse_settings())


class LoadDuckDBZones(ZonesLoad):
    """Table ``zones`` in the DuckDB warehouse; complete when it holds the lake's lookup."""

    # DuckDB lets one process write a file at a time: luigi.cfg limits this resource to 1.
    resources: ClassVar[dict[str, int]] = {"duckdb": 1}
    warehouse = DUCKDB


class LoadDuckDB(MonthLoad):
    """The month's rows in table ``{service}_tripdata`` of the DuckDB warehouse file
    (``[duckdb] path``); complete when its load log and table hold the manifest's rows."""

    resources: ClassVar[dict[str, int]] = {"duckdb": 1}
    warehouse = DUCKDB
    zones_task = LoadDuckDBZones


class LoadPostgresZones(ZonesLoad):
    """Table ``zones`` in PostgreSQL; complete when it holds the lake's lookup."""

    warehouse = POSTGRES


class LoadPostgres(MonthLoad):
    """The month's rows in table ``{service}_tripdata`` of the ``[postgres] url`` database;
    complete when its load log and table hold the manifest's rows. Loads of different
    months, and the DuckDB branch, run in parallel."""

    warehouse = POSTGRES
    zones_task = LoadPostgresZones


class LoadBigQueryZones(ZonesLoad):
    """Table ``zones`` in the BigQuery dataset; complete when it holds the lake's lookup."""

    warehouse = BIGQUERY


class LoadBigQuery(MonthLoad):
    """The month's rows in ``{project}.{dataset}.{service}_tripdata``, loaded from the
    month's object in a bucket: the lake's own when the lake is a bucket, else the gcs
    sink's copy (``bigquery`` then implies ``gcs``); complete when its load log and a count
    of the month's rows equal the manifest's."""

    warehouse = BIGQUERY
    zones_task = LoadBigQueryZones

    def requires(self) -> dict[str, luigi.Task]:
        return {"month": bucket_month(self.service, self.month), "zones": self.zones_task()}

    @contextlib.contextmanager
    def month_source(self, manifest: Manifest) -> Iterator[str]:
        yield bucket_parquet_url(self.service, self.month)
