"""The sinks a month can be published to, by the names used in ``[pipeline] sinks``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date

import luigi

from pipeline import bigquery_sink, duckdb_sink, postgres_sink, upload
from pipeline.bigquery_sink import LoadBigQuery
from pipeline.datasets import Service
from pipeline.duckdb_sink import LoadDuckDB
from pipeline.errors import PipelineError
from pipeline.postgres_sink import LoadPostgres
from pipeline.upload import UploadMonth

MonthSink = Callable[[str, date], luigi.Task]

SINKS: dict[str, MonthSink] = {
    "duckdb": lambda service, month: LoadDuckDB(service=service, month=month),
    "postgres": lambda service, month: LoadPostgres(service=service, month=month),
    "gcs": lambda service, month: UploadMonth(service=service, month=month),
    # Loads from the bucket, so it requires UploadMonth: bigquery implies gcs.
    "bigquery": lambda service, month: LoadBigQuery(service=service, month=month),
}
# Settings a sink needs, checked when it is chosen, before anything is scheduled.
SETTINGS_CHECKS: dict[str, Callable[[], None]] = {
    "postgres": postgres_sink.check_settings,
    "gcs": upload.check_settings,
    "bigquery": bigquery_sink.check_settings,
}
# How many rows each sink holds per source month of a service, for `taxi-pipeline status`.
ROWS_BY_MONTH: dict[str, Callable[[Service], dict[date, int]]] = {
    "duckdb": duckdb_sink.rows_by_month,
    "postgres": postgres_sink.rows_by_month,
    "gcs": upload.rows_by_month,
    "bigquery": bigquery_sink.rows_by_month,
}
# Named in the design, built by later work: naming one is a clear error, not a silent skip.
PLANNED: tuple[str, ...] = ()


class UnknownSink(PipelineError, ValueError):
    pass


def parse_sinks(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for name in names:
        if name in PLANNED and name not in SINKS:
            raise UnknownSink(
                f"sink {name!r} is not available in this version (available: {', '.join(SINKS)})"
            )
        if name not in SINKS:
            raise UnknownSink(f"unknown sink {name!r}: expected any of {', '.join(SINKS)}")
    if not names:
        raise UnknownSink(f"no sink configured: expected any of {', '.join(SINKS)}")
    for name in names:
        if name in SETTINGS_CHECKS:
            SETTINGS_CHECKS[name]()
    return names


def month_tasks(sinks: Iterable[str], service: str, month: date) -> list[luigi.Task]:
    return [SINKS[sink](service, month) for sink in sinks]
