"""The sinks a month can be loaded into, by the names used in ``[pipeline] sinks``, and
whether a service's month is complete in some of them (``month_complete``), read from
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
from pipeline.lake.month_facts import LakeFacts
from pipeline.tasks import upload
from pipeline.tasks.base import MonthTask
from pipeline.tasks.completeness import SinkHolds, complete_in, lake_facts
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
    # Its fact of a month: it holds the month as the lake's manifest describes it (the one
    # its month task's completeness is judged by, ``completeness.complete_in``).
    holds: SinkHolds


def _warehouse(task: type[MonthLoad], *also: Callable[[], None]) -> Sink:
    def check() -> None:
        for first in also:
            first()
        task.engine().check_settings(task.warehouse_settings())

    return Sink(task, lambda service: task.engine().rows_by_month(
        service, task.warehouse_settings()), check, task.holds)


SINKS: dict[str, Sink] = {
    "duckdb": _warehouse(LoadDuckDB),
    "postgres": _warehouse(LoadPostgres),
    "gcs": Sink(UploadMonth, upload.rows_by_month, upload.check_settings, UploadMonth.holds),
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


def month_complete(service: str, month: date, sinks: Iterable[str],
                   facts: LakeFacts | None = None) -> bool:
    """Whether the service's month is complete in every one of ``sinks``, as
    ``IngestMonth(month=month, services=(service,)).complete()`` with those sinks judges it,
    from the same facts its sink tasks judge by (``completeness.complete_in``: the lake's
    month whole, and each sink holding it), read once for all sinks and without building
    a task. A month before the service began is complete: nothing is asked of it.
    ``facts``: the month's lake facts when the caller has read them already."""
    dataset = SERVICES[service]
    sinks = tuple(sinks)
    if not sinks or not dataset.began(month):
        return True
    facts = facts or lake_facts(dataset, month)
    return all(complete_in(facts, SINKS[sink].holds) for sink in sinks)


def month_tasks(sinks: Iterable[str], service: str, month: date) -> list[luigi.Task]:
    return [SINKS[sink].month_task(service=service, month=month) for sink in sinks]
