"""The DuckDB sink: the embedded warehouse file of ``[duckdb] path``.

DuckDB lets one process write a file at a time, so every load declares the Luigi resource
``duckdb`` (limit 1 in luigi.cfg) and the scheduler never runs two at once. The work is in
``pipeline.warehouses.duckdb``, imported only when a task checks or runs.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa

from pipeline.core.datasets import Service
from pipeline.core.manifest import Manifest
from pipeline.tasks.load import MonthLoad, ZonesLoad

RESOURCE = "duckdb"


def loaded(table: str, month: date | None) -> tuple[int, str, int] | None:
    """(rows in the load log, checksum in the load log, rows actually there) or None."""
    from pipeline.warehouses import duckdb as duckdb_load

    return duckdb_load.loaded(table, month)


def load_month(service: Service, month: date, parquet: Path, manifest: Manifest) -> int:
    """Replace the month's rows of ``{service}_tripdata`` with the Parquet file, atomically."""
    from pipeline.warehouses import duckdb as duckdb_load

    return duckdb_load.load_month(service, month, parquet, manifest)


def load_zones(zones: pa.Table, checksum: str) -> None:
    """Replace the zones table with the lookup, in one transaction."""
    from pipeline.warehouses import duckdb as duckdb_load

    duckdb_load.load_zones(zones, checksum)


def rows_by_month(service: Service) -> dict[date, int]:
    """Rows of each source month in ``{service}_tripdata`` (one query; empty without a table)."""
    from pipeline.warehouses import duckdb as duckdb_load

    return duckdb_load.rows_by_month(service)


class LoadDuckDBZones(ZonesLoad):
    """Table ``zones`` in the DuckDB warehouse; complete when it holds the lake's lookup."""

    resources = {RESOURCE: 1}  # noqa: RUF012 (luigi's class attribute)
    loaded = staticmethod(loaded)
    load = staticmethod(load_zones)


class LoadDuckDB(MonthLoad):
    """The month's rows in table ``{service}_tripdata`` of the DuckDB warehouse; complete
    when the load log and the table both hold the manifest's row count for the month."""

    resources = {RESOURCE: 1}  # noqa: RUF012
    warehouse = "DuckDB"
    zones_task = LoadDuckDBZones
    loaded = staticmethod(loaded)
    load = staticmethod(load_month)
