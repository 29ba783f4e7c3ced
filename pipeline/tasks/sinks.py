"""The sinks a month can be loaded into, by the names used in ``[pipeline] sinks``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

import luigi

from pipeline.core.datasets import Service
from pipeline.core.months import parse_names
from pipeline.tasks import upload
from pipeline.tasks.base import MonthTask
from pipeline.tasks.load import LoadBigQuery, LoadDuckDB, LoadPostgres, MonthLoad
from pipeline.tasks.upload import UploadMonth


@dataclass(frozen=True)
class Sink:
    """One place a month can be loaded into: its task, its settings check, its row counts."""

    month_task: type[MonthTask]
    # How many rows it holds per source month of a service, for `taxi-pipeline status`.
    rows_by_month: Callable[[Service], dict[date, int]]
    # Fails before anything is scheduled when the sink is chosen but not set up.
    check_settings: Callable[[], None]


def _warehouse(task: type[MonthLoad], *also: Callable[[], None]) -> Sink:
    def check() -> None:
        for first in also:
            first()
        task.engine().check_settings(task.warehouse_settings())

    return Sink(task, lambda service: task.engine().rows_by_month(
        service, task.warehouse_settings()), check)


SINKS: dict[str, Sink] = {
    "duckdb": _warehouse(LoadDuckDB),
    "postgres": _warehouse(LoadPostgres),
    "gcs": Sink(UploadMonth, upload.rows_by_month, upload.check_settings),
    # Loads from a bucket: the lake's own, or (a local lake) the gcs sink's copy.
    "bigquery": _warehouse(LoadBigQuery, upload.check_bucket_source),
}


def parse_sinks(text: str) -> tuple[str, ...]:
    """``"duckdb, postgres"`` -> the sink names, each checked for its settings."""
    names = parse_names(text, SINKS, "sink")
    for name in names:
        SINKS[name].check_settings()
    return names


def month_tasks(sinks: Iterable[str], service: str, month: date) -> list[luigi.Task]:
    return [SINKS[sink].month_task(service=service, month=month) for sink in sinks]
