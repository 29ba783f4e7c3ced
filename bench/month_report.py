"""``bench_month.py``'s report: the best run of each contender, the ratios against each
peer (best against best, and the median of the paired repeats), the targets met or missed,
and the end-to-end seconds per stage beside the script's."""

from __future__ import annotations

from measure import (
    Args,
    best,
    median,
    ratio,
    ratio_text,
)
from month_runs import Run, part_of

TARGET_TIME_VS_DUCKDB = 0.70
TARGET_CONVERT_RSS_MB = 500.0
TARGET_E2E_VS_HANDWRITTEN = 0.90
TARGET_E2E_RSS_MB = 600.0
TARGET_BACKFILL_THROUGHPUT = 1.2  # the project's months per minute / the script's, at least
TARGET_NORMALIZE = 0.88  # normalize / plain pyarrow (median), no regression from issue 8

CONVERTERS = {
    "parquetize": "parquetize (project)",
    "duckdb": "DuckDB COPY",
    "reference": "pyarrow read_csv (ref)",
}
E2E = {"ingest": "IngestMonth (luigi)", "handwritten": "script (curl + DuckDB)",
       "backfill": "backfill --workers 2", "script_backfill": "script month by month"}


def size_label(rows: int) -> str:
    """``10M`` for 10,000,000 rows, ``0.3M`` for 300,000: the name of a conversion part."""
    return f"{rows / 1e6:g}M"


def best_of(runs: list[Run], section: str, contender: str) -> Args | None:
    """Best (lowest) times and the highest peak RSS over the repeats; the stage seconds
    (``detail``) are the best run's."""
    mine = [r for r in runs if (r.section, r.contender) == (section, contender)]
    if not mine:
        return None
    works = [r.work_s for r in mine if r.work_s is not None]
    fastest = min(mine, key=lambda r: r.wall_s)
    return {
        "section": section, "contender": contender, "rows": mine[0].rows, "runs": len(mine),
        "wall_s": round(best([r.wall_s for r in mine]), 2),
        "work_s": round(best(works), 2) if works else None,
        "peak_rss_mb": round(max(r.peak_rss_mb for r in mine), 1),
        "detail": fastest.detail,
    }


def whole_process(section: str) -> bool:
    """End to end and backfill parts compare whole processes; conversions, the work inside."""
    return part_of(section) in ("e2e", "backfill")


def _seconds(section: str, wall_s: float, work_s: float | None) -> float:
    """The time a part compares: the whole process for end to end and backfill, the work
    inside the child for conversions."""
    return wall_s if whole_process(section) or work_s is None else work_s


def _time(entry: Args) -> float:
    return _seconds(entry["section"], entry["wall_s"], entry["work_s"])


def paired_ratios(runs: list[Run], section: str, project: str, peer: str, *,
                  throughput: bool = False) -> list[float]:
    """The project's run over the peer's run of the same repeat, repeat by repeat.

    The two run back to back, so each pair meets about the same machine; the median of
    these ratios is not moved by one contender alone finding a quiet moment, which the
    best-against-best ratio is. ``throughput``: the peer's time over the project's."""
    def times(contender: str) -> dict[int, float]:
        return {r.rep: _seconds(section, r.wall_s, r.work_s)
                for r in runs if (r.section, r.contender) == (section, contender)}

    mine, theirs = times(project), times(peer)
    return [ratio(theirs[rep], mine[rep]) if throughput else ratio(mine[rep], theirs[rep])
            for rep in sorted(mine.keys() & theirs.keys())]


