"""Where ``pipeline.ops`` imported the lake-side tasks from before they were split by job
(issue 29): only a re-export, so the ops layer keeps working while it is changed in a
parallel branch. New code imports from ``pipeline.tasks.download``,
``pipeline.tasks.parquetize``, ``pipeline.tasks.zones``, ``pipeline.lake.month_targets``
and ``pipeline.source.policies``; this module goes once nothing imports it.
"""

from pipeline import config
from pipeline.lake.month_targets import source_version
from pipeline.source import policies
from pipeline.source.policies import RetryPolicy
from pipeline.tasks.download import DownloadMonth, RefetchMonth
from pipeline.tasks.parquetize import ParquetizeMonth

__all__ = ["DownloadMonth", "ParquetizeMonth", "RefetchMonth", "probe_policy", "source_version"]


def probe_policy() -> RetryPolicy:
    """``pipeline.source.policies.probe_policy`` of the ``[source]`` settings."""
    return policies.probe_policy(config.source())
