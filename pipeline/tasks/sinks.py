"""The sinks a month can be loaded into, by the names used in ``[pipeline] sinks``, and
whether a service's month is complete in some of them (``month_completeness``), read from
facts without building a task."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

import luigi

from pipeline import config
from pipeline.core.datasets import SERVICES
from pipeline.core.months import parse_names
from pipeline.core.service import Service
from pipeline.lake.month_facts import month_facts
from pipeline.tasks import upload
from pipeline.tasks.base import MonthTask
from pipeline.tasks.completeness import SinkHolds, complete_in
from pipeline.tasks.load import LoadBigQuery, LoadDuckDB, LoadPostgres, MonthLoad
from pipeline.tasks.storage import lake
from pipeline.tasks.upload import UploadMonth


@dataclass(frozen=True)
class Sink:
    """One place a month can be loaded into: its task, its settings check, its row counts."""

    month_task: type[MonthTask]
    # How many rows it holds per source month of a service, for `taxi-pipeline status`.
    rows_by_month: Callable[[Service], dict[date, int]]
    # Fails before anything is scheduled when the sink is chosen but not set up.
    check_settings: Callable[[], None]
    # Its fact of a month, with its settings read once: it holds the month as the lake's
    # manifest describes it (the one its month task's completeness is judged by,
    # ``completeness.complete_in``).
    holding: Callable[[], SinkHolds]


def _warehouse(task: type[MonthLoad], *also: Callable[[], None]) -> Sink:
    def check() -> None:
        for first in also:
            first()
        task.engine().check_settings(task.warehouse_settings())

    return Sink(task, lambda service: task.engine().rows_by_month(
        service, task.warehouse_settings()), check, task.holding)


SINKS: dict[str, Sink] = {
    "duckdb": _warehouse(LoadDuckDB),
    "postgres": _warehouse(LoadPostgres),
    "gcs": Sink(UploadMonth, upload.rows_by_month, upload.check_settings, UploadMonth.holding),
    # Loads from a bucket: the lake's own, or (a local lake) the gcs sink's copy.
    "bigquery": _warehouse(LoadBigQuery, upload.check_bucket_source),
}


def parse_sinks(text: str) -> tuple[str, ...]:
    """``"duckdb, postgres"`` -> the sink names, each checked for its settings."""
    names = parse_names(text, SINKS, "sink")
    for name in names:
        SINKS[name].check_settings()
    return names


def configured_sinks() -> tuple[str, ...]:
    """``[pipeline] sinks``, each checked for its settings."""
    return parse_sinks(config.pipeline().sinks)


MonthComplete = Callable[[str, date], bool]


def month_completeness(sinks: Iterable[str]) -> MonthComplete:
    """``complete(service, month)``: whether the service's month is complete in every one
    of ``sinks``, as ``IngestMonth(month=month, services=(service,)).complete()`` with those
    sinks judges it, from the same facts its sink tasks judge by (``complete_in``: the
    lake's month whole, and each sink holding it), the lake read once for all sinks and
    no task built. A month before the service began is complete: nothing is asked of it.
    The lake, the source format and each sink's settings are read once, here: luigi reads
    every key of a section again each time the section is asked for (0.1-0.2 ms), and a
    job's plan asks about every month of 17 years."""
    sinks = tuple(sinks)
    the_lake, source = lake(), config.source()
    holding = [SINKS[sink].holding() for sink in sinks]

    def complete(service: str, month: date) -> bool:
        dataset = SERVICES[service]
        if not sinks or not dataset.began(month):
            return True
        facts = month_facts(the_lake, dataset, month, source.format_of(month))
        return all(complete_in(facts, holds) for holds in holding)

    return complete


def month_tasks(sinks: Iterable[str], service: str, month: date) -> list[luigi.Task]:
    return [SINKS[sink].month_task(service=service, month=month) for sink in sinks]
