"""What a month's run reports about itself: how long its stages took, and whether its data
passes the ``[quality]`` checks.

The download and the conversion are separate tasks, often separate processes (or runs), so
``DownloadMonth`` leaves its figures in a small record beside the raw file
(``{raw file}.download.json``: seconds, bytes, attempts), which ``ParquetizeMonth`` copies
into the manifest's ``run`` section. The record is best effort: a raw file without one (a
kill between the two renames, a full disk, a file fetched by an older version) only leaves
the download's seconds unknown in the manifest.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pipeline import config
from pipeline.convert import quality
from pipeline.lake.keys import write_text_atomically
from pipeline.source.download import DownloadReport

log = logging.getLogger("luigi-interface")


def download_record(raw: Path) -> Path:
    return raw.with_name(raw.name + ".download.json")


def record_download(raw: Path, seconds: float, report: DownloadReport) -> None:
    """Leave the download's figures beside ``raw``; a failure to do so is logged, not raised."""
    figures = {"seconds": round(seconds, 3), "bytes": report.bytes, "fetched": report.fetched,
               "attempts": report.attempts, "resumed": report.resumed}
    try:
        write_text_atomically(download_record(raw), json.dumps(figures, sort_keys=True) + "\n")
    except OSError as e:
        log.warning("%s: download figures not recorded: %s", raw.name, e)


def download_seconds(raw: Path) -> float | None:
    """The seconds the download of ``raw`` took, when its record says."""
    try:
        seconds = json.loads(download_record(raw).read_text())["seconds"]
        return float(seconds)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_quality(label: str, counts: quality.Counts, rows: int) -> None:
    """Fail the month (QualityBlocked) when a blocking check is over its threshold; log one
    warning line naming every other check that is."""
    settings = config.quality()
    findings = quality.enforce(label, counts, rows, settings.thresholds(),
                               settings.blocking_checks())
    if findings:
        log.warning(quality.warning_line(label, findings))
