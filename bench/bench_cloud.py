"""Benchmark the cloud branch against fake-gcs-server (started here, filesystem backend).

Part 1: ``UploadMonth`` of a 10M-row yellow month's Parquet (through luigi, in-process
worker) against google-cloud-storage's plain ``Blob.upload_from_filename`` of the same file,
interleaved, ``--repeat`` times each, in one run. Target: UploadMonth <= 1.1 x plain.

Part 2: a no-op completeness check of 36 months x 3 services, all published:
``UploadMonth(...).complete()`` for each (GCS: one listing) against
``ParquetizeMonth(...).complete()`` for each (the local lake: manifest + Parquet footer).
Target: GCS <= 2 x local.

Each measured contender runs in a fresh interpreter (``bench_cloud.py _child NAME ...``,
``measure.run_child``) and times only its own work (imports and interpreter start excluded).
Data is made with ``pipeline.demo.samples.write_month`` and the pipeline's own
ParquetizeMonth, and cached under ``bench/out/cloud/`` (gitignored). Run
``python bench/bench_cloud.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from measure import (
    PROJECT,
    Args,
    best,
    child,
    child_main,
    is_child,
    median,
    ratio,
    ratio_text,
    run_child,
)
from servers import FakeGCS, write_config

BENCH_DIR = Path(__file__).resolve().parent
MONTH = date(2021, 1, 1)
SERVICES = ("yellow", "green", "fhv")
CHECK_MONTHS = [date(2019 + i // 12, i % 12 + 1, 1) for i in range(36)]
TARGET_UPLOAD = 1.1
TARGET_CHECK = 2.0


# --------------------------------------------------------------------------- children


def _tasks(name: str, months: list[str], services: list[str]) -> list[Any]:
    import pipeline

    task = getattr(pipeline, name)
    return [task(service=s, month=date.fromisoformat(m + "-01")) for s in services
            for m in months]


@child("build")
def child_build(a: Args) -> Args:
    """Run luigi on tasks (data preparation, not measured)."""
    import luigi

    tasks = _tasks(a["task"], a["months"], a["services"])
    ok = luigi.build(tasks, local_scheduler=True, workers=a.get("workers", 1),
                     log_level="WARNING")
    return {"ok": ok}


@child("upload-task")
def child_upload_task(a: Args) -> Args:
    import luigi

    from pipeline import UploadMonth

    task = UploadMonth(service="yellow", month=MONTH)
    started = time.perf_counter()
    ok = luigi.build([task], local_scheduler=True, log_level="WARNING")
    seconds = time.perf_counter() - started
    return {"ok": ok and task.complete(), "seconds": seconds}


@child("upload-plain")
def child_upload_plain(a: Args) -> Args:
    from google.cloud import storage

    blob = storage.Client().bucket(a["bucket"]).blob(a["key"])
    started = time.perf_counter()
    blob.upload_from_filename(a["file"])
    seconds = time.perf_counter() - started
    return {"ok": blob.size == Path(a["file"]).stat().st_size, "seconds": seconds}


@child("check")
def child_check(a: Args) -> Args:
    from pipeline.lake import gcs

    tasks = _tasks(a["task"], a["months"], a["services"])
    started = time.perf_counter()
    complete = sum(task.complete() for task in tasks)
    seconds = time.perf_counter() - started
    return {"ok": complete == len(tasks), "seconds": seconds, "complete": complete,
            "list_calls": gcs.GCS.list_calls}


# --------------------------------------------------------------------------- set-up


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.gcs = FakeGCS(work / "gcs-root", self.logs / "fake-gcs-server.log")

    def config(self, lake: Path, bucket: str) -> Path:
        # The raw months are generated CSV.gz, 2021-08 on included: kind = csv.
        return write_config(lake.parent / f"{lake.name}.cfg", {
            "lake": {"root": str(lake)}, "gcs": {"bucket": bucket}, "source": {"kind": "csv"},
            "pipeline": {"sinks": "gcs"}, "worker": {"keep_alive": "false"}})

    def child(self, name: str, args: Args, log_name: str, config: Path) -> Args:
        """Run one child function on ``config`` and the emulator; exit unless it did its work."""
        environment = {**os.environ, "LUIGI_CONFIG_PATH": str(config),
                       "STORAGE_EMULATOR_HOST": self.gcs.url}
        return run_child(__file__, name, args, self.logs / f"{log_name}.log", PROJECT,
                         environment)[1]


def raw_months(lake: Path, months: list[date], services: tuple[str, ...], rows: int) -> None:
    """Generated CSV.gz months in the lake's raw/ folder, so DownloadMonth is complete."""
    from pipeline.core.datasets import SERVICES as REGISTRY
    from pipeline.demo.samples import write_month
    from pipeline.lake.keys import raw_key

    stamp = lake / f".raw-{rows}.json"
    wanted = [f"{s}:{m:%Y-%m}" for s in services for m in months]
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return
    shutil.rmtree(lake, ignore_errors=True)
    for service in services:
        for month in months:
            write_month(lake / raw_key(REGISTRY[service], month), service, month, rows)
    stamp.write_text(json.dumps(wanted))


def month_keys(months: list[date]) -> list[str]:
    return [f"{m:%Y-%m}" for m in months]


# --------------------------------------------------------------------------- the parts


