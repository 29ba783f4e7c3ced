"""``bench_scheduler.py``'s report: the table of both parts, printed from the results."""

from __future__ import annotations

from scheduler_luigid import SERVICES, Json, months

TARGET_NOOP_SECONDS = 3.0


def report(results: Json) -> None:
    print("\n== scheduler benchmark ==  (2 shared cores: compare best and median)")
    a = results.get("noop")
    if a:
        print(f"\nA. no-op re-run, {len(months(*a['range']))} months x {len(SERVICES)} services "
              f"(target <= {TARGET_NOOP_SECONDS:.0f} s), whole-process wall time:")
        print(f"   {'scheduler':<16}{'best s':>8}{'median s':>10}{'worst s':>9}  target")
        for key, label in (("local", "--local-scheduler"), ("central", "luigid")):
            s = a[key]
            verdict = "met" if s["median"] <= TARGET_NOOP_SECONDS else "MISSED"
            print(f"   {label:<16}{s['best']:>8.2f}{s['median']:>10.2f}{s['worst']:>9.2f}"
                  f"  {verdict} (median)")
        imports = a.get("imports")
        if imports:
            print(f"   of which start-up: python {imports['python']['best']:.2f} s, "
                  f"import luigi {imports['import_luigi']['best']:.2f} s, "
                  f"import pipeline {imports['import_pipeline']['best']:.2f} s (best of 3)")
        count = a.get("inproc")
        if count:
            print(f"   in-process: import {count['import_seconds']:.2f} s, luigi.build "
                  f"{count['build_seconds']:.2f} s; calls (inclusive time):")
            for key, c in count["calls"].items():
                print(f"     {c['n']:>5} x {key:<40}{c['seconds']:>7.2f} s")
            if count.get("not_counted"):
                print(f"     not counted (no longer in the pipeline): "
                      f"{', '.join(count['not_counted'])}")
            alt = count.get("alternatives")
            if alt:
                ms = alt["per_check_ms_median"]
                print(f"   each LoadDuckDB check opens DuckDB: open {ms['open']:.1f} ms, query "
                      f"{ms['query']:.1f} ms, close {ms['close']:.1f} ms (median); "
                      f"{alt['checks']} checks = "
                      f"{sum(alt['per_check_total_s'].values()):.2f} s")
                print(f"   alternatives: the same {alt['checks']} complete() on one shared "
                      f"read-only connection {alt['shared_connection_complete_s']:.2f} s; "
                      f"one grouped query per table {alt['grouped_queries_s'] * 1000:.0f} ms")
        prof = a.get("profile")
        if prof:
            p = prof["profile"]
            print(f"   cProfile of luigi.build (build {prof['build_seconds']:.2f} s under the "
                  f"profiler); pipeline functions by cumulative time:")
            for r in p["pipeline_cumulative"][:10]:
                print(f"     {r['ncalls']:>6} {r['cumtime']:>7.3f} s  {r['function']}")
            print("   top self time, all functions:")
            for r in p["self_time"][:8]:
                print(f"     {r['ncalls']:>6} {r['tottime']:>7.3f} s  {r['function'][:90]}")
            print("   (cProfile does not see duckdb's C calls: their time is the self time of "
                  "the caller,\n    e.g. tenacity's __call__ around duckdb.connect in _open, "
                  "con.close() in connect)")
    b = results.get("schedule")
    if b:
        span = b["range"]
        print(f"\nB. backfill {span[0]}..{span[1]} ({len(months(*span))} months x "
              f"{len(SERVICES)} services, empty lake, stalled source) on a fresh luigid, "
              "seconds from the luigi process start:")
        print(f"   {'task history':<14}{'first known':>14}{'all known':>14}{'first RUNNING':>15}"
              f"{'CPU worker':>14}{'CPU luigid':>14}   (best / median)")
        for history in ("on", "off"):
            v = b.get(history)
            if not v:
                continue
            cells = [f"{v[k]['best']:.2f}/{v[k]['median']:.2f}"
                     for k in ("first_registered", "all_registered", "first_running",
                               "worker_cpu", "luigid_cpu")]
            print(f"   {history:<14}{cells[0]:>14}{cells[1]:>14}{cells[2]:>15}{cells[3]:>14}"
                  f"{cells[4]:>14}")
        for history in ("on", "off"):
            if b.get(history) and b[history]["runs"]:
                counts = b[history]["runs"][-1]["counts"]
                print(f"   tasks scheduled (PENDING + RUNNING), history {history}: "
                      f"{b[history]['tasks']}  {counts}")
        prof = b.get("profile")
        if prof:
            print(f"   cProfile of Worker.add alone (history on): {prof['add_seconds']:.2f} s "
                  f"for {prof['tasks']} tasks under the profiler:")
            for label, part in prof["parts"].items():
                print(f"     {part['ncalls']:>6} {part['cumtime']:>7.2f} s  {label}")

