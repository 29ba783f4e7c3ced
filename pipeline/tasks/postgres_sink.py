"""The PostgreSQL sink: a month's rows in ``{service}_tripdata`` of the database of
``[postgres] url``, and the zone lookup in ``zones``. Loads of different months and the
DuckDB branch run in parallel. The work is in ``pipeline.warehouses.postgres``, imported only when
a task checks or runs, so runs without this sink never load the PostgreSQL driver.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa

from pipeline.core.datasets import Service
from pipeline.core.manifest import Manifest
from pipeline.tasks.load import MonthLoad, ZonesLoad


def check_settings() -> None:
    """Fail before anything is scheduled when the postgres sink is chosen but not set up."""
    from pipeline.warehouses import postgres as postgres_load

    postgres_load.server()


def loaded(table: str, month: date | None) -> tuple[int, str, int] | None:
    """(rows in the load log, checksum in the load log, rows actually there) or None."""
    from pipeline.warehouses import postgres as postgres_load

    return postgres_load.loaded(table, month)


def load_month(service: Service, month: date, parquet: Path, manifest: Manifest) -> int:
    """Replace the month's rows of ``{service}_tripdata`` with the Parquet file, atomically."""
    from pipeline.warehouses import postgres as postgres_load

    return postgres_load.load_month(service, month, parquet, manifest)


def load_zones(zones: pa.Table, checksum: str) -> None:
    """Replace the zones table with the lookup, in one transaction."""
    from pipeline.warehouses import postgres as postgres_load

    postgres_load.load_zones(zones, checksum)


def rows_by_month(service: Service) -> dict[date, int]:
    """Rows of each source month in ``{service}_tripdata`` (one query; empty without a table)."""
    from pipeline.warehouses import postgres as postgres_load

    return postgres_load.rows_by_month(service)


class LoadPostgresZones(ZonesLoad):
    """Table ``zones`` in PostgreSQL; complete when the load log and the table hold the
    lake's lookup (its rows and checksum)."""

    loaded = staticmethod(loaded)
    load = staticmethod(load_zones)


class LoadPostgres(MonthLoad):
    """The month's rows in table ``{service}_tripdata`` of PostgreSQL; complete when the load
    log and the table both hold the manifest's row count for the month."""

    warehouse = "PostgreSQL"
    zones_task = LoadPostgresZones
    loaded = staticmethod(loaded)
    load = staticmethod(load_month)