def print_stages(ingest: Args, script: Args) -> None:
    """The best IngestMonth run's seconds per stage beside the best script run's."""
    stages, d = ingest["detail"], script["detail"]
    script_overhead = script["wall_s"] - d["fetch_s"] - d["copy_s"] - d["ctas_s"]
    rows = [
        # With [pipeline] convert_while_downloading (the default) DownloadMonth converts
        # too, and ParquetizeMonth only takes its Parquet.
        ("download (+ convert)", stages["download"], "curl -sSf", d["fetch_s"]),
        ("ParquetizeMonth", stages["convert"], "COPY to Parquet", d["copy_s"]),
        ("load (DuckDB)", stages["load"], "CREATE TABLE AS", d["ctas_s"]),
        ("zones (fetch + load)", stages["zones"], "", None),
        ("scheduling + processes", stages["overhead"], "python + duckdb start", script_overhead),
        ("  of which start", stages.get("startup", 0.0), "", None),
        ("  of which exit", stages.get("exit", 0.0), "", None),
        ("wall", ingest["wall_s"], "wall", script["wall_s"]),
        ("CPU (user + system)", stages.get("cpu_s", 0.0), "CPU (user + system)",
         d.get("cpu_s")),
    ]
    print(f"\nEnd to end ({ingest['section']}), seconds per stage (best run of each; "
          "project stages from the luigi log's running/done lines)")
    for name, mine, theirs_name, theirs in rows:
        theirs_text = f"{theirs:7.2f}" if theirs is not None else f"{'':7}"
        print(f"  {name:<24} {mine:7.2f}    {theirs_name:<22} {theirs_text}")
    if min(stages["overhead"], stages.get("exit", 0.0)) < 0:
        # The stages come from the log's wall-clock stamps, the wall time from a monotonic
        # clock: a wall clock stepped during the run makes the stages disagree with it.
        print("  (the wall clock moved during this run: its stages add up to more than its "
              "wall time, so they are not exact)")


