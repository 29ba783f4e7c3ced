"""Benchmark issue 8: normalising a TLC Parquet month to the registry's schema.

Two contenders convert the same 10 M-row TLC-style yellow month (``pipeline.demo.tlc_samples``:
2021-08 form, nanosecond timestamps, doubles for passenger_count and RatecodeID, no
``cbd_congestion_fee``) into canonical Parquet, each in its own fresh subprocess:

- ``normalize``: the project's step, ``pipeline.convert.normalize.normalize`` (streaming);
- ``plain``: ``pyarrow.parquet.read_table`` of the whole file, canonical names and the
  missing column added, ``Table.cast(schema)``, ``write_table`` (the whole month in memory).

Peak RSS comes from ``os.wait4`` on each child. This main process imports only the
standard library: a child's ``ru_maxrss`` starts at its parent's RSS. Runs are interleaved
(``--repeat`` each); the best and the median are reported. Targets: normalize ≤ 1.0 times the
plain version's time and ≤ 400 MB peak RSS. Run ``python bench/bench_parquet_source.py``
from the project root; results go to ``bench/out/parquet_source-results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT = BENCH_DIR.parent
OUT = BENCH_DIR / "out" / "parquet_source"
MONTH = "2021-08"
CHILD = "_child"
TARGET_TIME_RATIO = 1.0
TARGET_RSS_MB = 400.0

Args = dict[str, Any]


# --------------------------------------------------------------------------- children


def child_generate(a: Args) -> Args:
    from datetime import date

    from pipeline.demo.tlc_samples import write_tlc_month

    facts = write_tlc_month(Path(a["raw"]), "yellow", date(2021, 8, 1), a["rows"])
    return {"rows": facts.rows, "types": facts.types}


def child_normalize(a: Args) -> Args:
    from datetime import date

    from pipeline.convert.normalize import normalize
    from pipeline.core.datasets import YELLOW

    stats = normalize(YELLOW, date(2021, 8, 1), Path(a["raw"]), Path(a["out"]))
    return {"rows": stats.rows, "row_groups": stats.row_groups}


def child_plain(a: Args) -> Args:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.core.datasets import YELLOW

    table = pq.read_table(a["raw"])
    by_folded = {n.casefold(): n for n in table.column_names}
    columns = [table.column(by_folded[f.name.casefold()]) if f.name.casefold() in by_folded
               else pa.nulls(table.num_rows, f.type) for f in YELLOW.schema]
    table = pa.table(columns, names=YELLOW.columns).cast(YELLOW.schema)
    pq.write_table(table, a["out"], compression="snappy", row_group_size=1 << 20)
    return {"rows": table.num_rows}


def child_compare(a: Args) -> Args:
    import pyarrow.parquet as pq

    left, right = pq.ParquetFile(a["left"]), pq.ParquetFile(a["right"])
    same = left.schema_arrow == right.schema_arrow
    for x, y in zip(left.iter_batches(1 << 18), right.iter_batches(1 << 18), strict=True):
        same = same and x.equals(y)
    return {"same": same}


CHILDREN = {"generate": child_generate, "normalize": child_normalize, "plain": child_plain,
            "compare": child_compare}


def child_main(name: str, args: str, result: str) -> int:
    started = time.perf_counter()
    out = CHILDREN[name](json.loads(args))
    out["seconds"] = time.perf_counter() - started
    Path(result).write_text(json.dumps(out))
    return 0


# --------------------------------------------------------------------------- parent


def run_child(name: str, args: Args) -> Args:
    """Run one child; its wall time and peak RSS (MB) from os.wait4, and its result."""
    result = OUT / f".{name}.json"
    result.unlink(missing_ok=True)
    argv = [sys.executable, str(Path(__file__).resolve()), CHILD, name, json.dumps(args),
            str(result)]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=PROJECT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"child {name} failed (status {status})")
    return {**json.loads(result.read_text()), "wall": wall, "rss_mb": usage.ru_maxrss / 1024}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        return child_main(*sys.argv[2:5])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    a = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    raw = OUT / f"yellow_tripdata_{MONTH}_{a.rows}rows.parquet"
    if not raw.exists():
        print(f"generating {raw.name} ...", flush=True)
        run_child("generate", {"raw": str(raw), "rows": a.rows})
    runs: dict[str, list[Args]] = {"normalize": [], "plain": []}
    for i in range(a.repeat):
        for name in runs:
            out = OUT / f"{name}.parquet"
            r = run_child(name, {"raw": str(raw), "out": str(out)})
            if r["rows"] != a.rows:
                raise SystemExit(f"{name} wrote {r['rows']} rows, expected {a.rows}")
            runs[name].append(r)
            print(f"run {i + 1} {name:9} {r['wall']:6.2f} s  {r['rss_mb']:7.1f} MB", flush=True)
    same = run_child("compare", {"left": str(OUT / "normalize.parquet"),
                                 "right": str(OUT / "plain.parquet")})["same"]
    summary = {name: {"best_s": min(r["wall"] for r in rs),
                      "median_s": statistics.median(r["wall"] for r in rs),
                      "peak_rss_mb": max(r["rss_mb"] for r in rs)} for name, rs in runs.items()}
    ratio = summary["normalize"]["median_s"] / summary["plain"]["median_s"]
    rss = summary["normalize"]["peak_rss_mb"]
    print(f"\nrows {a.rows:,}, raw {raw.stat().st_size / 1e6:,.1f} MB, identical output: {same}")
    for name, s in summary.items():
        print(f"{name:9} best {s['best_s']:6.2f} s  median {s['median_s']:6.2f} s  "
              f"peak RSS {s['peak_rss_mb']:7.1f} MB")
    print(f"time normalize/plain (median) {ratio:.2f} (target ≤ {TARGET_TIME_RATIO}): "
          f"{'met' if ratio <= TARGET_TIME_RATIO else 'MISSED'}")
    print(f"peak RSS normalize {rss:.0f} MB (target ≤ {TARGET_RSS_MB:.0f}): "
          f"{'met' if rss <= TARGET_RSS_MB else 'MISSED'}")
    (BENCH_DIR / "out" / "parquet_source-results.json").write_text(json.dumps(
        {"rows": a.rows, "identical": same, "summary": summary, "runs": runs,
         "time_ratio": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
