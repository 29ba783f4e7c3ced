"""``taxi-pipeline``: the batch jobs a person or cron runs.

Settings come from luigi.cfg in the current directory (or LUIGI_CONFIG_PATH). Each job
exits 0 when what it asked for is complete and non-zero otherwise, with luigi.cfg's
``[retcode]`` codes (30: a task failed, or the source could not be asked; 40: bad input).
``status`` exits 0 when every month of the range that exists is complete, 1 when one is
not, 3 when the source or a warehouse could not tell (docs/operations.md).
"""

# Argument parsing and dispatch only (the docstring above is `--help`'s): the bodies of the
# sub-commands are in ingest_jobs (ingest, backfill, catch-up, refresh) and status_job.
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

from pipeline.core.errors import PipelineError
from pipeline.core.text import one_line
from pipeline.ops.ingest_jobs import backfill, catch_up, ingest, refresh
from pipeline.ops.job_args import LATEST
from pipeline.ops.status_job import status
from pipeline.tasks.params import MonthParameter


def _month(text: str) -> date:
    try:
        return MonthParameter().parse(text)
    except PipelineError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _month_or_latest(text: str) -> date | str:
    return LATEST if text == LATEST else _month(text)


def scheduler(args: argparse.Namespace) -> int:
    from pipeline.ops import hooks
    from pipeline.ops.luigid import serve

    hooks.install_scheduler()  # luigid's own changes to luigi and SQLAlchemy (ops/hooks.py)
    serve(port=args.port, address=args.address)
    return 0


def demo(args: argparse.Namespace) -> int:
    from pipeline.demo import offline as offline_demo

    months = [_month(m) for m in args.months.split(",")]
    ok = offline_demo.run(months, Path(args.source_dir), scale=args.scale, workers=args.workers)
    return 0 if ok else 1


def _workers(text: str) -> int:
    """``--workers``: a whole number of processes, at least 1."""
    try:
        workers = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid --workers {text!r}: a whole number") from None
    if workers < 1:
        raise argparse.ArgumentTypeError(f"invalid --workers {workers}: at least 1")
    return workers


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--services", help="comma-separated services (default: [pipeline] services)")
    p.add_argument("--workers", type=_workers, default=1,
                   help="parallel worker processes (default 1)")
    p.add_argument("--local-scheduler", action="store_true",
                   help="schedule in this process instead of the central luigid named by "
                        "[core] scheduler_host/scheduler_port")
    # SUPPRESS: a --verbose given before the sub-command (if the parser has one) stands.
    p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="luigi's own log in full (scheduling, every task's steps)")


def _add_dry_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true",
                   help="print per service which months would run and why (the states of "
                        "status), run nothing, exit 0")


def _command(sub: Any, name: str, run: Callable[[argparse.Namespace], int], help: str,
             description: str, *, job: bool = False) -> argparse.ArgumentParser:
    """One sub-command; a batch ``job`` also takes --services, --workers, --local-scheduler."""
    command = sub.add_parser(name, help=help, description=description)
    command.set_defaults(func=run)
    if job:
        _add_run_options(command)
    return command


