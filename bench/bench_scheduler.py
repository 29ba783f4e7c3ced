"""Benchmark scheduling: a no-op re-run of a complete backfill, and luigid with a long one.

Part A: a complete backfill of 36 months x 3 services (2019-01..2021-12, yellow, green,
fhv; small generated months) on the local lake + DuckDB is re-run as a whole process,
``luigi --module pipeline Backfill ... --workers 2``, with ``--local-scheduler`` and
against a real luigid (``taxi-pipeline scheduler``) started here, ``--repeat`` times each,
interleaved. Nothing may run: the source URL of these runs is unreachable and the output
must say "Did not run any tasks". Target: <= 3 s. The same no-op then runs in-process
(fresh interpreter), once counting every ``complete()`` call by task family, once under
cProfile, to show where the time goes.

Part B: a 10-year backfill (2011-01..2020-12 x 3 services) on an empty lake against a
fresh luigid, with a source mirror on which every download stalls: seconds from the
``luigi`` process start until luigid shows a RUNNING task, the number of tasks scheduled,
then the process group is killed. ``--sched-repeat`` times.

The complete state of part A is built once (``write_release`` + the pipeline's own
Backfill) and cached under ``bench/out/scheduler/``. Results: a table on stdout and
``bench/out/scheduler-results.json``. Run ``python bench/bench_scheduler.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from measure import (
    child_main,
    is_child,
)
from scheduler_backfill import part_b
from scheduler_luigid import Json
from scheduler_noop import build_state, import_seconds, in_process, part_a
from scheduler_report import report

BENCH_DIR = Path(__file__).resolve().parent
NOOP_RANGE = ("2019-01", "2021-12")
SCHED_RANGE = ("2011-01", "2020-12")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if is_child(argv):
        code = child_main(argv[1:])
        if argv[1] == "schedprof":  # no run: the tasks stay PENDING on a luigid stopped next
            sys.stdout.flush()
            os._exit(code)
        return code
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1000,
                   help="rows of each generated month of part A (default 1000)")
    p.add_argument("--repeat", type=int, default=5,
                   help="no-op runs per scheduler in part A (default 5)")
    p.add_argument("--sched-repeat", type=int, default=3,
                   help="10-year scheduling runs in part B (default 3)")
    p.add_argument("--sched-timeout", type=float, default=600,
                   help="give up on part B's run after this many seconds (default 600)")
    p.add_argument("--sched-history", choices=("on", "off", "both"), default="both",
                   help="part B with luigid's task history on (luigi.cfg), off, or both "
                        "interleaved (default both)")
    p.add_argument("--noop-range", nargs=2, default=NOOP_RANGE, metavar=("START", "END"),
                   help="part A's complete backfill, YYYY-MM to YYYY-MM (default "
                        f"{NOOP_RANGE[0]} {NOOP_RANGE[1]}; fewer months for a smoke run)")
    p.add_argument("--sched-range", nargs=2, default=SCHED_RANGE, metavar=("START", "END"),
                   help="part B's backfill, YYYY-MM to YYYY-MM (default "
                        f"{SCHED_RANGE[0]} {SCHED_RANGE[1]})")
    p.add_argument("--skip-noop", action="store_true", help="skip part A")
    p.add_argument("--skip-schedule", action="store_true", help="skip part B")
    p.add_argument("--no-profile", action="store_true",
                   help="without the in-process count and cProfile runs")
    p.add_argument("--work-dir", type=Path, default=BENCH_DIR / "out" / "scheduler",
                   help="data, logs and luigid state (default bench/out/scheduler, cached)")
    p.add_argument("--results", type=Path, default=BENCH_DIR / "out" / "scheduler-results.json",
                   help="JSON results (default bench/out/scheduler-results.json)")
    args = p.parse_args(argv)
    work = args.work_dir.resolve()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: Json = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count(),
                     "load_before": os.getloadavg()}
    if not args.skip_noop:
        span = tuple(args.noop_range)
        results["state"] = build_state(work, args.rows, logs, span)
        print("A. no-op re-runs (local and central, interleaved)", flush=True)
        noop = part_a(work, logs, args.repeat, span)
        state = work / "state"
        config = Path(noop["config"])
        if not args.no_profile:
            noop["imports"] = import_seconds(config, state, logs)
            noop["inproc"] = in_process(config, state, logs, False, span)
            noop["profile"] = in_process(config, state, logs, True, span)
        results["noop"] = noop
    if not args.skip_schedule:
        print(f"B. scheduling the backfill {args.sched_range[0]}..{args.sched_range[1]} on "
              "luigid", flush=True)
        histories = ["on", "off"] if args.sched_history == "both" else [args.sched_history]
        results["schedule"] = part_b(work, logs, args.sched_repeat, args.sched_timeout,
                                     histories, not args.no_profile, tuple(args.sched_range))
    results["load_after"] = os.getloadavg()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2))
    report(results)
    print(f"\nresults: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
