"""NYC taxi month pipeline: download, Parquet, lake and warehouse, one Luigi task per step.

``luigi --module pipeline IngestMonth --month 2021-01`` finds the tasks exported here.
"""

from pipeline.core import memory  # noqa: F401 (first: before anything loads pyarrow)
from pipeline.core.version import __version__
from pipeline.ops import done_elsewhere, logs
from pipeline.tasks.flows import Backfill, IngestMonth
from pipeline.tasks.lake_month import DownloadMonth, ParquetizeMonth, Zones
from pipeline.tasks.load import (
    LoadBigQuery,
    LoadBigQueryZones,
    LoadDuckDB,
    LoadDuckDBZones,
    LoadPostgres,
    LoadPostgresZones,
)
from pipeline.tasks.publish import UploadMonth

logs.install()
done_elsewhere.install()

__all__ = [
    "Backfill",
    "DownloadMonth",
    "IngestMonth",
    "LoadBigQuery",
    "LoadBigQueryZones",
    "LoadDuckDB",
    "LoadDuckDBZones",
    "LoadPostgres",
    "LoadPostgresZones",
    "ParquetizeMonth",
    "UploadMonth",
    "Zones",
    "__version__",
]
