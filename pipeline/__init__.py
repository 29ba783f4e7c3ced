"""NYC taxi month pipeline: download, Parquet, lake and warehouse, one Luigi task per step.

``luigi --module pipeline IngestMonth --month 2021-01`` finds the tasks exported here.
"""

import gc

from pipeline.core import memory  # noqa: F401 (first: before anything loads pyarrow)
from pipeline.core.version import __version__
from pipeline.ops import done_elsewhere, failed_checks, logs, scheduler
from pipeline.tasks import lineage
from pipeline.tasks.download import DownloadMonth
from pipeline.tasks.flows import Backfill, IngestMonth
from pipeline.tasks.load import (
    LoadBigQuery,
    LoadBigQueryZones,
    LoadDuckDB,
    LoadDuckDBZones,
    LoadPostgres,
    LoadPostgresZones,
)
from pipeline.tasks.parquetize import ParquetizeMonth
from pipeline.tasks.upload import UploadMonth
from pipeline.tasks.zones import Zones

logs.install()
done_elsewhere.install()
lineage.install()
failed_checks.install()
scheduler.install()

# What the imports above made (pyarrow, pandas, luigi: some 80 thousand objects the
# garbage collector tracks) lives as long as the process. Frozen, it is left out of every
# full collection: those at exit took a process that imported the package 0.18 s to end,
# 0.03 s frozen, and a forked task process does not touch those pages to scan them.
gc.freeze()

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
