"""Which months are done: months x services x stages (raw, parquet, each sink), with row
counts from the manifests and the warehouses, and every inconsistency named.

Row counts come from one query per sink and service, not one per month; the source is
asked (an HTTP HEAD) only about months the lake does not have, to tell "not published"
from "not yet downloaded".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date

import requests

from pipeline import config
from pipeline.core.datasets import SERVICES
from pipeline.core.months import month_key, months_between
from pipeline.tasks.lake_month import DownloadMonth, ParquetizeMonth
from pipeline.tasks.sinks import SINKS
from pipeline.tasks.storage import lake


@dataclass
class MonthStatus:
    month: str
    service: str
    raw_bytes: int | None
    parquet_rows: int | None
    sinks: dict[str, int | None] = field(default_factory=dict)
    state: str = ""

    @property
    def complete(self) -> bool:
        return self.state == "complete"


def report(months: list[date], services: tuple[str, ...], sinks: tuple[str, ...],
           check_source: bool = True) -> list[MonthStatus]:
    counts = {(sink, service): SINKS[sink].rows_by_month(SERVICES[service])
              for sink in sinks for service in services}
    statuses = []
    for month in months:
        for service in services:
            status = _month_status(month, service, sinks, counts)
            if status.raw_bytes is None and status.parquet_rows is None and check_source:
                status.state = _source_state(DownloadMonth(service=service, month=month).url)
            statuses.append(status)
    return statuses


def _month_status(month: date, service: str, sinks: tuple[str, ...],
                  counts: dict[tuple[str, str], dict[date, int]]) -> MonthStatus:
    raw = DownloadMonth(service=service, month=month).output()
    parquet = ParquetizeMonth(service=service, month=month).output()
    manifest = parquet.valid()
    status = MonthStatus(
        month=month_key(month), service=service,
        raw_bytes=raw.size(), parquet_rows=manifest.rows if manifest else None,
        sinks={sink: counts[(sink, service)].get(month) for sink in sinks},
    )
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
    found = [month for service in services for month in lake().raw_months(SERVICES[service])]
    return months_between(min(found), max(found)) if found else []


def as_records(statuses: list[MonthStatus]) -> list[dict[str, object]]:
    return [asdict(s) | {"complete": s.complete} for s in statuses]
