"""Benchmark the lake in a bucket: a 12-month backfill into a bucket lake against the same
backfill into a local lake, both with fake-gcs-server running (started here, filesystem
backend), in one run.

Each contender is ``taxi-pipeline backfill --start 2020-01 --end 2020-12 --services yellow
--workers W --local-scheduler`` (sink DuckDB) in a fresh process, from empty stores, against
a release mirror in its own process (``python -m tests.mirror``) serving generated
yellow months (``pipeline.demo.samples``, cached under ``bench/out/bucket_lake/``). The
local lake writes raw, Parquet and manifests to a directory; the bucket lake stages them in
scratch and uploads them, and the DuckDB loads fetch each month back from the bucket.

Reported: wall seconds and rows per second of each, the throughput ratio bucket / local
(target >= 0.8), and peak RSS per worker: the largest ``ru_maxrss`` of the backfill's
process tree (luigi runs every task in a forked process; target <= 600 MB). The contenders
run ``--repeat`` times each, interleaved; the best time and the highest RSS are kept.
Run ``python bench/bench_bucket_lake.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from measure import PROJECT, PYTHON, Measured, best, measure, ratio, ratio_text
from servers import FakeGCS, free_port, wait_for, write_config

BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "out" / "bucket_lake"
BIN = Path(PYTHON).parent
RELEASES = "/DataTalksClub/nyc-tlc-data/releases/download"
MONTHS = [f"2020-{m:02d}" for m in range(1, 13)]
BUCKET = "bench-bucket-lake"
TARGET_RATIO = 0.8
TARGET_RSS_MB = 600.0


def release(out: Path, rows: int, months: list[str]) -> Path:
    """The generated yellow ``months`` of ``rows`` rows and the zones, made once per size."""
    root = out / f"release-{rows}-{len(months)}"
    stamp = root / ".done"
    if not stamp.exists():
        shutil.rmtree(root, ignore_errors=True)
        code = ("import sys; from datetime import date; from pathlib import Path; "
                "from pipeline.demo.samples import write_release; "
                f"write_release(Path(sys.argv[1]), {{'yellow': [date(2020, m, 1) for m in "
                f"range(1, {len(months) + 1})]}}, {{'yellow': {rows}}})")
        subprocess.run([PYTHON, "-c", code, str(root)], check=True, cwd=PROJECT)
        stamp.write_text("ok")
    return root


class Services:
    """fake-gcs-server and the release mirror, each in its own process."""

    def __init__(self, out: Path, release_root: Path, logs: Path) -> None:
        self.gcs = FakeGCS(out / "gcs-root", logs / "fake-gcs-server.log")
        self.gcs_url = self.gcs.url
        self.mirror_url = f"http://127.0.0.1:{free_port()}"
        with open(logs / "mirror.log", "wb") as log:
            self.mirror = subprocess.Popen(
                [PYTHON, "-m", "tests.mirror", str(release_root), "--port",
                 self.mirror_url.rsplit(":", 1)[1]], cwd=PROJECT, stdout=log,
                stderr=subprocess.STDOUT)
        wait_for(f"{self.mirror_url}{RELEASES}/misc/taxi_zone_lookup.csv", self.mirror,
                 logs / "mirror.log")

    def create_bucket(self, name: str) -> None:
        self.gcs.create_bucket(name)

    def stop(self) -> None:
        self.mirror.kill()
        self.mirror.wait()
        self.gcs.stop()


def run_backfill(out: Path, kind: str, services: Services, workers: int, n: int,
                 months: list[str]) -> Measured:
    """One backfill of ``months`` from empty stores; ``kind`` is ``local`` or ``bucket``."""
    run = out / f"run-{kind}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    if kind == "bucket":
        bucket = f"{BUCKET}-{os.getpid()}-{n}"
        services.create_bucket(bucket)
        root = f"gs://{bucket}/lake"
    else:
        root = str(run / "lake")
    config = write_config(run / "luigi.cfg", {
        "lake": {"root": root, "scratch": str(run / "scratch")},
        "duckdb": {"path": str(run / "warehouse.duckdb")},
        "pipeline": {"sinks": "duckdb", "services": "yellow"},
        "source": {"kind": "csv", "base_url": f"{services.mirror_url}{RELEASES}",
                   "zones_url": f"{services.mirror_url}{RELEASES}/misc/taxi_zone_lookup.csv"},
        "worker": {"keep_alive": "false"},
    })
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(config),
           "STORAGE_EMULATOR_HOST": services.gcs_url}
    return measure([str(BIN / "taxi-pipeline"), "backfill", "--start", months[0], "--end",
                    months[-1], "--services", "yellow", "--workers", str(workers),
                    "--local-scheduler"], out / "logs" / f"{kind}-{n}.log", cwd=run, env=env,
                   what=f"{kind} backfill")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=300_000, help="rows per month (default 300k)")
    p.add_argument("--workers", type=int, default=2, help="luigi workers per backfill")
    p.add_argument("--repeat", type=int, default=1, help="runs of each contender")
    p.add_argument("--months", type=int, default=len(MONTHS), choices=range(1, 13),
                   metavar="N", help="months of the backfill, from 2020-01 (default 12; fewer "
                   "for a smoke run)")
    p.add_argument("--work-dir", type=Path, default=OUT,
                   help="release, runs, logs and result.json (default bench/out/bucket_lake)")
    args = p.parse_args(argv)
    out = args.work_dir.resolve()
    months = MONTHS[:args.months]
    (out / "logs").mkdir(parents=True, exist_ok=True)
    root = release(out, args.rows, months)
    services = Services(out, root, out / "logs")
    runs: dict[str, list[Measured]] = {"local": [], "bucket": []}
    try:
        for n in range(args.repeat):
            for kind in runs:
                runs[kind].append(run_backfill(out, kind, services, args.workers, n, months))
                print(f"{kind:6} run {n + 1}: {runs[kind][-1].wall_s:.1f} s, peak RSS "
                      f"{runs[kind][-1].peak_rss_mb:.0f} MB", flush=True)
    finally:
        services.stop()
    rows = args.rows * len(months)
    result = {kind: {"wall_s": best([m.wall_s for m in ms]),
                     "rows_per_s": rows / best([m.wall_s for m in ms]),
                     "peak_rss_mb_per_worker": max(m.peak_rss_mb for m in ms)}
              for kind, ms in runs.items()}
    throughput = ratio(result["bucket"]["rows_per_s"], result["local"]["rows_per_s"])
    result["throughput_ratio_bucket_to_local"] = throughput
    result["setup"] = {"rows_per_month": args.rows, "months": len(months),
                       "workers": args.workers, "repeat": args.repeat,
                       "load_average": os.getloadavg()[0]}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(f"\n{len(months)}-month backfill, {rows:,} rows, --workers {args.workers} (best of "
          f"{args.repeat}; load average {os.getloadavg()[0]:.1f})")
    for kind in ("local", "bucket"):
        r = result[kind]
        print(f"  {kind:6} lake: {r['wall_s']:7.1f} s  {r['rows_per_s']:>10,.0f} rows/s  "
              f"peak RSS per worker {r['peak_rss_mb_per_worker']:.0f} MB")
    ok_ratio = throughput >= TARGET_RATIO
    ok_rss = all(result[k]["peak_rss_mb_per_worker"] <= TARGET_RSS_MB for k in runs)
    print(f"  throughput bucket / local: {ratio_text(throughput, ' x')} (target >= "
          f"{TARGET_RATIO}: {'met' if ok_ratio else 'MISSED'}); peak RSS target <= "
          f"{TARGET_RSS_MB:.0f} MB: {'met' if ok_rss else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
