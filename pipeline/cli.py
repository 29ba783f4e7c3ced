"""``taxi-pipeline``: the batch jobs a person or cron runs. Each exits non-zero when
anything it ran failed (the exit codes of luigi.cfg's ``[retcode]``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import luigi.retcodes

from pipeline.params import BadParameter, MonthParameter


def _month(text: str):
    try:
        return MonthParameter().parse(text)
    except BadParameter as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _scheduler_args(args: argparse.Namespace) -> list[str]:
    return ["--local-scheduler"] if args.local_scheduler else []


def ingest(args: argparse.Namespace) -> int:
    argv = ["--module", "pipeline", "IngestMonth", "--month", args.month,
            "--workers", str(args.workers), *_scheduler_args(args)]
    if args.services:
        argv += ["--services", args.services]
    print(f"scheduler: {'local (in this process)' if args.local_scheduler else 'central luigid'}",
          file=sys.stderr)
    try:
        luigi.retcodes.run_with_retcodes(argv)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def demo(args: argparse.Namespace) -> int:
    from pipeline import demo as offline_demo

    months = [_month(m) for m in args.months.split(",")]
    ok = offline_demo.run(months, Path(args.source_dir), scale=args.scale, workers=args.workers)
    return 0 if ok else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="taxi-pipeline",
        description="NYC taxi month pipeline: batch jobs over the Luigi tasks. Settings come "
                    "from luigi.cfg in the current directory (or LUIGI_CONFIG_PATH).",
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("ingest", help="ingest one month of every configured service",
                         description="Run IngestMonth for one month into the configured sinks.")
    run.add_argument("--month", required=True, type=str, help="the month, YYYY-MM")
    run.add_argument("--services", help="comma-separated services (default: [pipeline] services)")
    run.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    run.add_argument("--local-scheduler", action="store_true",
                     help="schedule in this process instead of the central luigid")
    run.set_defaults(func=ingest)

    d = sub.add_parser("demo", help="offline demo on generated sample months",
                       description="Generate realistic sample months, serve them on 127.0.0.1 "
                                   "like the real releases, ingest them into the local lake and "
                                   "DuckDB, and show the result.")
    d.add_argument("--months", default="2021-01,2021-02", help="comma-separated months")
    d.add_argument("--source-dir", default="data/demo-source",
                   help="where the sample release is generated (reused when present)")
    d.add_argument("--scale", type=float, default=1.0,
                   help="size factor for the sample months (1.0: 200k yellow rows a month)")
    d.add_argument("--workers", type=int, default=2, help="parallel worker processes")
    d.set_defaults(func=demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
