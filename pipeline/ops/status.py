"""Which months are done: months x services x stages (raw, parquet, each sink), with row
counts from the manifests and the warehouses, what the source says, and every
inconsistency named.

Row counts come from one query per sink and service, not one per month. The source is
asked (an HTTP HEAD) about months the lake does not have, to tell "not published" from
"not downloaded", and with ``compare_source`` about the months it has, to find the ones
re-published upstream since they were fetched. What the source says is added to what the
lake and the sinks say, never put in its place: a warehouse still holding a month whose
lake files are gone says so. Every lake path comes from the tasks' outputs (the lake's key
functions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date

from pipeline.core.datasets import SERVICES
from pipeline.core.errors import PipelineError
from pipeline.core.months import month_key, months_between
from pipeline.core.text import one_line
from pipeline.ops.upstream import check_source
from pipeline.source.download import NotPublished
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
    # Source columns the registry does not know, kept in the raw file only (manifest).
    new_columns: list[str] = field(default_factory=list)
    # What the source said when asked (a HEAD request); None when it was not asked.
    source: str | None = None

    @property
    def complete(self) -> bool:
        return self.state == "complete"


def report(months: list[date], services: tuple[str, ...], sinks: tuple[str, ...],
           check_source: bool = True, compare_source: bool = False) -> list[MonthStatus]:
    """The status of every month x service; ``check_source`` asks the source about months
    the lake lacks, ``compare_source`` about the months it holds (re-published ones)."""
    counts = {(sink, service): SINKS[sink].rows_by_month(SERVICES[service])
              for sink in sinks for service in services}
    return [_month_status(month, service, sinks, counts, check_source, compare_source)
            for month in months for service in services]


def _month_status(month: date, service: str, sinks: tuple[str, ...],
                  counts: dict[tuple[str, str], dict[date, int]], ask_missing: bool,
                  compare: bool) -> MonthStatus:
    parquetize = ParquetizeMonth(service=service, month=month)
    download = parquetize.requires()
    manifest = parquetize.output().valid()
    status = MonthStatus(
        month=month_key(month), service=service,
        raw_bytes=download.output().size(),
        parquet_rows=manifest.rows if manifest else None,
        sinks={sink: counts[(sink, service)].get(month) for sink in sinks},
        new_columns=[c.describe() for c in manifest.new_columns] if manifest else [],
    )
    problems = []
    absent = manifest is None and status.raw_bytes is None
    if absent:
        problems.append(_missing_month(status, download) if ask_missing else "not downloaded")
    elif manifest is None:
        problems.append("parquet missing")
    elif not parquetize.made_from_raw(manifest):
        problems.append("parquet older than the raw file (fetched again: run refresh)")
    for sink, rows in status.sinks.items():
        if rows is None:
            if not absent:  # a month the lake lacks is in no sink: that goes without saying
                problems.append(f"{sink} missing")
        elif manifest is not None and rows != manifest.rows:
            problems.append(f"MISMATCH {sink} {rows:,} != manifest {manifest.rows:,}")
        elif manifest is None:
            problems.append(f"{sink} has {rows:,} rows without a manifest")
    if compare and manifest is not None:
        try:
            checked = check_source(service, month)
        except PipelineError as e:
            status.source = f"unreachable: {one_line(e)}"
            problems.append("source not checked (unreachable)")
        else:
            if checked is not None:
                status.source = checked.describe()
                if checked.republished:
                    problems.append(status.source)
    status.state = "; ".join(problems) or "complete"
    return status


def _missing_month(status: MonthStatus, download: DownloadMonth) -> str:
    """Why the lake lacks a month, as the source tells (a HEAD request)."""
    try:
        download.published()
    except NotPublished:
        status.source = "not published"
        return "not published"
    except PipelineError as e:
        status.source = f"unreachable: {one_line(e)}"
        return "not downloaded (source unreachable)"
    status.source = "published"
    return "not downloaded"


def lake_months(services: tuple[str, ...]) -> list[date]:
    """Every month from the first to the last one the lake holds for ``services``: a raw
    file or a manifest (from one listing of each per service)."""
    the_lake = lake()
    found = [month for service in services
             for month in (*the_lake.raw_months(SERVICES[service]),
                           *the_lake.manifest_months(SERVICES[service]))]
    return months_between(min(found), max(found)) if found else []


def as_records(statuses: list[MonthStatus]) -> list[dict[str, object]]:
    return [asdict(s) | {"complete": s.complete} for s in statuses]