def upload_part(bench: Bench, rows: int, repeat: int) -> dict[str, list[float]]:
    lake = bench.work / f"lake-{rows}"
    print(f"part 1: {rows:,}-row yellow month (generating and converting when not cached)",
          flush=True)
    started = time.perf_counter()
    raw_months(lake, [MONTH], ("yellow",), rows)
    config = bench.config(lake, "bench-upload")
    bench.child("build", {"task": "ParquetizeMonth", "months": month_keys([MONTH]),
                          "services": ["yellow"]}, "parquetize-big", config)
    print(f"  data ready in {time.perf_counter() - started:.1f} s", flush=True)
    bench.gcs.create_bucket("bench-upload")
    from pipeline.core.datasets import SERVICES as REGISTRY
    from pipeline.lake.keys import manifest_key, parquet_key

    key = f"nyc-tlc/{parquet_key(REGISTRY['yellow'], MONTH)}"
    manifest = f"nyc-tlc/{manifest_key(REGISTRY['yellow'], MONTH)}"
    parquet = lake / parquet_key(REGISTRY["yellow"], MONTH)
    print(f"  Parquet: {parquet.stat().st_size / 1e6:,.1f} MB", flush=True)
    times: dict[str, list[float]] = {"UploadMonth": [], "upload_from_filename": []}
    for rep in range(1, repeat + 1):
        bench.gcs.delete("bench-upload", key)
        bench.gcs.delete("bench-upload", manifest)
        out = bench.child("upload-task", {}, f"upload-task-{rep}", config)
        times["UploadMonth"].append(out["seconds"])
        plain_key = f"plain/{rep}.parquet"
        out = bench.child("upload-plain", {"bucket": "bench-upload", "key": plain_key,
                                           "file": str(parquet)}, f"upload-plain-{rep}", config)
        bench.gcs.delete("bench-upload", plain_key)
        times["upload_from_filename"].append(out["seconds"])
        print(f"  #{rep}: UploadMonth {times['UploadMonth'][-1]:.2f} s, "
              f"upload_from_filename {times['upload_from_filename'][-1]:.2f} s", flush=True)
    return times


def check_part(bench: Bench, rows: int, repeat: int,
               check_months: list[date]) -> dict[str, list[float]]:
    lake = bench.work / f"lake-{len(check_months) * len(SERVICES)}"
    print(f"part 2: completeness of {len(check_months)} months x {len(SERVICES)} services "
          f"({rows} rows each)", flush=True)
    raw_months(lake, check_months, SERVICES, rows)
    config = bench.config(lake, "bench-check")
    bench.gcs.create_bucket("bench-check")
    months = month_keys(check_months)
    common = {"months": months, "services": list(SERVICES)}
    bench.child("build", {**common, "task": "UploadMonth", "workers": 2}, "publish-108", config)
    times: dict[str, list[float]] = {"GCS (UploadMonth)": [], "local (ParquetizeMonth)": []}
    for rep in range(1, repeat + 1):
        out = bench.child("check", {**common, "task": "UploadMonth"}, f"check-gcs-{rep}", config)
        times["GCS (UploadMonth)"].append(out["seconds"])
        list_calls = out["list_calls"]
        out = bench.child("check", {**common, "task": "ParquetizeMonth"}, f"check-local-{rep}",
                          config)
        times["local (ParquetizeMonth)"].append(out["seconds"])
        print(f"  #{rep}: GCS {times['GCS (UploadMonth)'][-1] * 1000:.1f} ms "
              f"({list_calls} listing), local "
              f"{times['local (ParquetizeMonth)'][-1] * 1000:.1f} ms", flush=True)
    return times


def summary(name: str, times: dict[str, list[float]], target: float) -> dict[str, Any]:
    (a, a_times), (b, b_times) = times.items()
    ratio_best = ratio(best(a_times), best(b_times))
    ratio_median = ratio(median(a_times), median(b_times))
    verdict = "met" if ratio_best <= target else "MISSED"
    print(f"  best {a} {best(a_times):.3f} s / best {b} {best(b_times):.3f} s = "
          f"{ratio_text(ratio_best, ' x')} (median {ratio_text(ratio_median, ' x')}); "
          f"target <= {target} x: {verdict}")
    return {"part": name, "times": times, "ratio_best": ratio_best,
            "ratio_median": ratio_median, "target": target, "met": ratio_best <= target}


def main(argv: list[str]) -> int:
    if is_child(argv):
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the big month")
    parser.add_argument("--check-rows", type=int, default=200,
                        help="rows of each of the 108 months of part 2")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / "out" / "cloud")
    parser.add_argument("--skip-upload", action="store_true", help="part 2 only")
    parser.add_argument("--check-months", type=int, default=len(CHECK_MONTHS),
                        choices=range(1, len(CHECK_MONTHS) + 1), metavar="N",
                        help="months of part 2, from 2019-01 (default 36; fewer for a smoke "
                             "run)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT))
    bench = Bench(args.work_dir.absolute())
    results = []
    try:
        if not args.skip_upload:
            times = upload_part(bench, args.rows, args.repeat)
            results.append(summary("upload", times, TARGET_UPLOAD))
        times = check_part(bench, args.check_rows, args.repeat,
                           CHECK_MONTHS[:args.check_months])
        results.append(summary("completeness", times, TARGET_CHECK))
    finally:
        bench.gcs.stop()
        shutil.rmtree(bench.work / "gcs-root", ignore_errors=True)
    (bench.work / "results.json").write_text(json.dumps(
        {"rows": args.rows, "repeat": args.repeat, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
