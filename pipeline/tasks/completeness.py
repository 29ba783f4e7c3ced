"""When a sink holds a month, judged from facts, without building a task: the one
judgement the sink tasks' ``complete()`` (``MonthLoad``, ``UploadMonth``) and the jobs
(``pipeline.tasks.sinks.month_completeness``: catch-up, backfill's plan, refresh) share, so
they cannot disagree.

The month's lake facts come from ``pipeline.lake.month_facts`` with the configured lake and
the month's source format read here, at the task layer's edge; each sink's own fact
(``holds``) is a plain function of those facts and its settings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from pipeline import config
from pipeline.core.service import Service
from pipeline.lake.month_facts import LakeFacts, month_facts
from pipeline.tasks.storage import lake

# A sink's fact of a month: it holds the month as the lake's manifest describes it.
SinkHolds = Callable[[LakeFacts], bool]


def lake_facts(service: Service, month: date, *, check_parquet: bool = True) -> LakeFacts:
    """What the configured lake holds of the month (``LakeFacts``), the source format
    (``[source] kind``) deciding where its raw file is."""
    return month_facts(lake(), service, month, config.source().format_of(month),
                       check_parquet=check_parquet)


def complete_in(facts: LakeFacts, holds: SinkHolds) -> bool:
    """A sink's month is complete: the lake's month is whole (``ParquetizeMonth``'s
    completeness: its manifest describes the Parquet file and was made from the raw file
    there), so a month damaged in the lake after its load is repaired by the next run
    instead of hidden behind it, and the sink holds it. The lake first: it is cheap (a
    stat and a footer), and no warehouse is asked about a month the lake must rebuild."""
    return facts.parquet_complete and holds(facts)
