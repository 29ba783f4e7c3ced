"""Whether a month's data passes the ``[quality]`` checks: one warning line naming every
check over its threshold, or a failure (``QualityBlocked``) for a blocking one."""

from __future__ import annotations

import logging

from pipeline import config
from pipeline.convert import quality

log = logging.getLogger("luigi-interface")


def check_quality(label: str, counts: quality.Counts, rows: int, *, warn: bool = True) -> None:
    """Fail the month (QualityBlocked) when a blocking check is over its threshold; log one
    warning line naming every other check that is (``warn``: a check ahead of the month's
    own, the conversion while downloading, leaves the warning to ParquetizeMonth)."""
    settings = config.quality()
    findings = quality.enforce(label, counts, rows, settings.thresholds(),
                               settings.blocking_checks())
    if findings and warn:
        log.warning(quality.warning_line(label, findings))
