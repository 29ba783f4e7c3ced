"""Benchmark the PostgreSQL sink: the load of one 10M-row yellow month against ``psql \\copy``.

Both write the same month into the same table (the pipeline's DDL: the registry's columns,
``source_month``, its index) of the same throwaway server, from empty, one after the other:

- ``\\copy``: ``psql -c "\\copy yellow_tripdata (...) FROM 'month.csv' (FORMAT csv, HEADER)"``,
  the fastest native path, from the month's CSV (the generated CSV.gz, decompressed once);
- ``LoadPostgres``: ``pipeline.warehouses.postgres.load_month`` on the month's Parquet (made by
  ``pipeline.convert.parquetize.parquetize`` from the same CSV.gz): lock, delete the month, binary
  COPY streamed from record batches, count against the manifest, load log, commit.

Each runs in its own fresh process; its peak RSS is that process's ``ru_maxrss`` from
``os.wait4`` (``measure.py``). Targets: the load within 1.2 x the time of ``\\copy``, its
peak RSS within 400 MB. Generated files are cached under ``bench/out/postgres/``. Run from the
project root: ``.venv/bin/python bench/bench_postgres.py [--rows N] [--url postgresql://...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from measure import (
    PROJECT,
    Args,
    Measured,
    child,
    child_main,
    is_child,
    measure,
    ratio,
    ratio_text,
    run_child,
)

BENCH_DIR = Path(__file__).resolve().parent
MONTH = "2021-01"
TABLE = "yellow_tripdata"
TARGET_RATIO = 1.2
TARGET_RSS_MB = 400.0


# --------------------------------------------------------------------------- children
# Each runs in a fresh interpreter (`bench_postgres.py _child NAME ARGS_JSON RESULT_FILE`),
# so that the parent stays small: a child's ru_maxrss starts at its parent's RSS.


@child("generate")
def child_generate(a: Args) -> Args:
    from datetime import date

    from pipeline.demo.samples import write_month

    out, tmp = Path(a["out"]), Path(a["out"] + ".tmp")
    facts = write_month(tmp, "yellow", date(2021, 1, 1), a["rows"], seed=a["seed"])
    tmp.rename(out)
    return {"rows": facts.rows}


@child("parquetize")
def child_parquetize(a: Args) -> Args:
    from dataclasses import asdict
    from datetime import date

    from pipeline.convert.parquetize import parquetize
    from pipeline.core.datasets import SERVICES

    out, tmp = Path(a["out"]), Path(a["out"] + ".tmp")
    stats = parquetize(SERVICES["yellow"], date(2021, 1, 1), Path(a["raw"]), tmp)
    tmp.rename(out)
    return asdict(stats)


def _configure(url: str) -> None:
    import luigi.configuration

    luigi.configuration.get_config().set("postgres", "url", url)


@child("setup")
def child_setup(a: Args) -> Args:
    """Create the table, its index and the load log with the pipeline's own DDL; the table's
    names of the CSV's columns (a CSV month has no Parquet-only fee columns), for ``\\copy``."""
    import csv

    from pipeline.core.datasets import SERVICES
    from pipeline.tasks.load import postgres_settings
    from pipeline.warehouses import postgres as postgres_load
    from pipeline.warehouses.base import trips_table

    _configure(a["url"])
    service = SERVICES["yellow"]
    with postgres_load.connect(postgres_settings()) as con:
        postgres_load.ensure_tables(con, trips_table(service),
                                    postgres_load.DIALECT.trips_schema(service), True)
    with open(a["csv"], newline="") as f:
        header = next(csv.reader(f))
    return {"columns": service.canonical_header(header)}


