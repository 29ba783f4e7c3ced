"""NYC taxi month pipeline: download, Parquet, lake and warehouse, one Luigi task per step.

``luigi --module pipeline IngestMonth --month 2021-01`` finds the tasks exported here.
"""

import sys

from pipeline.core import memory  # noqa: F401 (first: before anything loads pyarrow)
from pipeline.core.version import __version__
from pipeline.ops import hooks
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


def _imported_for_itself() -> bool:
    """Whether this import asks for the package itself (``import pipeline``, luigi's
    ``--module pipeline``) rather than only loading it as the parent of a submodule
    (``import pipeline.lake.local``), read from the import machinery's frames: the outermost
    ``_find_and_load`` of this import names what was asked for. Where those frames cannot be
    read (another interpreter), the package counts as imported for itself."""
    asked = None
    frame = sys._getframe(2)  # 1 is this module's body; above it, the import machinery
    while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
        if frame.f_code.co_name == "_find_and_load":
            asked = frame.f_locals.get("name")
        frame = frame.f_back
    return asked is None or asked == __name__


# This module is an entry point: ``luigi --module pipeline IngestMonth ...`` runs the
# pipeline's tasks in luigi's own command line, whose only hook is importing this package.
# So importing the package itself installs the pipeline's changes to luigi, logging and the
# GC (listed in pipeline/ops/hooks.py); importing one of its modules changes nothing.
if _imported_for_itself():
    hooks.install()

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
