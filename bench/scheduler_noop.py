"""Part A of ``bench_scheduler.py``: a no-op re-run of a complete backfill. The complete
state is built once and cached; the re-run is timed as a whole process with the local
scheduler and against luigid; then, in fresh interpreters, the start-up imports, every
``complete()`` call counted by family, two alternatives to the warehouse checks, and a
cProfile of ``luigi.build``."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pstats
import shutil
import statistics
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from measure import (
    PROJECT,
    PYTHON,
    child,
    log_tail,
    measure,
    run_child,
    stats,
)
from scheduler_luigid import (
    BIN,
    SERVICES,
    Json,
    Span,
    backfill_args,
    env_for,
    lake_settings,
    luigid,
    months,
)
from servers import write_config

BENCH_DIR = Path(__file__).resolve().parent
# The script whose child functions (here and in scheduler_backfill) are run: it registers them.
SCRIPT = BENCH_DIR / "bench_scheduler.py"
UNREACHABLE = "http://127.0.0.1:9/unreachable"  # the discard port: refused at once
STATE_FORMAT = 1


def build_state(work: Path, rows: int, logs: Path, span: Span) -> Json:
    """The complete backfill of ``span`` (36 months x 3 services by default), built once and
    reused while its description matches."""
    state = work / "state"
    want = {"format": STATE_FORMAT, "range": list(span), "services": list(SERVICES),
            "rows": rows}
    marker = state / "complete.json"
    if marker.exists() and json.loads(marker.read_text()).get("want") == want:
        print(f"complete state reused: {state}", flush=True)
        return json.loads(marker.read_text())
    from pipeline.demo import samples
    from tests.mirror import ReleaseMirror

    shutil.rmtree(state, ignore_errors=True)
    release = work / f"release-{rows}-{span[0]}-{span[1]}"
    the_months = months(*span)
    if not (release / "ready.json").exists():
        shutil.rmtree(release, ignore_errors=True)
        started = time.perf_counter()
        samples.write_release(release, {s: the_months for s in SERVICES},
                              {s: rows for s in SERVICES})
        (release / "ready.json").write_text(json.dumps({"rows": rows}))
        print(f"release of {len(the_months) * len(SERVICES)} months generated in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    with ReleaseMirror(release) as mirror:
        config = write_config(state / "build.cfg",
                              lake_settings(state, mirror.base_url, mirror.zones_url))
        seconds = measure([str(BIN / "luigi"), *backfill_args(*span),
                           "--local-scheduler", "--workers", "2"], logs / "build.log", state,
                          env_for(config), what="building the complete state").wall_s
    info = {"want": want, "build_seconds": seconds,
            "lake_files": sum(1 for p in (state / "lake").rglob("*") if p.is_file()),
            "warehouse_bytes": (state / "warehouse.duckdb").stat().st_size}
    marker.write_text(json.dumps(info, indent=2))
    print(f"complete state built in {seconds:.1f} s: {state}", flush=True)
    return info


def noop_run(config: Path, cwd: Path, log: Path, local: bool, span: Span) -> float:
    """Whole-process wall time of the no-op Backfill; refuses a run that did anything."""
    command = [str(BIN / "luigi"), *backfill_args(*span), "--workers", "2"]
    if local:
        command.append("--local-scheduler")
    run = measure(command, log, cwd, env_for(config), check=False, timeout=600)
    if run.exit_code != 0 or "Did not run any tasks" not in log.read_text(errors="replace"):
        raise SystemExit(f"the no-op run was not a no-op (exit {run.exit_code}); see {log}:\n"
                         f"{log_tail(log)}")
    return run.wall_s


def part_a(work: Path, logs: Path, repeat: int, span: Span) -> Json:
    state = work / "state"
    settings = lake_settings(state, UNREACHABLE, UNREACHABLE + "/misc/taxi_zone_lookup.csv")
    local_config = write_config(state / "noop-local.cfg", settings)
    local, central = [], []
    with luigid(work / "luigid-a", settings) as server:
        for i in range(repeat):
            local.append(noop_run(local_config, state, logs / f"noop-local-{i}.log", True,
                                  span))
            central.append(noop_run(server.config, state, logs / f"noop-central-{i}.log",
                                    False, span))
            print(f"  no-op {i + 1}/{repeat}: local {local[-1]:.2f} s, "
                  f"central {central[-1]:.2f} s", flush=True)
        scheduled = server.count("DONE")
    return {"local": stats(local), "central": stats(central),
            "central_tasks_known_to_luigid": scheduled, "config": str(local_config),
            "range": list(span)}


def import_seconds(config: Path, cwd: Path, logs: Path) -> Json:
    """Interpreter start alone, and with ``import pipeline`` (what every luigi run pays)."""
    def wall(code: str) -> float:
        return measure([PYTHON, "-c", code], logs / "import.log", cwd, env_for(config)).wall_s

    bare = [wall("pass") for _ in range(3)]
    luigi_only = [wall("import luigi") for _ in range(3)]
    pipeline = [wall("import pipeline") for _ in range(3)]
    return {"python": stats(bare), "import_luigi": stats(luigi_only),
            "import_pipeline": stats(pipeline)}


def in_process(config: Path, cwd: Path, logs: Path, profile: bool, span: Span) -> Json:
    """The no-op in a fresh interpreter, with counted complete() calls or under cProfile."""
    log = logs / ("inproc-profile.log" if profile else "inproc-count.log")
    pstats_path = str(logs / "noop.pstats") if profile else None
    _, result = run_child(SCRIPT, "inproc", {"pstats": pstats_path, "range": list(span)}, log,
                          cwd,
                          env_for(config))
    if profile:
        result["profile"] = profile_summary(logs / "noop.pstats")
    return result


def profile_summary(path: Path, top: int = 12) -> Json:
    """Top cumulative entries of the pipeline package, and top self-time entries overall."""
    raw = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    package = str(PROJECT / "pipeline") + os.sep

    def name(key: tuple[str, int, str]) -> str:
        filename, line, function = key
        if filename.startswith(package):
            filename = "pipeline/" + filename[len(package):]
        elif "site-packages" in filename:
            filename = filename.split("site-packages" + os.sep, 1)[1]
        return f"{filename}:{line}({function})" if line else function

    rows = [{"function": name(k), "ncalls": v[1], "tottime": v[2], "cumtime": v[3],
             "in_pipeline": k[0].startswith(package)} for k, v in raw.items()]
    ours = sorted((r for r in rows if r["in_pipeline"]), key=lambda r: -r["cumtime"])
    return {"pipeline_cumulative": ours[:top],
            "self_time": sorted(rows, key=lambda r: -r["tottime"])[:top]}


# The pipeline's functions whose calls the no-op's count shows, where they live now
# (module, attribute): one the pipeline no longer has is listed as not counted, and the
# benchmark goes on.
COUNTED = (
    ("pipeline.warehouses.duckdb", "_open", "duckdb connect (read-only)"),
    ("pipeline.warehouses.duckdb", "loaded", "duckdb_load.loaded (load log + count)"),
    ("pipeline.lake.month_targets", "ManifestTarget.read", "manifest read (ManifestTarget.read)"),
)


def count_calls(module: str, attribute: str, wrap: Any) -> bool:
    """Replace ``module``'s ``attribute`` (``name`` or ``Class.name``) with ``wrap`` of it;
    False when there is no such attribute."""
    try:
        owner: Any = importlib.import_module(module)
    except ImportError:
        return False
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part, None)
    function = getattr(owner, name, None)
    if function is None:
        return False
    setattr(owner, name, wrap(function))
    return True


@child("inproc")
def child_inproc(a: Json) -> Json:
    """The no-op Backfill via luigi.build: its complete() calls counted, or (with
    ``a["pstats"]``) under cProfile."""
    started = time.perf_counter()
    import luigi

    import pipeline
    from pipeline.warehouses import duckdb as duckdb_load

    imported = time.perf_counter() - started
    calls: dict[str, list[float]] = {}

    def counted(label: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                key = label(args[0]) if callable(label) else label
                entry = calls.setdefault(key, [0, 0.0])
                entry[0] += 1
                entry[1] += time.perf_counter() - t0
        return wrapper

    profile_path = a["pstats"]
    open_duckdb = duckdb_load._open
    if not profile_path:  # counting wrappers would blur the profile
        family = lambda task: f"{task.task_family}.complete()"  # noqa: E731
        luigi.Task.complete = counted(family, luigi.Task.complete)  # type: ignore[method-assign]
        luigi.WrapperTask.complete = counted(  # type: ignore[method-assign]
            family, luigi.WrapperTask.complete)
        # A sink task judges its completeness from facts (pipeline.tasks.completeness),
        # without luigi.Task.complete: counted as its own family.
        from pipeline.tasks.load import MonthLoad

        MonthLoad.complete = counted(family, MonthLoad.complete)  # type: ignore[method-assign]
        not_counted = [f"{module}:{name}" for module, name, label in COUNTED
                       if not count_calls(module, name, lambda f, label=label: counted(label, f))]
    span = a["range"]
    task = pipeline.Backfill(start=date.fromisoformat(span[0] + "-01"),
                             end=date.fromisoformat(span[1] + "-01"), services=SERVICES)
    t0 = time.perf_counter()
    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
        ok = profiler.runcall(luigi.build, [task], local_scheduler=True, workers=2,
                              log_level="WARNING")
        profiler.dump_stats(profile_path)
    else:
        ok = luigi.build([task], local_scheduler=True, workers=2, log_level="WARNING")
    build = time.perf_counter() - t0
    result: Json = {
        "not_counted": [] if profile_path else not_counted,
        "ok": ok, "import_seconds": imported, "build_seconds": build,
        "calls": {k: {"n": int(n), "seconds": s} for k, (n, s) in sorted(calls.items())},
    }
    if not profile_path:
        result["alternatives"] = check_alternatives(open_duckdb, span)
    return result


def check_alternatives(open_duckdb: Any, span: Span) -> Json:
    """The 108 LoadDuckDB checks as today (a connection each: open / query / close split),
    with one shared read-only connection, and as one grouped query per table."""
    import duckdb

    import pipeline
    from pipeline import config
    from pipeline.core.datasets import SERVICES as REGISTRY
    from pipeline.tasks.load import duckdb_settings
    from pipeline.warehouses import duckdb as duckdb_load
    from pipeline.warehouses.base import LOAD_LOG, SOURCE_MONTH, quote, trips_table

    path = Path(config.duckdb().path).absolute()
    settings = duckdb_settings()
    pairs = [(s, m) for s in SERVICES for m in months(*span)]
    split: dict[str, list[float]] = {"open": [], "query": [], "close": []}
    for service, month in pairs:
        t0 = time.perf_counter()
        con = open_duckdb(path, True, settings)
        t1 = time.perf_counter()
        con.execute(
            f"SELECT l.rows, l.checksum, (SELECT count(*) FROM "
            f"{quote(trips_table(REGISTRY[service]))} WHERE {SOURCE_MONTH} = ?) FROM {LOAD_LOG} "
            f"l WHERE l.table_name = ? AND l.{SOURCE_MONTH} IS NOT DISTINCT FROM ?",
            [month, trips_table(REGISTRY[service]), month]).fetchone()
        t2 = time.perf_counter()
        con.close()
        split["open"].append(t1 - t0)
        split["query"].append(t2 - t1)
        split["close"].append(time.perf_counter() - t2)
    shared = open_duckdb(path, True, settings)

    @contextlib.contextmanager
    def connect(settings: object, read_only: bool = False
                ) -> Iterator[duckdb.DuckDBPyConnection]:
        yield shared

    duckdb_load.connect = connect
    tasks = [pipeline.LoadDuckDB(service=s, month=m) for s, m in pairs]
    t0 = time.perf_counter()
    complete = sum(task.complete() for task in tasks)
    shared_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    grouped = 0
    for service in SERVICES:
        table = trips_table(REGISTRY[service])
        grouped += len(shared.execute(
            f"SELECT l.{SOURCE_MONTH}, l.rows, l.checksum, c.n FROM {LOAD_LOG} l LEFT JOIN "
            f"(SELECT {SOURCE_MONTH}, count(*) AS n FROM {quote(table)} GROUP BY 1) c "
            f"USING ({SOURCE_MONTH}) WHERE l.table_name = ?", [table]).fetchall())
    grouped_seconds = time.perf_counter() - t0
    shared.close()
    return {
        "checks": len(pairs),
        "per_check_ms_median": {k: 1000 * statistics.median(v) for k, v in split.items()},
        "per_check_total_s": {k: sum(v) for k, v in split.items()},
        "shared_connection_complete_s": shared_seconds, "shared_connection_complete": complete,
        "grouped_queries_s": grouped_seconds, "grouped_rows": grouped,
    }

