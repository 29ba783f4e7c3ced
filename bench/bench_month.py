"""Benchmark one yellow month: CSV.gz -> Parquet, then IngestMonth end to end.

Part 1 (10 M rows) and part 2 (20 M rows) time three converters of the same CSV.gz, each
in its own fresh subprocess so that its peak RSS is its own:

- ``parquetize``: the project's step, ``pipeline.convert.parquetize.parquetize``;
- ``duckdb``: ``COPY (SELECT * FROM read_csv(..., columns={...})) TO ... (FORMAT parquet)``;
- ``reference``: the course's ``pyarrow.csv.read_csv`` of the whole file + ``write_table``.

Part 3 runs ``luigi --module pipeline IngestMonth`` (DuckDB sink) against a local HTTP mirror
(in another process) and a hand-written ``curl`` + DuckDB script, each from an empty lake
and warehouse.

Peak RSS comes from ``os.wait4`` on each child (its own ``ru_maxrss``, including any
processes it waited for; ``measure.py``). This main process imports only the standard library:
a child's ``ru_maxrss`` starts at its parent's RSS (Linux keeps the high-water mark across exec).
Run ``python bench/bench_month.py --help`` from the project root.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import month_children  # noqa: F401 (registers the child functions this script runs)
from measure import (
    child_main,
    is_child,
    own_peak_rss_mb,
)
from month_parts import backfill_part, convert_part, e2e_part, normalize_part
from month_report import CONVERTERS, report, size_label
from month_runs import Bench, overrides, sample_file

BENCH_DIR = Path(__file__).resolve().parent


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark the yellow 2021-01 month: parquetize vs DuckDB vs pyarrow "
                    "(10M and 20M rows), then IngestMonth end to end vs curl + DuckDB. "
                    "Each contender runs in its own subprocess; prints times, peak RSS, ratios.")
    p.add_argument("--rows", type=int, default=10_000_000,
                   help="rows of the main month (default 10,000,000)")
    p.add_argument("--big-rows", type=int, default=None,
                   help="rows of the memory-focus month (default 2 x --rows)")
    p.add_argument("--skip-10m", action="store_true", help="skip the 10M conversion part")
    p.add_argument("--skip-20m", action="store_true", help="skip the big-month part")
    p.add_argument("--skip-reference-20m", action="store_true",
                   help="skip the whole-file pyarrow reference on the big month (RAM hungry)")
    p.add_argument("--skip-e2e", action="store_true", help="skip the IngestMonth part")
    p.add_argument("--e2e-bandwidth", type=float, nargs="+", default=[0], metavar="MB_PER_S",
                   help="run the IngestMonth part once per pace the mirror sends the file at, "
                        "in MB/s; 0 = as fast as a local server can (default: 0, the pace "
                        "issue 15's target is defined at)")
    p.add_argument("--skip-backfill", action="store_true", help="skip the 12-month backfill")
    p.add_argument("--backfill-rows", type=int, default=1_400_000,
                   help="rows of each backfill month (default 1,400,000, the 2021 size)")
    p.add_argument("--backfill-bandwidth", type=float, nargs="+", default=[0, 25],
                   metavar="MB_PER_S",
                   help="run the backfill part once per pace the mirror sends files at, in "
                        "MB/s; 0 = as fast as a local server can (default: 0 25)")
    p.add_argument("--backfill-months", type=int, default=12, choices=range(1, 13),
                   metavar="N", help="months of the backfill: 2020-01 on (default 12; fewer "
                   "for a smoke run)")
    p.add_argument("--backfill-workers", type=int, default=2,
                   help="taxi-pipeline backfill --workers (default 2)")
    p.add_argument("--skip-normalize", action="store_true",
                   help="skip bench_parquet_source.py (normalize vs plain pyarrow)")
    p.add_argument("--normalize-rows", type=int, default=None,
                   help="rows of the normalize part's TLC Parquet month (default --rows)")
    p.add_argument("--repeat", type=int, default=2,
                   help="runs per contender; best time, max RSS are kept (default 2)")
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2)")
    p.add_argument("--luigi-set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a luigi.cfg key for the project's runs (repeatable), to "
                        "measure what a setting costs, e.g. worker.force_multiprocessing=false")
    p.add_argument("--seed", type=int, default=0, help="sample data seed (default 0)")
    p.add_argument("--work-dir", type=Path, default=BENCH_DIR / "out",
                   help="samples, logs and results.json (default bench/out, gitignored)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    if is_child(argv):
        return child_main(argv[1:])
    args = parse_args(argv)
    big_rows = args.big_rows or 2 * args.rows
    work = args.work_dir.resolve()
    bench = Bench(work)
    started = datetime.now(UTC)
    print(f"bench work dir: {work}  (python {platform.python_version()}, "
          f"{os.cpu_count()} cpus, pyarrow {_version('pyarrow')}, duckdb {_version('duckdb')})")

    _, schema = bench.child("schema", {}, "schema")
    columns = schema["columns"]
    raw = sample_file(bench, args.rows, args.seed) if not (
        args.skip_10m and args.skip_e2e) else None
    if not args.skip_10m:
        convert_part(bench, size_label(args.rows), raw, args.rows, list(CONVERTERS), columns,
                     args.repeat, args.threads)
    if not args.skip_20m:
        big = sample_file(bench, big_rows, args.seed)
        contenders = [c for c in CONVERTERS if not (args.skip_reference_20m and c == "reference")]
        convert_part(bench, size_label(big_rows), big, big_rows, contenders, columns,
                     args.repeat, args.threads)
    if not args.skip_e2e:
        for bandwidth in args.e2e_bandwidth:
            e2e_part(bench, raw, args.rows, columns, args.repeat, args.threads,
                     overrides(args.luigi_set), bandwidth)
    if not args.skip_backfill:
        for bandwidth in args.backfill_bandwidth:
            backfill_part(bench, args.backfill_rows, args.seed, columns, args.repeat,
                          args.threads, args.backfill_workers, overrides(args.luigi_set),
                          bandwidth, args.backfill_months)
    normalized = None
    if not args.skip_normalize:
        normalized = normalize_part(bench, args.normalize_rows or args.rows, args.repeat)

    summary, targets = report(bench.runs, normalized)
    results = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "versions": {n: _version(n) for n in ("pyarrow", "duckdb", "luigi", "isal")},
        "luigi_set": args.luigi_set,
        "rows": {"main": args.rows, "big": None if args.skip_20m else big_rows},
        "bench_main_rss_mb": round(own_peak_rss_mb(), 1),
        "load_average": os.getloadavg(),
        "summary": summary,
        "normalize": normalized,
        "targets": targets,
        "runs": [asdict(r) for r in bench.runs],
    }
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
