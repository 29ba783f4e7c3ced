"""What a backfill or catch-up runs, month by month and why, before it runs it.

Each service's range is clipped to its calendar (the months before it began are outside
the dataset); of the months left, those already complete in every sink (``month_completeness``:
the facts ``IngestMonth``'s tasks judge by) are left out, and each other one is given its
reason in the words of ``taxi-pipeline status`` (not ingested, a stage missing, mismatch).
``--dry-run`` prints this plan; a run submits exactly these months, in chunks of one
service's year, so luigid never holds more than a year's pending tasks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from pipeline.core.datasets import SERVICES
from pipeline.core.months import month_key, month_of, months_between, next_month
from pipeline.ops import status
from pipeline.tasks.flows import Backfill
from pipeline.tasks.sinks import month_completeness
from pipeline.tasks.storage import lake
from pipeline.warehouses.base import asking_about_many_months


@dataclass(frozen=True)
class Planned:
    """A month of a service a job would run, and why (a ``status`` state)."""

    service: str
    month: date
    why: str


def months_to_run(service: str, start: date, end: date, sinks: tuple[str, ...]
                  ) -> list[Planned]:
    """The months from ``start`` to ``end`` (clipped to the service's calendar) that are not
    complete in every sink, each with its state (one status query per sink)."""
    span = SERVICES[service].clip(start, end)
    if span is None:
        return []
    # One listing of the lake each: a month with neither a manifest nor a raw file is not
    # ingested, without asking each month's tasks (a first run over 17 years).
    the_lake = lake()
    held = set(the_lake.manifest_months(SERVICES[service]))
    fetched = set(the_lake.raw_months(SERVICES[service]))
    # The remote warehouses answer every month of a table at once while the plan asks.
    with asking_about_many_months():
        complete = month_completeness(sinks)
        todo = [month for month in months_between(*span)
                if month not in held or not complete(service, month)]
    absent = {month for month in todo if month not in held and month not in fetched}
    asked = [m for m in todo if m not in absent]
    # Nothing to ask (a no-op, or a first run): no sink is counted at all.
    found = status.report(asked, (service,), sinks, check_source=False) if asked else []
    states = {month_of(s.month): s.state for s in found}
    return [Planned(service, month, state if (state := states.get(month)) in status.TO_RUN
                    else status.NOT_INGESTED) for month in todo]


def chunks(planned: list[Planned]) -> list[list[Backfill]]:
    """The months to run, one chunk per year and service, oldest first: a Backfill for each
    run of consecutive months (so a chunk holds exactly the planned months)."""
    by_chunk: dict[tuple[int, str], list[date]] = defaultdict(list)
    order = {name: i for i, name in enumerate(SERVICES)}
    for p in planned:
        by_chunk[(p.month.year, p.service)].append(p.month)
    return [[Backfill(start=run[0], end=run[-1], services=(service,)) for run in _runs(months)]
            for (_, service), months in sorted(by_chunk.items(),
                                               key=lambda kv: (kv[0][0], order[kv[0][1]]))]


def _runs(months: list[date]) -> list[list[date]]:
    """Consecutive months together: [2009-01, 2009-02, 2009-05] -> [[01, 02], [05]]."""
    runs: list[list[date]] = []
    for month in sorted(months):
        if runs and next_month(runs[-1][-1]) == month:
            runs[-1].append(month)
        else:
            runs.append([month])
    return runs


def describe(planned: list[Planned]) -> list[str]:
    """One line per service and reason: ``yellow: not ingested: 2009-01 .. 2012-03, 2012-05
    (40 months)``."""
    by_reason: dict[tuple[str, str], list[date]] = defaultdict(list)
    for p in planned:
        by_reason[(p.service, p.why)].append(p.month)
    return [f"{service}: {why}: {spans(months)} ({len(months)} month"
            f"{'' if len(months) == 1 else 's'})"
            for (service, why), months in by_reason.items()]


def spans(months: list[date]) -> str:
    """``2009-01 .. 2012-03, 2012-05``: consecutive months as ranges."""
    return ", ".join(month_key(r[0]) if len(r) == 1 else f"{month_key(r[0])} .. {month_key(r[-1])}"
                     for r in _runs(months))
