"""The sub-commands that ingest: ``ingest`` (one month), ``backfill`` (a range, or up to
``latest``), ``catch-up`` (up to the newest month published, for cron, with its freshness
alert) and ``refresh`` (the months the source re-published, end to end). Each plans with
``pipeline.ops.plan`` and ``pipeline.ops.upstream`` and runs through ``pipeline.ops.jobs``;
the exit codes are luigi.cfg's ``[retcode]`` ones (``pipeline.ops.cli``'s docstring).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from typing import Any

import luigi

from pipeline.core.errors import PipelineError
from pipeline.core.months import months_between
from pipeline.ops.job_args import LATEST, bad_input, services_of, source_failed, verbose
from pipeline.ops.status_job import alert_stale


def ingest(args: argparse.Namespace) -> int:
    from pipeline.ops import jobs
    from pipeline.tasks.flows import IngestMonth

    try:
        task = IngestMonth(month=args.month, services=args.services or ())
    except PipelineError as e:
        return bad_input(e)
    return jobs.run([task], local_scheduler=args.local_scheduler, workers=args.workers,
                    verbose=verbose(args))


def backfill(args: argparse.Namespace) -> int:
    from pipeline import config
    from pipeline.core.datasets import SERVICES
    from pipeline.ops.plan import months_to_run
    from pipeline.tasks.flows import Backfill
    from pipeline.tasks.sinks import parse_sinks

    if args.end == LATEST:
        return _catch_up(args, args.start, "backfill")
    try:
        Backfill(start=args.start, end=args.end, services=args.services or ())
        services = services_of(args.services)
        sinks = parse_sinks(config.pipeline().sinks)
    except PipelineError as e:
        return bad_input(e)
    months = len(months_between(args.start, args.end))
    print(f"backfill: {months} months, {args.start:%Y-%m} to {args.end:%Y-%m}", file=sys.stderr)
    planned = []
    for service in services:
        note = SERVICES[service].clip_note(args.start, args.end)
        if note:
            print(f"backfill: {note}", file=sys.stderr)
        try:
            planned += months_to_run(service, args.start, args.end, sinks)
        except PipelineError as e:
            return source_failed(e)
    return _run_planned(args, "backfill", planned)



def _run_planned(args: argparse.Namespace, job: str, planned: list[Any]) -> int:
    """Say what the job runs (per service and reason), then run it in chunks, or with
    --dry-run stop there."""
    from pipeline.ops import jobs
    from pipeline.ops.plan import chunks, describe

    if not planned:
        print(f"{job}: every month of the range that exists is complete: nothing to run",
              file=sys.stderr, flush=True)
    else:
        print(f"{job}: {len(planned)} month(s) to run", file=sys.stderr)
    for line in describe(planned):
        print(f"{job}: {line}", file=sys.stderr, flush=True)
    if getattr(args, "dry_run", False):
        print(f"{job}: dry run: nothing was run", file=sys.stderr, flush=True)
        return 0
    if not planned:
        return 0
    return jobs.run_in_chunks(chunks(planned), local_scheduler=args.local_scheduler,
                              workers=args.workers, verbose=verbose(args), label=job,
                              months=len(planned))


def catch_up(args: argparse.Namespace) -> int:
    return _catch_up(args, args.start, "catch-up")


def _catch_up(args: argparse.Namespace, start: date | None, job: str) -> int:
    """Ingest, per service, up to the newest month the source publishes (probed forward
    with HEAD requests from the last complete month, or from the later of ``start`` and the
    service's first month); without ``start``, from the month after the last complete one
    (the service's first month when none is)."""
    from pipeline import config
    from pipeline.ops.plan import months_to_run
    from pipeline.ops.upstream import plan_catch_up
    from pipeline.tasks.sinks import parse_sinks

    try:
        services = services_of(args.services)
        sinks = parse_sinks(config.pipeline().sinks)
    except PipelineError as e:
        return bad_input(e)
    planned, spans = [], []
    for service in services:
        try:
            plan = plan_catch_up(service, start, sinks)
            if plan.clipped:
                print(f"{job}: {plan.clipped}", file=sys.stderr)
            print(f"{job}: {plan.describe()}", file=sys.stderr, flush=True)
            if plan.months:
                spans.append((service, *plan.months))
                planned += months_to_run(service, *plan.months, sinks)
        except PipelineError as e:
            return source_failed(e)
    code = _run_planned(args, job, planned)
    if job == "catch-up" and not getattr(args, "dry_run", False):
        code = max(code, _freshness(job, spans, sinks))
    return code


def _freshness(job: str, spans: list[tuple[str, date, date]], sinks: tuple[str, ...]) -> int:
    """With ``[notify] stale_after_days``: alert (and exit 1) about the months of the job's
    ranges that are still not complete though the source published them longer ago."""
    from pipeline import config
    from pipeline.ops import status
    from pipeline.tasks.sinks import month_completeness

    days = config.notify().stale_after_days
    if not days:
        return 0
    statuses = []
    complete = month_completeness(sinks)
    for service, first, last in spans:
        todo = [m for m in months_between(first, last) if not complete(service, m)]
        statuses += status.report(todo, (service,), sinks)
    stale = status.mark_stale(statuses, days)
    if not stale:
        return 0
    alert_stale(job, stale, days)
    return status.EXIT_INCOMPLETE



def refresh(args: argparse.Namespace) -> int:
    """Find the months of the range the source re-published since the lake fetched them,
    and replace them end to end: raw file, Parquet and manifest, every configured sink."""
    from pipeline import config
    from pipeline.ops import jobs
    from pipeline.ops.upstream import check_source
    from pipeline.tasks.download import RefetchMonth
    from pipeline.tasks.flows import IngestMonth
    from pipeline.tasks.parquetize import ParquetizeMonth
    from pipeline.tasks.sinks import month_completeness, parse_sinks

    try:
        services = services_of(args.services)
        sinks = parse_sinks(config.pipeline().sinks)
    except PipelineError as e:
        return bad_input(e)
    if args.end < args.start:
        return bad_input(PipelineError("refresh ends before it starts"))
    from pipeline.core.datasets import SERVICES
    from pipeline.ops.status import REPUBLISHED, STAGE_MISSING

    for service in services:
        note = SERVICES[service].clip_note(args.start, args.end)
        if note:
            print(f"refresh: {note}", file=sys.stderr)
    checks = []
    for month in months_between(args.start, args.end):
        for service in services:
            if not SERVICES[service].began(month):
                continue
            try:
                checked = check_source(service, month)
            except PipelineError as e:
                return source_failed(e)
            if checked is not None:
                checks.append(checked)
    republished = [c for c in checks if c.republished]
    # Months a stopped refresh left behind: the lake holds the version published, some
    # sink not yet (a normal run would finish them too; the refresh does it itself).
    complete = month_completeness(sinks)
    unfinished = [c for c in checks if c.published is not None and not c.republished
                  and not complete(c.service, c.month)]
    for c in checks:
        if c.change or c.published is None:
            print(f"refresh: {c.service} {c.month:%Y-%m} {c.describe()}", file=sys.stderr)
    for c in unfinished:
        print(f"refresh: {c.service} {c.month:%Y-%m} {STAGE_MISSING} (not complete in every "
              "sink): finishing it", file=sys.stderr)
    print(f"refresh: {len(republished)} of the {len(checks)} months the lake holds "
          f"were {REPUBLISHED}", file=sys.stderr, flush=True)
    if getattr(args, "dry_run", False):
        print("refresh: dry run: nothing was run", file=sys.stderr, flush=True)
        return 0
    if not republished and not unfinished:
        return 0
    # Three steps, each a run of its own: each one's completeness is judged only after
    # the step before changed the lake (a sink looks complete until the manifest changes).
    steps: list[list[luigi.Task]] = [
        [RefetchMonth(service=c.service, month=c.month, version=c.version)
         for c in republished],
        [ParquetizeMonth(service=c.service, month=c.month) for c in republished + unfinished],
        [IngestMonth(month=c.month, services=(c.service,)) for c in republished + unfinished],
    ]
    code = 0
    for tasks in filter(None, steps):
        code = code or jobs.run(tasks, local_scheduler=args.local_scheduler,
                                workers=args.workers, verbose=verbose(args))
    return code
