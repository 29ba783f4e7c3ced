"""The BigQuery sink's tasks: a month's rows in ``{project}.{dataset}.{service}_tripdata``
and the zone lookup in ``zones``, loaded from the cloud lake (``bigquery`` implies ``gcs``).
The work is in ``pipeline.warehouses.bigquery``, imported only when a task checks or runs, so
runs without this sink never load the BigQuery client.
"""

from __future__ import annotations

import re
from datetime import date

import luigi
import pyarrow as pa

from pipeline import config
from pipeline.core.datasets import Service
from pipeline.tasks.base import MonthTask
from pipeline.tasks.lake_month import ParquetizeMonth
from pipeline.tasks.load import ZonesLoad, month_target
from pipeline.tasks.publish import SettingsError, UploadMonth
from pipeline.tasks.publish import check_settings as check_gcs_settings
from pipeline.warehouses.base import LoadedTarget, WarehouseError, trips_table

_PROJECT = re.compile(r"^[a-z][a-z0-9.:-]{1,62}[a-z0-9]$")
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")


def check_settings() -> None:
    """Fail before anything is scheduled when the sink is chosen but not set up."""
    check_gcs_settings()  # bigquery implies gcs: it loads from the bucket
    s = config.bigquery()
    if not s.project or not s.dataset:
        raise SettingsError("sink 'bigquery' needs [bigquery] project and dataset "
                            "(see README, Google Cloud)")
    if not _PROJECT.match(s.project):
        raise SettingsError(f"[bigquery] project {s.project!r} is not a Google Cloud project id")
    if not _DATASET.match(s.dataset):
        raise SettingsError(f"[bigquery] dataset {s.dataset!r} is not a BigQuery dataset name "
                            "(letters, digits and underscores)")


def rows_by_month(service: Service) -> dict[date, int]:
    """Rows of each source month in ``{service}_tripdata`` (one query; empty without a table)."""
    from pipeline.warehouses import bigquery as bigquery_load

    return bigquery_load.rows_by_month(service)


def _loaded(table: str, month: date | None) -> tuple[int, str, int] | None:
    from pipeline.warehouses import bigquery as bigquery_load

    return bigquery_load.loaded(table, month)


def _load_zones(zones: pa.Table, checksum: str) -> None:
    from pipeline.warehouses import bigquery as bigquery_load

    bigquery_load.load_zones(zones, checksum)


class LoadBigQueryZones(ZonesLoad):
    """Table ``zones`` in the BigQuery dataset; complete when the load log and the table hold
    the lake's lookup (its rows and checksum)."""

    loaded = staticmethod(_loaded)
    load = staticmethod(_load_zones)


class LoadBigQuery(MonthTask):
    """The month's rows in table ``{project}.{dataset}.{service}_tripdata``, loaded from its
    object in the cloud lake; complete when the load log and a count of the month's rows
    both equal the manifest's."""

    def requires(self) -> dict[str, luigi.Task]:
        return {
            "upload": UploadMonth(service=self.service, month=self.month),
            "zones": LoadBigQueryZones(),
        }

    def output(self) -> LoadedTarget:
        return month_target(_loaded, self.dataset, self.month)

    def run(self) -> None:
        from pipeline.warehouses import bigquery as bigquery_load

        manifest = ParquetizeMonth(service=self.service, month=self.month).output().read()
        if manifest is None:
            raise WarehouseError(f"{self.label}: the manifest is missing")
        url, _ = self.requires()["upload"].urls()
        self.report(f"loading {manifest.rows:,} rows into BigQuery", 0)
        rows = bigquery_load.load_month(self.dataset, self.month, url, manifest)
        table = bigquery_load.table_id(trips_table(self.dataset))
        self.report(f"loaded {rows:,} rows into {table}", 100)
