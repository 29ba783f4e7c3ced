"""What the byte checks of issue 26 cost on a 10M-row month, against IngestMonth's own time.

```sh
.venv/bin/python bench/bench_integrity.py                 # 10M rows (generated once, kept)
.venv/bin/python bench/bench_integrity.py --rows 300000   # smoke run
```

In one run, on one machine state:

1. ``IngestMonth`` of the month (``luigi --module pipeline IngestMonth``, DuckDB sink)
   against a ``ReleaseMirror`` in its own process, timed with ``measure`` (the figure the
   checks are weighed against). Its manifest says which check proved the download.
2. The download's check alone: the raw file fed in 1 MiB slices through ``EtagDigest``,
   as the download feeds it while it streams (an MD5, and a multipart ETag whose length
   fits two candidate part sizes: the dearest case).
3. The load's check alone: the lake Parquet hashed by ``HashAlongside`` (sha256).
4. The load with and without its check: ``duckdb.load_month`` into a fresh warehouse with
   the file given through ``local_file(sha256=...)`` (hashed alongside DuckDB's read) and
   without it, alternated, best of ``--repeat``.
5. IngestMonth in process with both checks and with both turned off (the digest expects
   nothing, the load's file is handed over unhashed), alternated, best of ``--repeat``:
   the checks' cost as IngestMonth itself sees it.

Every figure is printed as a ratio to IngestMonth's wall time of step 1. Target (issue 26):
the checks' cost at most 5 % of IngestMonth's time. Neither check adds a pass over the file
in time: the download hashes the bytes as they arrive (on the check's helper thread), the
load's hash reads the file alongside DuckDB (from the page cache) and is awaited only
before the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from measure import PYTHON, Args, child, child_main, is_child, measure, ratio, run_child
from month_children import FILE_NAME, MONTH, SERVICE
from month_runs import Bench, luigi_config, release_dir, sample_file, start_mirror, stop_mirror

HERE = Path(__file__).resolve().parent
TARGET = 0.05


@child("digest")
def child_digest(a: Args) -> Args:
    """Seconds to feed the raw file through the download's ETag check (no I/O counted:
    the file is read first, as the network hands the bytes over)."""
    from pipeline.source.etag import EtagDigest, file_etag

    raw = Path(a["raw"])
    data = raw.read_bytes()
    size = len(data)
    figures = {}
    for kind, part in (("md5", None), ("multipart", 16 << 20)):
        etag = file_etag(raw, part)
        started = time.perf_counter()
        digest = EtagDigest(etag, size)
        view = memoryview(data)
        for at in range(0, size, 1 << 20):
            digest.feed(view[at:at + (1 << 20)])
        proof = digest.verify()
        figures[kind] = {"seconds": time.perf_counter() - started, "proof": proof,
                         "candidates": len(digest._parts) or 1}
    return {"bytes": size, **figures}


@child("parquet_hash")
def child_parquet_hash(a: Args) -> Args:
    """Seconds to hash the lake Parquet as the load's check does."""
    from pipeline.lake.targets import HashAlongside

    path = Path(a["parquet"])
    path.read_bytes()  # in the page cache, as it is right after its conversion
    started = time.perf_counter()
    HashAlongside(path, a["sha256"], str(path)).check()
    return {"seconds": time.perf_counter() - started, "bytes": path.stat().st_size}


@child("load_month")
def child_load_month(a: Args) -> Args:
    """One load of the month into a fresh DuckDB file (``[duckdb] path`` of the config),
    the file given with its check (``local_file(sha256=...)``) or without."""
    from datetime import date

    from pipeline.core.datasets import SERVICES
    from pipeline.core.manifest import Manifest
    from pipeline.lake.local import LocalLakeTarget
    from pipeline.tasks.load import duckdb_settings
    from pipeline.warehouses import duckdb as engine

    manifest = Manifest.from_json(Path(a["manifest"]).read_text())
    target = LocalLakeTarget(a["parquet"])
    Path(a["parquet"]).read_bytes()  # in the page cache for both contenders
    year, month = (int(x) for x in MONTH.split("-"))
    started = time.perf_counter()
    with target.local_file(sha256=manifest.parquet_sha256 if a["verify"] else None) as path:
        rows = engine.load_month(SERVICES[SERVICE], date(year, month, 1), str(path), manifest,
                                 duckdb_settings())
    return {"seconds": time.perf_counter() - started, "rows": rows}


