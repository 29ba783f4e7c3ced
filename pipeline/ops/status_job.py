"""The ``status`` sub-command: the table (or JSON, or the coverage page) of months x services
x stages, its exit code (0 every month that exists complete, 1 one is not, 3 the source or a
warehouse could not tell), and the stale-month alert it shares with catch-up."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.core.months import months_between
from pipeline.ops.job_args import bad_input, services_of


def status(args: argparse.Namespace) -> int:
    """The status table; exit 0 when every month of the range that exists is complete, 1
    when one is not (with --stale-after: not complete though published longer ago), 3 when
    the source or a warehouse could not tell."""
    from pipeline import config
    from pipeline.core.datasets import SERVICES
    from pipeline.ops import status as st
    from pipeline.ops.upstream import current_month
    from pipeline.tasks.sinks import parse_sinks

    try:
        services = services_of(args.services)
        sinks = parse_sinks(config.pipeline().sinks)
        config.quality().thresholds()
        if args.stale_after is not None and args.stale_after < 0:
            raise PipelineError("--stale-after takes a number of days, 0 or more")
    except PipelineError as e:
        return bad_input(e)
    if args.start or args.end:
        if not (args.start and args.end):
            return bad_input(PipelineError("give both --start and --end, or neither"))
        months = months_between(args.start, args.end)
        for service in services:
            note = SERVICES[service].clip_note(args.start, args.end)
            if note:
                print(f"status: {note}", file=sys.stderr)
    else:
        months = st.lake_months(services)
        if months and args.stale_after is not None:  # freshness: up to this month
            months = months_between(months[0], current_month())
    try:
        statuses = st.report(months, services, sinks, check_source=not args.no_source_check,
                             compare_source=args.check_source, verify=args.verify)
    except PipelineError as e:
        print(f"status: {st.COULD_NOT_TELL}: {e}", file=sys.stderr)
        return st.EXIT_UNKNOWN
    if args.verify:
        read = sum(s.verified_bytes or 0 for s in statuses)
        print(f"status --verify: read {read / 1e6:,.1f} MB of lake files in full and checked "
              "each against its manifest's sha256", file=sys.stderr)
    stale = st.mark_stale(statuses, args.stale_after) if args.stale_after is not None else []
    records = st.as_records(statuses)
    if args.html:
        from pipeline.ops.coverage import write_page

        write_page(Path(args.html), records)
        print(f"coverage page: {Path(args.html).absolute()}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(records, indent=2))
    elif any(r["state"] != st.BEFORE_START for r in records):
        print(st.as_table(records))
    else:
        print("the lake holds no month yet: give --start and --end to ask about a range")
    if args.stale_after is None:
        return st.exit_code(statuses)
    if stale:
        alert_stale("status", stale, args.stale_after)
        return st.EXIT_INCOMPLETE
    unknown = [s for s in statuses if not s.fine and s.published_at is None]
    return st.EXIT_UNKNOWN if unknown else st.EXIT_COMPLETE



def alert_stale(job: str, stale: list[Any], days: float) -> None:
    """One line per stale month on stderr, and one alert about them all."""
    import socket

    from pipeline.ops import notify

    lines = [f"STALE {s.service} {s.month}: {s.state}, published {s.published_at}"
             for s in stale]
    for line in lines:
        print(f"{job}: {line}", file=sys.stderr)
    host = socket.gethostname()
    subject = (f"taxi-pipeline: {job} on {host}: {len(stale)} month(s) published more than "
               f"{days:g} days ago not complete")
    notify.send(notify.Alert(subject, "\n".join([subject + ".", *lines])))