@child("load")
def child_load(a: Args) -> Args:
    from datetime import date

    from pipeline.core.datasets import SERVICES
    from pipeline.core.manifest import Manifest
    from pipeline.core.version import __version__
    from pipeline.tasks.load import postgres_settings
    from pipeline.warehouses import postgres as postgres_load

    _configure(a["url"])
    service, stats = SERVICES["yellow"], a["stats"]
    manifest = Manifest(
        service="yellow", month=MONTH, source_url="", source_bytes=stats["source_bytes"],
        source_sha256=stats["source_sha256"], rows=stats["rows"],
        rows_outside_month=stats["rows_outside_month"], schema_fingerprint=service.fingerprint,
        parquet_bytes=stats["parquet_bytes"], parquet_sha256=stats["parquet_sha256"],
        row_groups=stats["row_groups"], pipeline_version=__version__, created_at="")
    started = time.perf_counter()
    rows = postgres_load.load_month(service, date(2021, 1, 1), Path(a["parquet"]), manifest,
                                    postgres_settings())
    return {"rows": rows, "work_s": time.perf_counter() - started}


# --------------------------------------------------------------------------- measuring


class Bench:
    """The work directory; every measured process logs to ``logs/NAME.log``."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def measure(self, argv: list[str], name: str, env: dict[str, str] | None = None
                ) -> Measured:
        """Run argv to completion from the project root; exit on failure."""
        return measure(argv, self.logs / f"{name}.log", PROJECT, env)

    def child(self, name: str, args: Args) -> tuple[Measured, Args]:
        """Run one child function in a fresh interpreter; exit on failure."""
        return run_child(__file__, name, args, self.logs / f"{name}.log")


def _shown(path: Path) -> str:
    return str(path.relative_to(PROJECT)) if path.is_relative_to(PROJECT) else str(path)


def cached(path: Path, sidecar_key: Args, make: Any) -> Args:
    """``make()`` unless ``path`` and its JSON sidecar already match ``sidecar_key``."""
    sidecar = path.with_name(path.name + ".json")
    if path.exists() and sidecar.exists():
        known = json.loads(sidecar.read_text())
        if all(known.get(k) == v for k, v in sidecar_key.items()):
            print(f"  reusing {_shown(path)}", flush=True)
            return known
    started = time.perf_counter()
    facts = {**sidecar_key, **make()}
    sidecar.write_text(json.dumps(facts, indent=2))
    print(f"  made {_shown(path)} in {time.perf_counter() - started:.1f}s",
          flush=True)
    return facts


def prepare(bench: Bench, rows: int, seed: int) -> tuple[Path, Path, Args]:
    """The month as CSV.gz (generated), as plain CSV (for \\copy) and as Parquet."""
    stem = f"yellow_{MONTH}_{rows}rows"
    raw, csv, parquet = (bench.work / f"{stem}.csv.gz", bench.work / f"{stem}.csv",
                         bench.work / f"{stem}.parquet")
    key = {"rows": rows, "seed": seed}
    cached(raw, key, lambda: bench.child("generate", {"out": str(raw), **key})[1])

    def decompress() -> Args:
        with open(str(csv) + ".tmp", "wb") as out:
            subprocess.run(["gzip", "-dc", str(raw)], stdout=out, check=True)
        os.replace(str(csv) + ".tmp", csv)
        return {"bytes": csv.stat().st_size}

    key = {"rows": rows, "seed": seed, "raw_bytes": raw.stat().st_size}
    cached(csv, key, decompress)
    stats = cached(parquet, key, lambda: bench.child(
        "parquetize", {"raw": str(raw), "out": str(parquet)})[1])
    return csv, parquet, stats


class Server:
    """The server under test: a throwaway cluster, or ``--url`` (then psql needs PG* env)."""

    def __init__(self, url: str | None) -> None:
        self.cluster = None
        if url:
            self.url, self.psql, self.env = url, "psql", dict(os.environ)
            return
        sys.path.insert(0, str(PROJECT))
        from tests.fixtures_postgres import Cluster, find_bin_dir

        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise SystemExit("no PostgreSQL binaries: run `make system-deps` or pass --url")
        self.cluster = Cluster.start(bin_dir)
        self.cluster.execute("CREATE DATABASE bench")
        self.url = self.cluster.url("bench")
        self.psql = str(bin_dir / "psql")
        self.env = {**os.environ, "PGPASSWORD": self.cluster.password}

    def sql(self, statement: str) -> str:
        return subprocess.run([self.psql, "-X", "-q", "-t", "-A", "-d", self.url, "-c",
                               statement], env=self.env, check=True, capture_output=True,
                              text=True).stdout.strip()

    def empty_table(self) -> None:
        """The same starting point for both: an empty table, dirty pages flushed."""
        self.sql(f"TRUNCATE {TABLE}; DELETE FROM pipeline_loads")
        self.sql("CHECKPOINT")

    def stop(self) -> None:
        if self.cluster:
            self.cluster.stop()


def main(argv: list[str]) -> int:
    if is_child(argv):
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url", help="an existing server's database (default: a throwaway "
                        "cluster); its password from PGPASSWORD or ~/.pgpass")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / "out" / "postgres")
    args = parser.parse_args(argv)
    bench = Bench(args.work_dir.resolve())

    print(f"preparing the month ({args.rows:,} rows)", flush=True)
    csv, parquet, stats = prepare(bench, args.rows, args.seed)
    server = Server(args.url)
    try:
        _, setup = bench.child("setup", {"url": server.url, "csv": str(csv)})
        # The table's names: PostgreSQL's columns are in lower case (issue 28).
        columns = ", ".join(f'"{c.lower()}"' for c in setup["columns"])

        print("\\copy of the CSV", flush=True)
        server.empty_table()
        copy = bench.measure(
            [server.psql, "-X", "-q", "-d", server.url, "-c",
             f"\\copy {TABLE} ({columns}) FROM '{csv}' WITH (FORMAT csv, HEADER true)"],
            "copy", env=server.env)
        copy_s, copy_rss = copy.wall_s, copy.peak_rss_mb
        copy_rows = int(server.sql(f"SELECT count(*) FROM {TABLE}"))

        print("LoadPostgres (load_month) of the Parquet", flush=True)
        server.empty_table()
        load_process, load = bench.child("load", {"url": server.url, "parquet": str(parquet),
                                                  "stats": stats})
        load_wall, load_rss = load_process.wall_s, load_process.peak_rss_mb
        server_version = server.sql("SHOW server_version")
    finally:
        server.stop()

    load_ratio = ratio(load["work_s"], copy_s)
    results = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "postgresql": server_version},
        "rows": args.rows, "csv_bytes": csv.stat().st_size,
        "parquet_bytes": stats["parquet_bytes"],
        "copy": {"seconds": copy_s, "peak_rss_mb": copy_rss, "rows": copy_rows},
        "load": {"seconds": load["work_s"], "process_seconds": load_wall,
                 "peak_rss_mb": load_rss, "rows": load["rows"]},
        "ratio": load_ratio,
        "targets": {"ratio": TARGET_RATIO, "peak_rss_mb": TARGET_RSS_MB},
    }
    (bench.work / "results.json").write_text(json.dumps(results, indent=2))

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    copy_label, load_label = "psql \\copy (CSV)", "LoadPostgres (Parquet)"
    print(f"\n{'':<28}{'seconds':>9}{'peak RSS MB':>13}{'rows':>13}")
    print(f"{copy_label:<28}{copy_s:9.2f}{copy_rss:13.1f}{copy_rows:13,}")
    print(f"{load_label:<28}{load['work_s']:9.2f}{load_rss:13.1f}{load['rows']:13,}")
    print(f"{'  its whole process':<28}{load_wall:9.2f}")
    if copy_rows != args.rows or load["rows"] != args.rows:
        print(f"ROWS DIFFER: expected {args.rows:,}")
    print(f"\nload / copy = {ratio_text(load_ratio, '')} (target <= {TARGET_RATIO}: "
          f"{verdict(load_ratio <= TARGET_RATIO)}); load peak RSS {load_rss:.0f} MB "
          f"(target <= {TARGET_RSS_MB:.0f}: {verdict(load_rss <= TARGET_RSS_MB)})")
    print(f"results: {_shown(bench.work / 'results.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
