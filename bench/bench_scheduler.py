"""Benchmark scheduling: a no-op re-run of a complete backfill, and luigid with a long one.

Part A: a complete backfill of 36 months x 3 services (2019-01..2021-12, yellow, green,
fhv; small generated months) on the local lake + DuckDB is re-run as a whole process,
``luigi --module pipeline Backfill ... --workers 2``, with ``--local-scheduler`` and
against a real luigid (``taxi-pipeline scheduler``) started here, ``--repeat`` times each,
interleaved. Nothing may run: the source URL of these runs is unreachable and the output
must say "Did not run any tasks". Target: <= 3 s. The same no-op then runs in-process
(fresh interpreter), once counting every ``complete()`` call by task family, once under
cProfile, to show where the time goes.

Part B: a 10-year backfill (2011-01..2020-12 x 3 services) on an empty lake against a
fresh luigid, with a source mirror on which every download stalls: seconds from the
``luigi`` process start until luigid shows a RUNNING task, the number of tasks scheduled,
then the process group is killed. ``--sched-repeat`` times.

The complete state of part A is built once (``write_release`` + the pipeline's own
Backfill) and cached under ``bench/out/scheduler/``. Results: a table on stdout and
``bench/out/scheduler-results.json``. Run ``python bench/bench_scheduler.py --help``.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import json
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from measure import (
    PROJECT,
    PYTHON,
    child,
    child_main,
    is_child,
    log_tail,
    measure,
    run_child,
    stats,
)

BENCH_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SERVICES = ("yellow", "green", "fhv")
NOOP_RANGE = ("2019-01", "2021-12")
SCHED_RANGE = ("2011-01", "2020-12")
TARGET_NOOP_SECONDS = 3.0
UNREACHABLE = "http://127.0.0.1:9/unreachable"  # the discard port: refused at once
STATE_FORMAT = 1
Json = dict[str, Any]


def months(start: str, end: str) -> list[date]:
    """Every month from ``start`` to ``end`` (YYYY-MM, both included)."""
    first, last = date.fromisoformat(start + "-01"), date.fromisoformat(end + "-01")
    out = []
    while first <= last:
        out.append(first)
        first = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return out


def backfill_args(start: str, end: str) -> list[str]:
    return ["--module", "pipeline", "Backfill", "--start", start, "--end", end,
            "--services", ",".join(SERVICES)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, settings: dict[str, dict[str, str]]) -> Path:
    """The project's luigi.cfg with ``settings`` on top, as the tests write theirs."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(PROJECT / "luigi.cfg")
    parser.read_dict(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        parser.write(f)
    return path


def scheduler_settings(port: int, directory: Path) -> dict[str, dict[str, str]]:
    """[core]/[scheduler]/[task_history]/[luigid] for a luigid with its files in ``directory``."""
    return {
        "core": {"scheduler_host": "127.0.0.1", "scheduler_port": str(port)},
        "scheduler": {"state_path": str(directory / "state.pickle")},
        "task_history": {"db_connection": f"sqlite:///{directory / 'history.sqlite'}"},
        "luigid": {"logdir": str(directory / "logs")},
    }


def env_for(config: Path) -> dict[str, str]:
    return {**os.environ, "LUIGI_CONFIG_PATH": str(config)}


# --------------------------------------------------------------------------- luigid


class Luigid:
    """``taxi-pipeline scheduler --port P`` with its state, history and logs in a directory."""

    def __init__(self, directory: Path, config: Path, port: int) -> None:
        self.directory, self.config, self.port = directory, config, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = directory / "stderr.log"
        directory.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(BIN / "taxi-pipeline"), "scheduler", "--port", str(port)],
                cwd=directory, env=env_for(config), stdout=subprocess.DEVNULL, stderr=log,
                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.api("task_list", status="", upstream_status="")
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(
                        f"luigid did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.1)

    def api(self, method: str, **data: object) -> Any:
        query = urllib.parse.urlencode({"data": json.dumps(data)})
        with urllib.request.urlopen(f"{self.url}/api/{method}?{query}", timeout=30) as answer:
            return json.loads(answer.read())["response"]

    def count(self, status: str) -> int:
        """Tasks with ``status``: luigid answers a bare count when it exceeds max_shown_tasks."""
        answer = self.api("task_list", status=status, upstream_status="", max_shown_tasks=1)
        return int(answer["num_tasks"]) if "num_tasks" in answer else len(answer)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def luigid(directory: Path, settings: dict[str, dict[str, str]]) -> Iterator[Luigid]:
    """A fresh luigid (empty state); its config, ``.config``, is the workers' too."""
    shutil.rmtree(directory, ignore_errors=True)
    port = free_port()
    merged = {section: dict(values) for section, values in settings.items()}
    for section, values in scheduler_settings(port, directory).items():
        merged.setdefault(section, {}).update(values)
    config = write_config(directory / "luigi.cfg", merged)
    server = Luigid(directory, config, port)
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- part A


def lake_settings(state: Path, base_url: str, zones_url: str) -> dict[str, dict[str, str]]:
    return {
        # Every month of the range is served as the mirror's CSV, 2021-08 on included.
        "source": {"base_url": base_url, "zones_url": zones_url, "kind": "csv",
                   "timeout": "10", "retries": "1"},
        "lake": {"root": str(state / "lake")},
        "duckdb": {"path": str(state / "warehouse.duckdb")},
        "pipeline": {"sinks": "duckdb"},
    }


def build_state(work: Path, rows: int, logs: Path) -> Json:
    """The complete 36 x 3 backfill, built once and reused while its description matches."""
    state = work / "state"
    want = {"format": STATE_FORMAT, "range": list(NOOP_RANGE), "services": list(SERVICES),
            "rows": rows}
    marker = state / "complete.json"
    if marker.exists() and json.loads(marker.read_text()).get("want") == want:
        print(f"complete state reused: {state}", flush=True)
        return json.loads(marker.read_text())
    from pipeline.demo import samples
    from pipeline.demo.mirror import ReleaseMirror

    shutil.rmtree(state, ignore_errors=True)
    release = work / f"release-{rows}"
    the_months = months(*NOOP_RANGE)
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
        seconds = measure([str(BIN / "luigi"), *backfill_args(*NOOP_RANGE),
                           "--local-scheduler", "--workers", "2"], logs / "build.log", state,
                          env_for(config), what="building the complete state").wall_s
    info = {"want": want, "build_seconds": seconds,
            "lake_files": sum(1 for p in (state / "lake").rglob("*") if p.is_file()),
            "warehouse_bytes": (state / "warehouse.duckdb").stat().st_size}
    marker.write_text(json.dumps(info, indent=2))
    print(f"complete state built in {seconds:.1f} s: {state}", flush=True)
    return info


def noop_run(config: Path, cwd: Path, log: Path, local: bool) -> float:
    """Whole-process wall time of the no-op Backfill; refuses a run that did anything."""
    command = [str(BIN / "luigi"), *backfill_args(*NOOP_RANGE), "--workers", "2"]
    if local:
        command.append("--local-scheduler")
    run = measure(command, log, cwd, env_for(config), check=False, timeout=600)
    if run.exit_code != 0 or "Did not run any tasks" not in log.read_text(errors="replace"):
        raise SystemExit(f"the no-op run was not a no-op (exit {run.exit_code}); see {log}:\n"
                         f"{log_tail(log)}")
    return run.wall_s


def part_a(work: Path, logs: Path, repeat: int) -> Json:
    state = work / "state"
    settings = lake_settings(state, UNREACHABLE, UNREACHABLE + "/misc/taxi_zone_lookup.csv")
    local_config = write_config(state / "noop-local.cfg", settings)
    local, central = [], []
    with luigid(work / "luigid-a", settings) as server:
        for i in range(repeat):
            local.append(noop_run(local_config, state, logs / f"noop-local-{i}.log", True))
            central.append(noop_run(server.config, state, logs / f"noop-central-{i}.log",
                                    False))
            print(f"  no-op {i + 1}/{repeat}: local {local[-1]:.2f} s, "
                  f"central {central[-1]:.2f} s", flush=True)
        scheduled = server.count("DONE")
    return {"local": stats(local), "central": stats(central),
            "central_tasks_known_to_luigid": scheduled, "config": str(local_config)}


def import_seconds(config: Path, cwd: Path, logs: Path) -> Json:
    """Interpreter start alone, and with ``import pipeline`` (what every luigi run pays)."""
    def wall(code: str) -> float:
        return measure([PYTHON, "-c", code], logs / "import.log", cwd, env_for(config)).wall_s

    bare = [wall("pass") for _ in range(3)]
    luigi_only = [wall("import luigi") for _ in range(3)]
    pipeline = [wall("import pipeline") for _ in range(3)]
    return {"python": stats(bare), "import_luigi": stats(luigi_only),
            "import_pipeline": stats(pipeline)}


def in_process(config: Path, cwd: Path, logs: Path, profile: bool) -> Json:
    """The no-op in a fresh interpreter, with counted complete() calls or under cProfile."""
    log = logs / ("inproc-profile.log" if profile else "inproc-count.log")
    pstats_path = str(logs / "noop.pstats") if profile else None
    _, result = run_child(__file__, "inproc", {"pstats": pstats_path}, log, cwd,
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


@child("inproc")
def child_inproc(a: Json) -> Json:
    """The no-op Backfill via luigi.build: its complete() calls counted, or (with
    ``a["pstats"]``) under cProfile."""
    started = time.perf_counter()
    import luigi

    import pipeline
    from pipeline.tasks import lake_month as lake_tasks
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
        duckdb_load._open = counted("duckdb connect (read-only)", duckdb_load._open)
        duckdb_load.loaded = counted("duckdb_load.loaded (load log + count)",
                                     duckdb_load.loaded)
        lake_tasks.read_manifest = counted("read_manifest", lake_tasks.read_manifest)
    task = pipeline.Backfill(start=date.fromisoformat(NOOP_RANGE[0] + "-01"),
                             end=date.fromisoformat(NOOP_RANGE[1] + "-01"), services=SERVICES)
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
        "ok": ok, "import_seconds": imported, "build_seconds": build,
        "calls": {k: {"n": int(n), "seconds": s} for k, (n, s) in sorted(calls.items())},
    }
    if not profile_path:
        result["alternatives"] = check_alternatives(open_duckdb)
    return result


def check_alternatives(open_duckdb: Any) -> Json:
    """The 108 LoadDuckDB checks as today (a connection each: open / query / close split),
    with one shared read-only connection, and as one grouped query per table."""
    import duckdb

    import pipeline
    from pipeline import config
    from pipeline.core.datasets import SERVICES as REGISTRY
    from pipeline.warehouses import duckdb as duckdb_load
    from pipeline.warehouses.base import LOAD_LOG, SOURCE_MONTH, quote, trips_table

    path = Path(config.duckdb().path).absolute()
    pairs = [(s, m) for s in SERVICES for m in months(*NOOP_RANGE)]
    split: dict[str, list[float]] = {"open": [], "query": [], "close": []}
    for service, month in pairs:
        t0 = time.perf_counter()
        con = open_duckdb(path, True)
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
    shared = open_duckdb(path, True)

    @contextlib.contextmanager
    def connect(read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
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


# --------------------------------------------------------------------------- part B


def stall_mirror_root(work: Path) -> Path:
    """Every month of the 10-year range and the zones, as placeholder files (never sent)."""
    from pipeline.core.datasets import SERVICES as REGISTRY
    from pipeline.core.datasets import ZONES

    root = work / "stall-release"
    ready = root / "ready.json"
    if ready.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    placeholder = root / "placeholder.bin"
    placeholder.parent.mkdir(parents=True)
    placeholder.write_bytes(b"\x1f\x8b" + b"\0" * 1022)
    for service in SERVICES:
        for month in months(*SCHED_RANGE):
            file = root / service / f"{REGISTRY[service].file_stem(f'{month:%Y-%m}')}.csv.gz"
            file.parent.mkdir(parents=True, exist_ok=True)
            os.link(placeholder, file)
    (root / "misc").mkdir()
    os.link(placeholder, root / "misc" / ZONES.file_name)
    ready.write_text("{}")
    return root


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (``/proc/PID/stat``), 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def part_b(work: Path, logs: Path, repeat: int, timeout: float, histories: list[str],
           profile: bool) -> Json:
    from pipeline.demo.mirror import Fault, ReleaseMirror

    root = stall_mirror_root(work)
    names = [p.name for p in root.rglob("*") if p.is_file() and p.parent != root]
    variants: Json = {}
    with ReleaseMirror(root) as mirror:
        for name in names:  # every request for every file: headers, then silence
            mirror.inject(name, *[Fault(kind="stall", at=0, seconds=3600)] * 4)
        lake = work / "empty-lake"
        settings = lake_settings(lake, mirror.base_url, mirror.zones_url)
        settings["source"]["timeout"] = "3600"
        runs: dict[str, list[Json]] = {h: [] for h in histories}
        for i in range(repeat):
            for history in histories:  # interleaved
                settings["scheduler"] = {"record_task_history": str(history == "on").lower()}
                shutil.rmtree(lake, ignore_errors=True)
                with luigid(work / "luigid-b", settings) as server:
                    run = schedule_once(server, lake, logs / f"schedule-{history}-{i}.log",
                                        timeout)
                runs[history].append(run)
                print(f"  10-year backfill, history {history}, {i + 1}/{repeat}: first RUNNING "
                      f"after {run['first_running_s']:.2f} s, {run['tasks']} tasks, CPU worker "
                      f"{run['worker_cpu_s']:.1f} s, luigid {run['luigid_cpu_s']:.1f} s",
                      flush=True)
        for history, history_runs in runs.items():
            variants[history] = {
                "runs": history_runs,
                "tasks": history_runs[-1]["tasks"] if history_runs else 0,
                **{key: stats([r[f"{key}_s"] for r in history_runs])
                   for key in ("first_registered", "all_registered", "first_running",
                               "worker_cpu", "luigid_cpu")},
            }
        if profile:
            settings["scheduler"] = {"record_task_history": "true"}
            shutil.rmtree(lake, ignore_errors=True)
            lake.mkdir(parents=True)
            with luigid(work / "luigid-b", settings) as server:
                variants["profile"] = schedule_profile(server.config, lake, logs)
    return variants


def schedule_once(server: Luigid, lake: Path, log_path: Path, timeout: float) -> Json:
    """Start the backfill, poll luigid until a task RUNS, count, kill the process group."""
    lake.mkdir(parents=True, exist_ok=True)
    timeline: list[tuple[float, int]] = []
    first_registered = first_running = None
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen([str(BIN / "luigi"), *backfill_args(*SCHED_RANGE)],
                                   cwd=lake, env=env_for(server.config), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            while first_running is None:
                now = time.perf_counter() - started
                if now > timeout or process.poll() is not None:
                    raise SystemExit(f"no task RUNNING after {now:.1f} s (exit "
                                     f"{process.poll()}); see {log_path}")
                pending = server.count("PENDING")
                timeline.append((round(now, 3), pending))
                if pending and first_registered is None:
                    first_registered = now
                if pending and server.api("task_list", status="RUNNING", upstream_status=""):
                    first_running = time.perf_counter() - started
                    break
                time.sleep(0.05)
            worker_cpu = cpu_seconds(process.pid)
            luigid_cpu = cpu_seconds(server.process.pid)
            counts = {s: server.count(s) for s in ("PENDING", "RUNNING", "DONE", "FAILED")}
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    final = counts["PENDING"]
    all_registered = next((t for t, n in timeline if n >= final), first_running)
    return {"first_running_s": first_running, "first_registered_s": first_registered,
            "all_registered_s": all_registered, "worker_cpu_s": worker_cpu,
            "luigid_cpu_s": luigid_cpu, "counts": counts,
            "tasks": counts["PENDING"] + counts["RUNNING"],
            "timeline": timeline[:: max(1, len(timeline) // 40)]}


def schedule_profile(config: Path, lake: Path, logs: Path) -> Json:
    """The scheduling phase alone (``Worker.add`` of the 10-year Backfill) under cProfile."""
    pstats_path = logs / "schedule.pstats"
    _, result = run_child(__file__, "schedprof", {"pstats": str(pstats_path)},
                          logs / "schedule-profile.log", lake, env_for(config), timeout=900)
    raw = pstats.Stats(str(pstats_path)).stats  # type: ignore[attr-defined]
    wanted = {
        "worker._add_task (RPC add_task, incl. waiting)": ("luigi/worker.py", "_add_task"),
        "socket recv (waiting for luigid's answers)":
            ("~", "<method 'recv_into' of '_socket.socket' objects>"),
        "check_complete (complete() of each task)": ("luigi/worker.py", "check_complete"),
        "task.deps() / requires()": ("luigi/task.py", "deps"),
    }
    parts = {}
    for label, (file_part, function) in wanted.items():
        hits = [v for k, v in raw.items() if file_part in k[0] and k[2] == function]
        parts[label] = {"ncalls": sum(v[1] for v in hits),
                        "cumtime": max((v[3] for v in hits), default=0.0)}
    result["parts"] = parts
    return result


@child("schedprof")
def child_schedprof(a: Json) -> Json:
    """Worker.add of the 10-year Backfill on luigid, profiled into ``a["pstats"]``."""
    import cProfile

    import luigi.configuration
    import luigi.rpc
    import luigi.worker

    import pipeline

    settings = luigi.configuration.get_config()
    url = (f"http://{settings.get('core', 'scheduler_host')}:"
           f"{settings.get('core', 'scheduler_port')}")
    worker = luigi.worker.Worker(scheduler=luigi.rpc.RemoteScheduler(url), worker_processes=1)
    task = pipeline.Backfill(start=date.fromisoformat(SCHED_RANGE[0] + "-01"),
                             end=date.fromisoformat(SCHED_RANGE[1] + "-01"), services=SERVICES)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    ok = profiler.runcall(worker.add, task)
    seconds = time.perf_counter() - started
    profiler.dump_stats(a["pstats"])
    return {"ok": ok, "add_seconds": seconds, "tasks": len(worker._scheduled_tasks)}


# --------------------------------------------------------------------------- report


def report(results: Json) -> None:
    print("\n== scheduler benchmark ==  (2 shared cores: compare best and median)")
    a = results.get("noop")
    if a:
        print(f"\nA. no-op re-run, {len(months(*NOOP_RANGE))} months x {len(SERVICES)} services "
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
        print(f"\nB. 10-year backfill ({len(months(*SCHED_RANGE))} months x {len(SERVICES)} "
              f"services, empty lake, stalled source) on a fresh luigid, seconds from the "
              f"luigi process start:")
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if is_child(argv):
        code = child_main(argv[1:])
        if argv[1] == "schedprof":  # no run: the tasks stay PENDING on a luigid stopped next
            sys.stdout.flush()
            os._exit(code)
        return code
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1000,
                   help="rows of each generated month of part A (default 1000)")
    p.add_argument("--repeat", type=int, default=5,
                   help="no-op runs per scheduler in part A (default 5)")
    p.add_argument("--sched-repeat", type=int, default=3,
                   help="10-year scheduling runs in part B (default 3)")
    p.add_argument("--sched-timeout", type=float, default=600,
                   help="give up on part B's run after this many seconds (default 600)")
    p.add_argument("--sched-history", choices=("on", "off", "both"), default="both",
                   help="part B with luigid's task history on (luigi.cfg), off, or both "
                        "interleaved (default both)")
    p.add_argument("--skip-noop", action="store_true", help="skip part A")
    p.add_argument("--skip-schedule", action="store_true", help="skip part B")
    p.add_argument("--no-profile", action="store_true",
                   help="without the in-process count and cProfile runs")
    p.add_argument("--work-dir", type=Path, default=BENCH_DIR / "out" / "scheduler",
                   help="data, logs and luigid state (default bench/out/scheduler, cached)")
    p.add_argument("--results", type=Path, default=BENCH_DIR / "out" / "scheduler-results.json",
                   help="JSON results (default bench/out/scheduler-results.json)")
    args = p.parse_args(argv)
    work = args.work_dir.resolve()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: Json = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count(),
                     "load_before": os.getloadavg()}
    if not args.skip_noop:
        results["state"] = build_state(work, args.rows, logs)
        print("A. no-op re-runs (local and central, interleaved)", flush=True)
        noop = part_a(work, logs, args.repeat)
        state = work / "state"
        config = Path(noop["config"])
        if not args.no_profile:
            noop["imports"] = import_seconds(config, state, logs)
            noop["inproc"] = in_process(config, state, logs, profile=False)
            noop["profile"] = in_process(config, state, logs, profile=True)
        results["noop"] = noop
    if not args.skip_schedule:
        print("B. scheduling a 10-year backfill on luigid", flush=True)
        histories = ["on", "off"] if args.sched_history == "both" else [args.sched_history]
        results["schedule"] = part_b(work, logs, args.sched_repeat, args.sched_timeout,
                                     histories, not args.no_profile)
    results["load_after"] = os.getloadavg()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2))
    report(results)
    print(f"\nresults: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