def report(runs: list[Run], normalized: Args | None = None) -> tuple[list[Args], list[Args]]:
    """The summary rows and the targets, both printed and returned for the JSON."""
    sections = list(dict.fromkeys(r.section for r in runs if not whole_process(r.section)))
    wholes = list(dict.fromkeys(r.section for r in runs if whole_process(r.section)))
    e2es = [s for s in wholes if part_of(s) == "e2e"]
    backfills = [s for s in wholes if part_of(s) == "backfill"]
    summary = [e for s in sections for c in CONVERTERS if (e := best_of(runs, s, c))]
    summary += [e for section in [*e2es, *backfills] for c in E2E
                if (e := best_of(runs, section, c))]
    by = {(e["section"], e["contender"]): e for e in summary}
    targets: list[Args] = []

    def meets(value: float, limit: float, at_least: bool) -> bool:
        return value >= limit if at_least else value <= limit

    def target(what: str, value: float, limit: float, unit: str = "", at_least: bool = False,
               pairs: list[float] | None = None) -> None:
        entry = {"what": what, "value": round(value, 3), "target": limit,
                 "ok": meets(value, limit, at_least), "unit": unit, "at_least": at_least}
        if pairs:
            middle = median(pairs)
            entry.update(pairs=[round(p, 3) for p in pairs], pairs_median=round(middle, 3),
                         pairs_median_ok=meets(middle, limit, at_least))
        targets.append(entry)

    for section in sections:
        project, duck, ref = (by.get((section, c)) for c in CONVERTERS)
        if not project:
            continue
        for e in (duck, ref):
            if e:
                e["project_ratio"] = round(ratio(_time(project), _time(e)), 3)
                e["project_ratio_wall"] = round(ratio(project["wall_s"], e["wall_s"]), 3)
        if duck:
            target(f"{section} time parquetize / DuckDB", duck["project_ratio"],
                   TARGET_TIME_VS_DUCKDB,
                   pairs=paired_ratios(runs, section, "parquetize", "duckdb"))
        target(f"{section} parquetize peak RSS", project["peak_rss_mb"], TARGET_CONVERT_RSS_MB,
               " MB")
    ingests = [(by[(s, "ingest")], by.get((s, "handwritten"))) for s in e2es if (s, "ingest") in by]
    for ingest, hand in ingests:
        section = ingest["section"]
        if hand:
            hand["project_ratio"] = round(ratio(ingest["wall_s"], hand["wall_s"]), 3)
            target(f"{section} time IngestMonth / script", hand["project_ratio"],
                   TARGET_E2E_VS_HANDWRITTEN,
                   pairs=paired_ratios(runs, section, "ingest", "handwritten"))
        target(f"{section} IngestMonth peak RSS", ingest["peak_rss_mb"], TARGET_E2E_RSS_MB,
               " MB")
    paired = [(by[(s, "backfill")], by[(s, "script_backfill")]) for s in backfills
              if (s, "backfill") in by and (s, "script_backfill") in by]
    for backfill, script in paired:
        # Throughput: months per minute, so higher is better (script wall / project wall).
        script["project_ratio"] = round(ratio(script["wall_s"], backfill["wall_s"]), 3)
        target(f"{backfill['section']} throughput project / script", script["project_ratio"],
               TARGET_BACKFILL_THROUGHPUT, " x", at_least=True,
               pairs=paired_ratios(runs, backfill["section"], "backfill", "script_backfill",
                                   throughput=True))
    if normalized:
        target("normalize / plain pyarrow (median)", normalized["time_ratio"], TARGET_NORMALIZE)

    names = {**CONVERTERS, **E2E}
    print("\n" + "=" * 86)
    print("Best time and max peak RSS over the repeats. 'ratio' = project time / this row's time"
          "\n(conversions: work inside the child; e2e: whole process wall time; backfill: "
          "project\nthroughput / this row's, months per minute).")
    header = (f"{'part':<16} {'contender':<24} {'rows':>11} {'work s':>8} {'wall s':>8} "
              f"{'peak RSS MB':>11} {'ratio':>7}")
    print(header)
    print("-" * len(header))
    for e in summary:
        work = f"{e['work_s']:8.2f}" if e["work_s"] is not None else f"{'-':>8}"
        versus = ratio_text(e["project_ratio"], "") if "project_ratio" in e else ""
        rows = f"{e['rows']:,}" if e["rows"] is not None else "?"
        print(f"{e['section']:<16} {names[e['contender']]:<24} {rows:>11} {work} "
              f"{e['wall_s']:8.2f} {e['peak_rss_mb']:11.1f} {versus:>7}")
    for ingest, hand in ingests:
        if hand:
            print_stages(ingest, hand)
    for backfill, script in paired:
        print(f"\n{backfill['section']}: project {backfill['detail']['months_per_min']:.2f} "
              f"months/min, "
              f"{backfill['detail']['cpu_s']} CPU s (task seconds "
              f"{backfill['detail']['task_seconds']}); script "
              f"{script['detail']['months_per_min']:.2f} months/min, "
              f"{script['detail']['cpu_s']} CPU s (fetch "
              f"{script['detail']['fetch_s']:.1f} s, COPY {script['detail']['copy_s']:.1f} s, "
              f"CTAS/INSERT {script['detail']['ctas_s']:.1f} s)")
    if normalized:
        print(f"\nNormalize ({normalized['rows']:,} rows): {normalized['normalize_median_s']} s "
              f"vs plain {normalized['plain_median_s']} s (medians), normalize peak RSS "
              f"{normalized['normalize_peak_rss_mb']} MB")
    print("\nTargets (best against best; then the median of the repeats' ratios, each "
          "repeat's\nproject run against the peer's run beside it)")
    for t in targets:
        sign = ">=" if t["at_least"] else "<="
        line = (f"  {t['what']:<44} {t['value']:>9.2f}{t['unit']:<3} {sign} "
                f"{t['target']:g}{t['unit']}   {'OK' if t['ok'] else 'MISSED':<6}")
        if "pairs" in t:
            runs_text = ", ".join(f"{p:.2f}" for p in t["pairs"])
            line += (f"  paired median {t['pairs_median']:.2f} "
                     f"{'OK' if t['pairs_median_ok'] else 'MISSED'} ({runs_text})")
        print(line)
    print("=" * 86)
    return summary, targets

