"""Benchmark issue 8: normalising a TLC Parquet month to the registry's schema.

Two contenders convert the same 10 M-row TLC-style yellow month (``tests.tlc_samples``:
2021-08 form, nanosecond timestamps, doubles for passenger_count and RatecodeID, no
``cbd_congestion_fee``) into canonical Parquet, each in its own fresh subprocess:

- ``normalize``: the project's step, ``pipeline.convert.normalize.normalize`` (streaming);
- ``plain``: ``pyarrow.parquet.read_table`` of the whole file, canonical names and the
  missing column added, ``Table.cast(schema)``, ``write_table`` (the whole month in memory).

Peak RSS comes from ``os.wait4`` on each child (``measure.py``). This main process imports only
the standard library: a child's ``ru_maxrss`` starts at its parent's RSS. Runs are interleaved
(``--repeat`` each); the best and the median are reported. Targets: normalize ≤ 1.0 times the
plain version's time and ≤ 400 MB peak RSS. Run ``python bench/bench_parquet_source.py``
from the project root; results go to ``bench/out/parquet_source-results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from measure import (
    Args,
    best,
    child,
    child_main,
    is_child,
    median,
    ratio,
    ratio_text,
    run_child,
    timed,
)

BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "out" / "parquet_source"
RESULTS = BENCH_DIR / "out" / "parquet_source-results.json"
MONTH = "2021-08"
TARGET_TIME_RATIO = 1.0
TARGET_RSS_MB = 400.0


# --------------------------------------------------------------------------- children


@child("generate")
@timed
def child_generate(a: Args) -> Args:
    from datetime import date

    from tests.tlc_samples import write_tlc_month

    schema = write_tlc_month(Path(a["raw"]), "yellow", date(2021, 8, 1), a["rows"])
    return {"rows": a["rows"], "types": {f.name: str(f.type) for f in schema}}


@child("normalize")
@timed
def child_normalize(a: Args) -> Args:
    from datetime import date

    from pipeline.convert.normalize import normalize
    from pipeline.core.datasets import YELLOW

    stats = normalize(YELLOW, date(2021, 8, 1), Path(a["raw"]), Path(a["out"]))
    return {"rows": stats.rows, "row_groups": stats.row_groups}


@child("plain")
@timed
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


@child("compare")
@timed
def child_compare(a: Args) -> Args:
    import pyarrow.parquet as pq

    left, right = pq.ParquetFile(a["left"]), pq.ParquetFile(a["right"])
    same = left.schema_arrow == right.schema_arrow
    for x, y in zip(left.iter_batches(1 << 18), right.iter_batches(1 << 18), strict=True):
        same = same and x.equals(y)
    return {"same": same}


# --------------------------------------------------------------------------- parent


def measured_child(work: Path, name: str, args: Args) -> Args:
    """Run one child; its result with its wall time and peak RSS (MB) from os.wait4."""
    measured, result = run_child(__file__, name, args, work / "logs" / f"{name}.log")
    return {**result, "wall": measured.wall_s, "rss_mb": measured.peak_rss_mb}


def main() -> int:
    if is_child(sys.argv[1:]):
        return child_main(sys.argv[2:5])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=OUT,
                        help="the generated month, outputs and logs (default "
                             "bench/out/parquet_source, cached)")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="JSON results (default bench/out/parquet_source-results.json)")
    a = parser.parse_args()
    work = a.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    raw = work / f"yellow_tripdata_{MONTH}_{a.rows}rows.parquet"
    if not raw.exists():
        print(f"generating {raw.name} ...", flush=True)
        measured_child(work, "generate", {"raw": str(raw), "rows": a.rows})
    runs: dict[str, list[Args]] = {"normalize": [], "plain": []}
    for i in range(a.repeat):
        for name in runs:
            out = work / f"{name}.parquet"
            r = measured_child(work, name, {"raw": str(raw), "out": str(out)})
            if r["rows"] != a.rows:
                raise SystemExit(f"{name} wrote {r['rows']} rows, expected {a.rows}")
            runs[name].append(r)
            print(f"run {i + 1} {name:9} {r['wall']:6.2f} s  {r['rss_mb']:7.1f} MB", flush=True)
    same = measured_child(work, "compare", {"left": str(work / "normalize.parquet"),
                                            "right": str(work / "plain.parquet")})["same"]
    summary = {name: {"best_s": best([r["wall"] for r in rs]),
                      "median_s": median([r["wall"] for r in rs]),
                      "peak_rss_mb": max(r["rss_mb"] for r in rs)} for name, rs in runs.items()}
    time_ratio = ratio(summary["normalize"]["median_s"], summary["plain"]["median_s"])
    rss = summary["normalize"]["peak_rss_mb"]
    print(f"\nrows {a.rows:,}, raw {raw.stat().st_size / 1e6:,.1f} MB, identical output: {same}")
    for name, s in summary.items():
        print(f"{name:9} best {s['best_s']:6.2f} s  median {s['median_s']:6.2f} s  "
              f"peak RSS {s['peak_rss_mb']:7.1f} MB")
    print(f"time normalize/plain (median) {ratio_text(time_ratio, '')} "
          f"(target ≤ {TARGET_TIME_RATIO}): "
          f"{'met' if time_ratio <= TARGET_TIME_RATIO else 'MISSED'}")
    print(f"peak RSS normalize {rss:.0f} MB (target ≤ {TARGET_RSS_MB:.0f}): "
          f"{'met' if rss <= TARGET_RSS_MB else 'MISSED'}")
    a.results.parent.mkdir(parents=True, exist_ok=True)
    a.results.write_text(json.dumps(
        {"rows": a.rows, "identical": same, "summary": summary, "runs": runs,
         "time_ratio": time_ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
