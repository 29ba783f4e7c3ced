"""The sinks a month can be published to, by the names used in ``[pipeline] sinks``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

import luigi

from pipeline.core.datasets import Service
from pipeline.core.errors import PipelineError
from pipeline.tasks import bigquery_sink, duckdb_sink, postgres_sink
from pipeline.tasks import publish as upload
from pipeline.tasks.bigquery_sink import LoadBigQuery
from pipeline.tasks.duckdb_sink import LoadDuckDB
from pipeline.tasks.postgres_sink import LoadPostgres
from pipeline.tasks.publish import UploadMonth


@dataclass(frozen=True)
class Sink:
    """One place a month can be published: its task, its settings check, its row counts."""

    month_task: Callable[[str, date], luigi.Task]
    # How many rows it holds per source month of a service, for `taxi-pipeline status`.
    rows_by_month: Callable[[Service], dict[date, int]]
    # Fails before anything is scheduled when the sink is chosen but not set up.
    check_settings: Callable[[], None] = lambda: None


SINKS: dict[str, Sink] = {
    "duckdb": Sink(lambda service, month: LoadDuckDB(service=service, month=month),
                   duckdb_sink.rows_by_month),
    "postgres": Sink(lambda service, month: LoadPostgres(service=service, month=month),
                     postgres_sink.rows_by_month, postgres_sink.check_settings),
    "gcs": Sink(lambda service, month: UploadMonth(service=service, month=month),
                upload.rows_by_month, upload.check_settings),
    # Loads from the bucket, so it requires UploadMonth: bigquery implies gcs.
    "bigquery": Sink(lambda service, month: LoadBigQuery(service=service, month=month),
                     bigquery_sink.rows_by_month, bigquery_sink.check_settings),
}


class UnknownSink(PipelineError, ValueError):
    pass


def parse_sinks(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for name in names:
        if name not in SINKS:
            raise UnknownSink(f"unknown sink {name!r}: expected any of {', '.join(SINKS)}")
    if not names:
        raise UnknownSink(f"no sink configured: expected any of {', '.join(SINKS)}")
    for name in names:
        SINKS[name].check_settings()
    return names


def month_tasks(sinks: Iterable[str], service: str, month: date) -> list[luigi.Task]:
    return [SINKS[sink].month_task(service, month) for sink in sinks]
