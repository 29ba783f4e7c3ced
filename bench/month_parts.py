"""The parts of ``bench_month.py``: the converters on one CSV.gz month, IngestMonth end to
end against issue 15's script, the backfill against the script month by month, and the
normalise step (``bench_parquet_source.py`` run as it is). Each records its runs in the
``Bench`` for the report."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from measure import (
    PROJECT,
    PYTHON,
    Args,
    log_tail,
    measure,
)
from month_children import FILE_NAME, MONTH, SERVICE
from month_runs import (
    BACKFILL_MONTHS,
    BENCH_DIR,
    MB,
    Bench,
    Run,
    backfill_release,
    paced,
    project_run,
    release_dir,
    stage_seconds,
    start_mirror,
    stop_mirror,
    task_spans,
)


def convert_part(bench: Bench, section: str, raw: Path, rows: int, contenders: list[str],
                 columns: list[list[str]], repeat: int, threads: int) -> None:
    """Each converter ``repeat`` times, interleaved, each run in a fresh process."""
    out_dir = bench.work / "parquet"
    out_dir.mkdir(exist_ok=True)
    print(f"\n[{section}] CSV.gz -> Parquet, {rows:,} rows", flush=True)
    for rep in range(1, repeat + 1):
        for name in contenders:
            out = out_dir / f"{name}.parquet"
            out.unlink(missing_ok=True)
            args = {"raw": str(raw), "out": str(out), "columns": columns, "threads": threads}
            measured, result = bench.child(name, args, f"{section}-{name}-{rep}")
            out.unlink(missing_ok=True)
            bench.record(Run(section, name, rep, measured.wall_s, measured.peak_rss_mb, 0,
                             result.pop("rows"), result.pop("work_s"), result), rows)


def e2e_part(bench: Bench, raw: Path, rows: int, columns: list[list[str]], repeat: int,
             threads: int, extra: dict[str, dict[str, str]] | None = None,
             bandwidth_mb: float = 0) -> None:
    """IngestMonth against the mirror vs the hand-written script, each from empty stores.
    The mirror sends the file at ``bandwidth_mb`` MB/s (0: at once)."""
    section, logs = paced("e2e", bandwidth_mb)
    pace = f", the file sent at {bandwidth_mb:g} MB/s" if bandwidth_mb else ""
    print(f"\n[{section}] IngestMonth {SERVICE} {MONTH} ({rows:,} rows) vs hand-written{pace}",
          flush=True)
    mirror, urls = start_mirror(bench, release_dir(bench, raw, rows), int(bandwidth_mb * MB))
    url = f"{urls['base_url']}/{SERVICE}/{FILE_NAME}"
    luigi_bin = str(Path(PYTHON).with_name("luigi"))
    try:
        for rep in range(1, repeat + 1):
            run_dir = bench.work / "e2e" / "ingest"
            env = project_run(run_dir, urls, extra)
            argv = [luigi_bin, "--module", "pipeline", "IngestMonth", "--month", MONTH,
                    "--services", SERVICE, "--workers", "1", "--local-scheduler"]
            log = bench.logs / f"{logs}-ingest-{rep}.log"
            started_at = time.time()
            ingest = measure(argv, log, run_dir, env, what="IngestMonth")
            _, counted = bench.child("count", {"db": str(run_dir / "warehouse.duckdb")},
                                     f"{logs}-count-{rep}")
            bench.record(Run(section, "ingest", rep, ingest.wall_s, ingest.peak_rss_mb,
                             ingest.exit_code, counted["rows"], None,
                             {**stage_seconds(log, started_at, ingest.wall_s),
                              "cpu_s": round(ingest.cpu_s, 2)}), rows)
            shutil.rmtree(run_dir, ignore_errors=True)

            hand_dir = bench.work / "e2e" / "handwritten"
            shutil.rmtree(hand_dir, ignore_errors=True)
            hand_dir.mkdir(parents=True)
            args = {"dir": str(hand_dir), "url": url, "columns": columns, "threads": threads}
            hand, result = bench.child("handwritten", args, f"{logs}-handwritten-{rep}")
            bench.record(Run(section, "handwritten", rep, hand.wall_s, hand.peak_rss_mb, 0,
                             result.pop("rows"), result.pop("work_s"),
                             {**result, "cpu_s": round(hand.cpu_s, 2)}), rows)
            shutil.rmtree(hand_dir, ignore_errors=True)
    finally:
        stop_mirror(mirror)


def backfill_part(bench: Bench, rows: int, seed: int, columns: list[list[str]],
                  repeat: int, threads: int, workers: int,
                  extra: dict[str, dict[str, str]] | None = None,
                  bandwidth_mb: float = 0, first_months: int = len(BACKFILL_MONTHS)) -> None:
    """``taxi-pipeline backfill`` of the first ``first_months`` of 2020 (all twelve by
    default) against the script run month after
    month, each from an empty lake and warehouse; months per minute and peak RSS. The
    mirror sends each file at ``bandwidth_mb`` MB/s (0: at once)."""
    keys = BACKFILL_MONTHS[:first_months]
    months = len(keys)
    section, logs = paced("backfill", bandwidth_mb)
    pace = f", files sent at {bandwidth_mb:g} MB/s" if bandwidth_mb else ""
    print(f"\n[{section}] {months} months x {rows:,} rows: taxi-pipeline backfill "
          f"--workers {workers} vs the script month by month{pace}", flush=True)
    mirror, urls = start_mirror(bench, backfill_release(bench, rows, seed, keys),
                                int(bandwidth_mb * MB))
    cli = str(Path(PYTHON).with_name("taxi-pipeline"))
    try:
        for rep in range(1, repeat + 1):
            run_dir = bench.work / "backfill" / "project"
            env = project_run(run_dir, urls, extra)
            argv = [cli, "backfill", "--start", keys[0], "--end", keys[-1], "--services",
                    SERVICE, "--workers", str(workers), "--local-scheduler"]
            log = bench.logs / f"{logs}-project-{rep}.log"
            project = measure(argv, log, run_dir, env, what="backfill")
            _, counted = bench.child("count", {"db": str(run_dir / "warehouse.duckdb")},
                                     f"{logs}-count-{rep}")
            spans = task_spans(log)
            busy = {family: round(sum(e - s for f, _, s, e in spans if f == family), 2)
                    for family in ("DownloadMonth", "ParquetizeMonth", "LoadDuckDB")}
            bench.record(Run(section, "backfill", rep, project.wall_s, project.peak_rss_mb,
                             0, counted["rows"], None,
                             {"months_per_min": round(months * 60 / project.wall_s, 2),
                              "cpu_s": round(project.cpu_s, 1), "task_seconds": busy}),
                         rows * months)
            shutil.rmtree(run_dir, ignore_errors=True)

            script_dir = bench.work / "backfill" / "script"
            shutil.rmtree(script_dir, ignore_errors=True)
            script_dir.mkdir(parents=True)
            args = {"dir": str(script_dir), "columns": columns, "threads": threads,
                    "urls": [f"{urls['base_url']}/{SERVICE}/{SERVICE}_tripdata_{key}.csv.gz"
                             for key in keys]}
            script, result = bench.child("script_backfill", args, f"{logs}-script-{rep}")
            detail = {"months_per_min": round(months * 60 / script.wall_s, 2),
                      "cpu_s": round(script.cpu_s, 1),
                      **{k: round(v, 2) for k, v in result.items() if k.endswith("_s")}}
            bench.record(Run(section, "script_backfill", rep, script.wall_s,
                             script.peak_rss_mb, 0, result["rows"], result["work_s"], detail),
                         rows * months)
            shutil.rmtree(script_dir, ignore_errors=True)
    finally:
        stop_mirror(mirror)


def normalize_part(bench: Bench, rows: int, repeat: int) -> Args:
    """``bench_parquet_source.py`` (normalize vs plain pyarrow on a TLC Parquet month), run
    as it is; its ratio of medians and normalize's peak RSS from its results file."""
    print(f"\n[normalize] bench_parquet_source.py --rows {rows:,} --repeat {repeat}", flush=True)
    log = bench.logs / "normalize.log"
    results_file = bench.work / "parquet_source-results.json"
    measure([PYTHON, str(BENCH_DIR / "bench_parquet_source.py"), "--rows", str(rows),
             "--repeat", str(repeat), "--work-dir", str(bench.work / "parquet_source"),
             "--results", str(results_file)], log, PROJECT, what="bench_parquet_source.py")
    results = json.loads(results_file.read_text())
    summary = results["summary"]
    print(log_tail(log, 600))
    return {"rows": results["rows"], "time_ratio": round(results["time_ratio"], 3),
            "normalize_median_s": round(summary["normalize"]["median_s"], 2),
            "plain_median_s": round(summary["plain"]["median_s"], 2),
            "normalize_peak_rss_mb": round(summary["normalize"]["peak_rss_mb"], 1)}
