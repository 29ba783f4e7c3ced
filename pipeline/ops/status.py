"""Which months are done: months x services x stages (raw, parquet, each sink), with row
counts from the manifests and the warehouses, and every inconsistency named.

Row counts come from one query per sink and service, not one per month; the source is
asked (an HTTP HEAD) only about months the lake does not have, to tell "not published"
from "not yet downloaded". Each month's quality counts come from its manifest, weighed
against today's ``[quality]`` thresholds.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import date

import requests

from pipeline import config
from pipeline.convert.quality import judge
from pipeline.core.datasets import SERVICES
from pipeline.core.months import month_key, months_between
from pipeline.tasks.lake_month import DownloadMonth, ParquetizeMonth
from pipeline.tasks.sinks import SINKS


@dataclass
class MonthStatus:
    month: str
    service: str
    raw_bytes: int | None
    parquet_rows: int | None
    sinks: dict[str, int | None] = field(default_factory=dict)
    state: str = ""
    # Rows per quality check (from the manifest; None without one), and the checks above
    # their [quality] threshold.
    quality: dict[str, int | None] | None = None
    quality_warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.state == "complete"


def report(months: list[date], services: tuple[str, ...], sinks: tuple[str, ...],
           check_source: bool = True) -> list[MonthStatus]:
    counts = {(sink, service): SINKS[sink].rows_by_month(SERVICES[service])
              for sink in sinks for service in services}
    thresholds = config.quality().thresholds()
    statuses = []
    for month in months:
        for service in services:
            status = _month_status(month, service, sinks, counts, thresholds)
            if status.raw_bytes is None and status.parquet_rows is None and check_source:
                status.state = _source_state(DownloadMonth(service=service, month=month).url)
            statuses.append(status)
    return statuses


def _month_status(month: date, service: str, sinks: tuple[str, ...],
                  counts: dict[tuple[str, str], dict[date, int]],
                  thresholds: dict[str, float]) -> MonthStatus:
    raw = DownloadMonth(service=service, month=month).output()
    parquet = ParquetizeMonth(service=service, month=month).output()
    manifest = parquet.valid()
    status = MonthStatus(
        month=month_key(month), service=service,
        raw_bytes=_size(raw.path), parquet_rows=manifest.rows if manifest else None,
        sinks={sink: counts[(sink, service)].get(month) for sink in sinks},
    )
    if manifest is not None and manifest.quality:
        status.quality = dict(manifest.quality)
        status.quality_warnings = [f.check for f in judge(manifest.quality, manifest.rows,
                                                          thresholds)]
    problems = []
    if manifest is None:
        problems.append("parquet missing" if status.raw_bytes else "not downloaded")
    for sink, rows in status.sinks.items():
        if rows is None:
            problems.append(f"{sink} missing")
        elif manifest is not None and rows != manifest.rows:
            problems.append(f"MISMATCH {sink} {rows:,} != manifest {manifest.rows:,}")
        elif manifest is None:
            problems.append(f"{sink} has {rows:,} rows without a manifest")
    status.state = "; ".join(problems) or "complete"
    return status


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _source_state(url: str) -> str:
    try:
        answer = requests.head(url, allow_redirects=True,
                               timeout=min(10.0, config.source().timeout))
    except requests.RequestException:
        return "not downloaded (source unreachable)"
    if answer.status_code in (404, 410):
        return "not published"
    return "not downloaded" if answer.ok else f"not downloaded (source: HTTP {answer.status_code})"


def lake_months(services: tuple[str, ...]) -> list[date]:
    """Every month from the first to the last one the lake holds for ``services``."""
    root = config.lake().path()
    found = []
    for service in services:
        for path in root.glob(f"raw/{service}/{service}_tripdata_*"):
            if not path.name.endswith((".csv.gz", ".parquet")):
                continue
            stamp = path.name.removeprefix(f"{service}_tripdata_")
            try:
                found.append(date(int(stamp[:4]), int(stamp[5:7]), 1))
            except ValueError:
                continue
    return months_between(min(found), max(found)) if found else []


def as_records(statuses: list[MonthStatus]) -> list[dict[str, object]]:
    return [asdict(s) | {"complete": s.complete} for s in statuses]


def quality_cell(record: dict) -> str:
    """The status table's quality column: ``-`` (not counted), ``ok`` or the warnings."""
    if record["quality"] is None:
        return "-"
    warnings = record["quality_warnings"]
    return "warn: " + ",".join(warnings) if warnings else "ok"


def as_table(records: list[dict]) -> str:
    """The status table as text: a header, one line per month and service; numbers right-
    aligned, the state (free text) last and left-aligned."""
    sinks = list(records[0]["sinks"]) if records else []
    header = ["month", "service", "raw MB", "parquet rows",
              *(f"{sink} rows" for sink in sinks), "quality", "state"]
    rows = [[r["month"], r["service"],
             "-" if r["raw_bytes"] is None else f"{r['raw_bytes'] / 1e6:,.1f}",
             _count(r["parquet_rows"]), *(_count(r["sinks"][sink]) for sink in sinks),
             quality_cell(r), r["state"]] for r in records]
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]
    lines = []
    for line in [header, *rows]:
        cells = [str(cell).ljust(width) if i in (0, 1, len(header) - 2) or i == len(header) - 1
                 else str(cell).rjust(width)
                 for i, (cell, width) in enumerate(zip(line, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _count(rows: object) -> str:
    return "-" if rows is None else f"{rows:,}"
