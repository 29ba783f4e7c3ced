"""The source as the jobs see it: which months it re-published since the lake fetched them,
which is the newest month it publishes, and the last month the pipeline has complete.

Everything here asks the source with HTTP ``HEAD`` requests (``pipeline.ops.facts``:
the URL ``DownloadMonth`` fetches), never downloads; the lake is read through its facts,
without building a month task. A month the source answers "not published" for (404, 410, TLC's 403)
ends a forward probe; any other failure to get an answer is an error, on one line.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

from pipeline import config
from pipeline.core.datasets import SERVICES
from pipeline.core.manifest import SourceIdentity
from pipeline.core.months import month_key, months_between, next_month
from pipeline.lake.month_facts import LakeFacts
from pipeline.lake.month_targets import source_version
from pipeline.ops.facts import lake_facts, published, source_of
from pipeline.source.download import NotPublished
from pipeline.source.policies import probe_policy
from pipeline.tasks.sinks import month_completeness
from pipeline.tasks.storage import lake


@dataclass(frozen=True)
class SourceCheck:
    """A month the lake holds, compared with what the source publishes now."""

    service: str
    month: date
    published: SourceIdentity | None  # None: the source no longer publishes it
    change: str | None  # how it differs from what the manifest recorded; None: it does not

    @property
    def republished(self) -> bool:
        return self.published is not None and self.change is not None

    @property
    def version(self) -> str:
        assert self.published is not None
        return source_version(self.published)

    def describe(self) -> str:
        if self.published is None:
            return "no longer published upstream"
        return f"re-published upstream ({self.change})" if self.change else "unchanged upstream"


def check_source(service: str, month: date, facts: LakeFacts | None = None
                 ) -> SourceCheck | None:
    """The month's source compared with what the lake recorded of it (``facts``, read when
    not given): the manifest's record, else (a conversion that did not finish) the raw
    file's; None when the lake holds neither (nothing to compare)."""
    if facts is None:
        facts = lake_facts(service, month, check_parquet=False)
    recorded = facts.recorded_source
    if recorded is None:
        return None
    try:
        now = published(service, month)
    except NotPublished:
        return SourceCheck(service, month, None, None)
    return SourceCheck(service, month, now, now.change_from(recorded))


def current_month(today: date | None = None) -> date:
    today = today or date.today()
    return date(today.year, today.month, 1)


def is_published(service: str, month: date) -> bool:
    """True when the source publishes the month's file now (a HEAD request)."""
    try:
        published(service, month)
    except NotPublished:
        return False
    return True


# HEAD requests in flight at once while probing months over a year old.
PROBE_BATCH = 12


def newest_published(service: str, first: date, until: date) -> date | None:
    """Probing forward from ``first``: the last month up to ``until`` before the first one
    the source does not publish; None when ``first`` itself is not published. Never asks
    about a month before the service began (the calendar).

    Months over a year old (published, in practice) are probed a year at a time: ``first``
    and each December, all at once; only a year with a month not published is probed month
    by month, to find it (a gap inside an older year whose December is published is not
    seen here: the run then fails that month, on one line). The last year is probed one
    month at a time, so nothing past the first month not published is asked (a 17-year
    history: ~30 requests, not ~200)."""
    first = max(first, SERVICES[service].first_month)
    months = months_between(first, until) if first <= until else []
    recent = date(until.year - 1, until.month, 1)
    older = [m for m in months if m <= recent]
    with ThreadPoolExecutor(max_workers=PROBE_BATCH) as pool:
        newest = _newest_of_older(older, _head_requests(service, older), pool) if older \
            else None
        if older and newest != older[-1]:
            return newest
        for month in (m for m in months if m > recent):
            if not is_published(service, month):
                return newest
            newest = month
    return newest


def _head_requests(service: str, months: list[date]) -> Callable[[date], bool]:
    """``is_published`` for threads: each month's URL and the retry policy are read from
    the settings here, in this thread (luigi's config parser is not safe to share between
    threads); the threads only send the HEAD requests."""
    policy = probe_policy(config.source())
    asks = {month: source_of(service, month) for month in months}

    def ask(month: date) -> bool:
        try:
            asks[month].published(policy)
        except NotPublished:
            return False
        return True

    return ask


def _newest_of_older(older: list[date], ask: Callable[[date], bool],
                     pool: ThreadPoolExecutor) -> date | None:
    """The month before the first of ``older`` not published (None: the first is not), from
    its first month, each December and its last month, then the months of the year that
    holds the first not published."""
    points = sorted({older[0], older[-1], *(m for m in older if m.month == 12)})
    answers = dict(zip(points, pool.map(ask, points), strict=True))
    before = None
    for point in points:
        if not answers[point]:
            span = [m for m in older if (before is None or m > before) and m <= point]
            for month, published in zip(span, pool.map(ask, span), strict=True):
                if not published:
                    return before
                before = month
            return before  # not reached: the point itself was not published
        before = point
    return before


def last_complete_month(service: str, sinks: tuple[str, ...], since: date | None = None,
                        until: date | None = None) -> date | None:
    """The newest month from ``since`` (default: the service's first month) to ``until``
    that the lake holds a manifest for and every one of ``sinks`` holds in full
    (``month_completeness``: what ``IngestMonth`` judges), or None."""
    since = since or SERVICES[service].first_month
    until = until or current_month()
    held = lake().manifest_months(SERVICES[service])  # one listing of the lake
    complete = month_completeness(sinks)
    for month in reversed(held):
        if since <= month <= until and complete(service, month):
            return month
    return None


@dataclass(frozen=True)
class CatchUp:
    """What a catch-up of one service covers: ``first`` .. ``newest``, or nothing."""

    service: str
    last_complete: date | None
    newest: date | None
    first: date
    # What the calendar clipped from the range asked for (one line), if anything.
    clipped: str | None = None

    @property
    def months(self) -> tuple[date, date] | None:
        if self.newest is None or self.newest < self.first:
            return None
        return self.first, self.newest

    def describe(self) -> str:
        done = f"last complete {month_key(self.last_complete)}" if self.last_complete \
            else "none complete yet"
        newest = (f"newest published {month_key(self.newest)}" if self.newest
                  else f"nothing published from {month_key(self.first)}")
        span = self.months
        plan = (f"ingesting {month_key(span[0])} .. {month_key(span[1])}" if span
                else "up to date")
        return f"{self.service}: {done}, {newest}: {plan}"


def plan_catch_up(service: str, start: date | None, sinks: tuple[str, ...],
                  today: date | None = None) -> CatchUp:
    """The months a catch-up of ``service`` covers: from ``start`` (else the month after the
    last one complete in every one of ``sinks``, else the service's first month) to the
    newest month published, found by probing forward from the month after the last
    complete one (or from the later of ``start`` and the service's first month) until a
    month is not published. Months before the service began are never asked about."""
    until = current_month(today)
    began = SERVICES[service].first_month
    begin = max(start or began, began)
    clipped = SERVICES[service].clip_note(start, until) if start else None
    last = last_complete_month(service, sinks, since=begin, until=until)
    probe_from = next_month(last) if last is not None else begin
    newest = newest_published(service, probe_from, until) or last
    first = begin if start is not None or last is None else next_month(last)
    return CatchUp(service, last, newest, first, clipped)
