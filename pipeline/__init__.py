"""NYC taxi month pipeline: download, Parquet, lake and warehouse, one Luigi task per step.

``luigi --module pipeline IngestMonth --month 2021-01`` finds the tasks exported here.
"""

__version__ = "0.1.0"

from pipeline import memory  # noqa: F401, I001 (first: before anything loads pyarrow)
from pipeline import done_elsewhere, logs
from pipeline.bigquery_sink import LoadBigQuery, LoadBigQueryZones
from pipeline.duckdb_sink import LoadDuckDB, LoadDuckDBZones
from pipeline.flows import Backfill, IngestMonth
from pipeline.lake_tasks import DownloadMonth, ParquetizeMonth, Zones
from pipeline.postgres_sink import LoadPostgres, LoadPostgresZones
from pipeline.upload import UploadMonth

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
]