@child("ingest_ab")
def child_ingest_ab(a: Args) -> Args:
    """IngestMonth in this process, with the byte checks (``checks``) or with both turned
    off: the download's ETag digest never expects anything, the load's file is handed
    over unhashed. The difference of the two is what the checks cost IngestMonth."""
    import contextlib
    from datetime import date

    os.environ["LUIGI_CONFIG_PATH"] = a["config"]
    if not a["checks"]:
        import pipeline.lake.local as local
        import pipeline.source.download as download
        from pipeline.source.etag import EtagDigest

        class NoDigest(EtagDigest):
            def __init__(self, etag: str | None, length: int | None) -> None:
                super().__init__(None, None)

        download.EtagDigest = NoDigest  # type: ignore[misc]
        local.verified_read = lambda path, sha256, what: contextlib.nullcontext(path)
    import luigi

    from pipeline import IngestMonth

    year, month = (int(x) for x in MONTH.split("-"))
    started = time.perf_counter()
    ok = luigi.build([IngestMonth(month=date(year, month, 1), services=(SERVICE,))],
                     local_scheduler=True, workers=1, log_level="WARNING")
    return {"seconds": time.perf_counter() - started, "ok": ok}


def main(argv: list[str]) -> int:
    if is_child(argv):
        return child_main(argv[1:])
    p = argparse.ArgumentParser(prog="bench/bench_integrity.py", description=__doc__.split(
        "\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--work-dir", type=Path, default=HERE / "out")
    args = p.parse_args(argv)
    bench = Bench(args.work_dir.resolve())
    raw = sample_file(bench, args.rows, args.seed)
    logs = bench.logs

    print(f"\n[integrity] IngestMonth {SERVICE} {MONTH} ({args.rows:,} rows)", flush=True)
    mirror, urls = start_mirror(bench, release_dir(bench, raw, args.rows))
    run_dir = bench.work / "integrity" / "ingest"
    try:
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        env = {**os.environ, "LUIGI_CONFIG_PATH": str(luigi_config(run_dir, urls))}
        argv_ = [str(Path(PYTHON).with_name("luigi")), "--module", "pipeline", "IngestMonth",
                 "--month", MONTH, "--services", SERVICE, "--workers", "1",
                 "--local-scheduler"]
        ingest = measure(argv_, logs / "integrity-ingest.log", run_dir, env,
                         what="IngestMonth")
    finally:
        stop_mirror(mirror)
    y, m = MONTH.split("-")
    month_dir = run_dir / "lake" / "parquet" / SERVICE / f"year={y}" / f"month={m}"
    manifest = json.loads((month_dir / "_manifest.json").read_text())
    parquet = month_dir / f"{SERVICE}_tripdata_{MONTH}.parquet"
    lake_raw = run_dir / "lake" / "raw" / SERVICE / FILE_NAME
    print(f"  IngestMonth: {ingest.wall_s:.2f} s wall, {manifest['rows']:,} rows; the download "
          f"was proved by: {manifest.get('source_check')}", flush=True)

    _, digest = run_child(__file__, "digest", {"raw": str(lake_raw)}, logs / "digest.log")
    _, hashed = run_child(__file__, "parquet_hash", {"parquet": str(parquet),
                                                     "sha256": manifest["parquet_sha256"]},
                          logs / "parquet-hash.log")
    loads: dict[str, list[float]] = {"verified": [], "plain": []}
    for rep in range(args.repeat):
        for kind in ("plain", "verified"):
            load_dir = bench.work / "integrity" / f"load-{kind}-{rep}"
            shutil.rmtree(load_dir, ignore_errors=True)
            load_dir.mkdir(parents=True)
            load_env = {**os.environ,
                        "LUIGI_CONFIG_PATH": str(luigi_config(load_dir, urls))}
            _, result = run_child(__file__, "load_month", {
                "parquet": str(parquet), "manifest": str(month_dir / "_manifest.json"),
                "verify": kind == "verified"}, logs / f"load-{kind}-{rep}.log", env=load_env)
            assert result["rows"] == manifest["rows"], result
            loads[kind].append(result["seconds"])
            shutil.rmtree(load_dir, ignore_errors=True)

    # IngestMonth with and without the checks, in process, interleaved, from empty stores.
    ab: dict[str, list[float]] = {"with checks": [], "without": []}
    mirror, urls = start_mirror(bench, release_dir(bench, raw, args.rows))
    try:
        for rep in range(args.repeat):
            for kind in ("without", "with checks"):
                ab_dir = bench.work / "integrity" / f"ab-{rep}"
                shutil.rmtree(ab_dir, ignore_errors=True)
                ab_dir.mkdir(parents=True)
                _, result = run_child(__file__, "ingest_ab", {
                    "config": str(luigi_config(ab_dir, urls)), "checks": kind != "without"},
                    logs / f"ab-{kind.replace(' ', '-')}-{rep}.log")
                ab[kind].append(result["seconds"])
                shutil.rmtree(ab_dir, ignore_errors=True)
    finally:
        stop_mirror(mirror)
    with_checks, without = min(ab["with checks"]), min(ab["without"])
    print(f"  IngestMonth in process, best of {args.repeat}: {with_checks:.2f} s with the "
          f"checks, {without:.2f} s without: the checks cost "
          f"{ratio(with_checks - without, without):+.2%} "
          f"(runs: {', '.join(f'{x:.1f}' for x in ab['with checks'])} with; "
          f"{', '.join(f'{x:.1f}' for x in ab['without'])} without)")

    wall = ingest.wall_s
    md5, multipart = digest["md5"], digest["multipart"]
    verified, plain = min(loads["verified"]), min(loads["plain"])
    extra_load = max(0.0, verified - plain)
    rows = [
        ("download check, MD5 ETag (CPU s)", md5["seconds"]),
        (f"download check, multipart ETag, {multipart['candidates']} part sizes (CPU s)",
         multipart["seconds"]),
        ("load check, sha256 of the Parquet (CPU s)", hashed["seconds"]),
        ("load with its check minus without (wall s, best of "
         f"{args.repeat})", extra_load),
    ]
    print(f"\n  raw {digest['bytes'] / 1e6:,.1f} MB, Parquet {hashed['bytes'] / 1e6:,.1f} MB; "
          f"loads: {plain:.2f} s plain, {verified:.2f} s verified")
    for what, seconds in rows:
        print(f"  {what:<72} {seconds:6.2f} s  = {ratio(seconds, wall):6.2%} of IngestMonth")
    # What a month pays, at worst: every check's CPU on the critical path (they run on
    # helper threads beside the transfer and the load, so the wall cost is at most this).
    worst = max(md5["seconds"], multipart["seconds"]) + max(hashed["seconds"], extra_load)
    verdict = "met" if ratio(worst, wall) <= TARGET else "MISSED"
    print(f"  {'all checks of a month, at worst':<72} {worst:6.2f} s  = "
          f"{ratio(worst, wall):6.2%} of IngestMonth (target <= {TARGET:.0%}: {verdict})")
    out = bench.work / "integrity-results.json"
    out.write_text(json.dumps({"rows": args.rows, "ingest_wall_s": wall, "digest": digest,
                               "parquet_hash": hashed, "loads": loads, "ingest_ab": ab,
                               "worst_ratio": ratio(worst, wall)}, indent=2) + "\n")
    print(f"  results: {out}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
