"""The lake the tasks read and write, built from the settings: ``[lake] root`` and
``scratch``, ``[gcs] chunk_mib`` and ``timeout``. Configuration is read here, in the task
layer, and handed to the lake layer (``pipeline.lake``), which reads none itself.

Every task output, input and staged file goes through ``lake()``: one target type whatever
the root, so no task branches on the kind of storage.
"""

from __future__ import annotations

from pipeline import config
from pipeline.config_check import check_settings
from pipeline.core.errors import SettingsError
from pipeline.lake.gcs_names import GCSSettings
from pipeline.lake.root import Lake, parse_root

_lakes: dict[tuple[str, str, float, float], Lake] = {}


def gcs_settings() -> GCSSettings:
    """``[gcs] chunk_mib`` and ``timeout``; a value GCS cannot take is refused (SettingsError)."""
    s = config.gcs()
    return GCSSettings(chunk_mib=s.chunk_mib, timeout=s.timeout)


def lake() -> Lake:
    """The configured lake; a root or scratch setting it cannot honour is refused with one
    line (SettingsError), before anything runs when called from a task's constructor."""
    check_settings()  # luigi.cfg as a whole, once: also for `luigi --module pipeline ...`
    s = config.lake()
    settings = gcs_settings()
    key = (s.root, s.scratch, settings.chunk_mib, settings.timeout)
    if key not in _lakes:
        scratch = s.scratch.strip()
        if scratch and parse_root(scratch, "[lake] scratch").in_bucket:
            raise SettingsError(f"[lake] scratch {scratch!r} must be a local directory")
        _lakes[key] = Lake(s.root, scratch=scratch or None, settings=settings)
    return _lakes[key]
