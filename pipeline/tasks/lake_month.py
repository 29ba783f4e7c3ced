"""Where ``pipeline.ops`` imported the lake-side tasks from before they were split by job
(issue 29): only a re-export, so the ops layer keeps working while it is changed in a
parallel branch. New code imports from ``pipeline.tasks.download``,
``pipeline.tasks.parquetize``, ``pipeline.tasks.zones`` and ``pipeline.lake.month_targets``;
this module goes once nothing imports it.
"""

from pipeline.lake.month_targets import source_version
from pipeline.tasks.download import DownloadMonth, RefetchMonth
from pipeline.tasks.parquetize import ParquetizeMonth

__all__ = ["DownloadMonth", "ParquetizeMonth", "RefetchMonth", "source_version"]