class _OneLineParser(argparse.ArgumentParser):
    """argparse with its refusals on one line (no usage block) and exit code 40, as every
    other bad input of a job."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {' '.join(message.split())} (see --help)", file=sys.stderr)
        sys.exit(BAD_INPUT)


def parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="taxi-pipeline", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--verbose", action="store_true",
                   help="show the traceback of every failure and luigi's own log in full "
                        "(also accepted after the job's name)")
    sub = p.add_subparsers(dest="command", required=True)

    run = _command(
        sub, "ingest", ingest, "ingest one month of every configured service",
        "Run IngestMonth for one month into the configured sinks; list every "
        "failed task and why. Exit 0 when the month is complete.", job=True)
    run.add_argument("--month", required=True, type=_month, help="the month, YYYY-MM")

    fill = _command(
        sub, "backfill", backfill, "ingest every month of a range",
        "Run Backfill: every month from --start to --end, both included. A month "
        "that fails does not stop the others; at the end every failed task is "
        "listed with its reason, and the exit code is non-zero.", job=True)
    fill.add_argument("--start", required=True, type=_month, help="first month, YYYY-MM")
    fill.add_argument("--end", required=True, type=_month_or_latest,
                      help="last month, YYYY-MM, or 'latest': per service, the newest month "
                           "the source publishes (probed with HEAD requests)")
    _add_dry_run(fill)

    up = _command(
        sub, "catch-up", catch_up, "ingest every month up to the newest one published (for cron)",
        "Per service: from the month after the last complete one (or from "
        "--start), ingest every month up to the newest one the source publishes, "
        "found by probing forward with HEAD requests until a month is not "
        "published. Without --start the lake must hold a complete month. The "
        "job to schedule: see deploy/ and README (Scheduling).", job=True)
    up.add_argument("--start", type=_month,
                    help="first month, YYYY-MM (default: the month after the last complete, "
                         "or the service's first month when none is)")
    _add_dry_run(up)

    again = _command(
        sub, "refresh", refresh, "fetch again the months the source re-published, end to end",
        "Compare each month of the range the lake holds with the source (HEAD: "
        "ETag, Last-Modified, length, against the manifest's record) and replace "
        "exactly the re-published ones: the raw file, the Parquet and its "
        "manifest, then every configured sink. Unchanged months are not touched; "
        "a second run finds nothing to do.", job=True)
    again.add_argument("--start", required=True, type=_month, help="first month, YYYY-MM")
    again.add_argument("--end", required=True, type=_month, help="last month, YYYY-MM")
    _add_dry_run(again)

    st = _command(
        sub, "status", status, "which months are done, stage by stage",
        "A table of months x services x stages (raw, parquet, each configured "
        "sink) with row counts from the manifests and the warehouses, and what is "
        "missing or inconsistent. Without --start/--end: every month from the "
        "first to the last in the lake. Exit 0 when every month that exists "
        "(published, from the service's first month) is complete, 1 when one is "
        "not, 3 when the source or a warehouse could not tell.")
    st.add_argument("--start", type=_month, help="first month, YYYY-MM")
    st.add_argument("--end", type=_month, help="last month, YYYY-MM")
    st.add_argument("--services", help="comma-separated services (default: [pipeline] services)")
    st.add_argument("--format", choices=("table", "json"), default="table")
    st.add_argument("--verify", action="store_true",
                    help="read every lake file in full and check its sha256 against the "
                         "manifest (slow: the default reads sizes, footers and records)")
    st.add_argument("--no-source-check", action="store_true",
                    help="do not ask the source whether missing months are published")
    st.add_argument("--check-source", action="store_true",
                    help="also ask the source about the months the lake holds (HEAD) and "
                         "mark those re-published upstream since they were fetched")
    st.add_argument("--stale-after", type=float, metavar="DAYS",
                    help="freshness: exit 1 and alert only when a month the source published "
                         "more than DAYS ago (its Last-Modified) is not complete")
    st.add_argument("--html", metavar="FILE",
                    help="also write a coverage page: one self-contained HTML file, a grid "
                         "of months x services coloured by state (details on hover or click)")

    sch = _command(
        sub, "scheduler", scheduler, "run the central scheduler (luigid) in the foreground",
        "Run luigid with the settings of luigi.cfg: state file, log directory, "
        "task history at /history, retries with growing delays. Stops cleanly "
        "on SIGTERM or SIGINT, saving its state.")
    sch.add_argument("--port", type=int, default=8082)
    sch.add_argument("--address", default="127.0.0.1",
                     help="interface to listen on (default 127.0.0.1: this host only)")

    d = _command(
        sub, "demo", demo, "offline demo on generated sample months",
        "Generate realistic sample months, serve them on 127.0.0.1 like the real "
        "releases, ingest them into the local lake and DuckDB, show the result.")
    d.add_argument("--months", default="2021-01,2021-02", help="comma-separated months")
    d.add_argument("--source-dir", default="data/demo-source",
                   help="where the sample release is generated (reused when present)")
    d.add_argument("--scale", type=float, default=1.0,
                   help="size factor for the sample months (1.0: 200k yellow rows a month)")
    d.add_argument("--workers", type=_workers, default=2, help="parallel worker processes")
    return p


# Exit code of a refused flag or setting: luigi.cfg's [retcode] unhandled_exception, which
# cannot be read when luigi.cfg itself is refused.
BAD_INPUT = 40
_WRITING_JOBS = ("ingest", "backfill", "catch-up", "refresh")


def main(argv: list[str] | None = None) -> int:
    from pipeline.ops import hooks, logs, stopping

    hooks.install()  # an entry point: the changes to luigi and logging listed in ops.hooks
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    # --verbose is taken anywhere on the line (before or after the job's name), once.
    args = parser().parse_args([a for a in argv if a != "--verbose"])
    args.verbose = verbose
    logs.show_tracebacks(verbose)
    if args.command != "scheduler":  # luigid saves its state on SIGTERM itself
        stopping.install(f"taxi-pipeline {args.command}")
    try:
        _preflight(args.command)
        return args.func(args)
    except PipelineError as e:
        if verbose:
            raise
        return _refused(args.command, str(e))
    except Exception as e:
        if verbose or not logs.anticipated(e):
            raise
        return _refused(args.command, f"{type(e).__name__}: {one_line(e)}")


def _refused(command: str, reason: str) -> int:
    """A job that cannot run as configured: one line, exit 40, and (for the jobs cron or
    systemd run unattended) the alert, so a broken setting is not a silent no-op."""
    print(f"error: {reason}", file=sys.stderr, flush=True)
    if command in _WRITING_JOBS:
        from pipeline.ops import notify

        try:
            notify.send(notify.failure_alert(f"taxi-pipeline {command}", [reason], BAD_INPUT))
        except Exception as e:  # the alert's own settings may be what is wrong
            print(f"alert: not sent: {one_line(e)}", file=sys.stderr)
    return BAD_INPUT


def _preflight(command: str) -> None:
    """Every setting, and what a job will write, checked before anything runs."""
    from pipeline.config_check import check_settings
    from pipeline.ops.preflight import check_job

    if command in _WRITING_JOBS or command == "status":
        check_job(writes=command != "status")
    elif command == "scheduler":
        import pipeline.tasks.flows  # noqa: F401 (registers the task families' sections)

        check_settings()


if __name__ == "__main__":
    sys.exit(main())
