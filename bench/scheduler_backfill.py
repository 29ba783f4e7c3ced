"""Part B of ``bench_scheduler.py``: scheduling a long backfill on a fresh luigid, from an
empty lake, against a source whose every download stalls: seconds until the first task
runs, the tasks luigid knows, the CPU of the worker and of luigid; then ``Worker.add``
alone under cProfile."""

from __future__ import annotations

import contextlib
import os
import pstats
import shutil
import signal
import subprocess
import time
from datetime import date
from pathlib import Path

from measure import (
    child,
    run_child,
    stats,
)
from scheduler_luigid import (
    BIN,
    SERVICES,
    Json,
    Luigid,
    Span,
    backfill_args,
    env_for,
    lake_settings,
    luigid,
    months,
)
from scheduler_noop import SCRIPT


def stall_mirror_root(work: Path, span: Span) -> Path:
    """Every month of ``span`` (10 years by default) and the zones, as placeholder files
    (never sent)."""
    from pipeline.core.datasets import SERVICES as REGISTRY
    from pipeline.core.datasets import ZONES

    root = work / f"stall-release-{span[0]}-{span[1]}"
    ready = root / "ready.json"
    if ready.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    placeholder = root / "placeholder.bin"
    placeholder.parent.mkdir(parents=True)
    placeholder.write_bytes(b"\x1f\x8b" + b"\0" * 1022)
    for service in SERVICES:
        for month in months(*span):
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
           profile: bool, span: Span) -> Json:
    from tests.mirror import Fault, ReleaseMirror

    root = stall_mirror_root(work, span)
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
                                        timeout, span)
                runs[history].append(run)
                print(f"  {span[0]}..{span[1]} backfill, history {history}, {i + 1}/{repeat}: "
                      f"first RUNNING after {run['first_running_s']:.2f} s, {run['tasks']} "
                      f"tasks, CPU worker {run['worker_cpu_s']:.1f} s, luigid "
                      f"{run['luigid_cpu_s']:.1f} s",
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
                variants["profile"] = schedule_profile(server.config, lake, logs, span)
    variants["range"] = list(span)
    return variants


def schedule_once(server: Luigid, lake: Path, log_path: Path, timeout: float,
                  span: Span) -> Json:
    """Start the backfill, poll luigid until a task RUNS, count, kill the process group."""
    lake.mkdir(parents=True, exist_ok=True)
    timeline: list[tuple[float, int]] = []
    first_registered = first_running = None
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen([str(BIN / "luigi"), *backfill_args(*span)],
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


def schedule_profile(config: Path, lake: Path, logs: Path, span: Span) -> Json:
    """The scheduling phase alone (``Worker.add`` of the 10-year Backfill) under cProfile."""
    pstats_path = logs / "schedule.pstats"
    _, result = run_child(SCRIPT, "schedprof", {"pstats": str(pstats_path),
                                                "range": list(span)},
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
    span = a["range"]
    task = pipeline.Backfill(start=date.fromisoformat(span[0] + "-01"),
                             end=date.fromisoformat(span[1] + "-01"), services=SERVICES)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    ok = profiler.runcall(worker.add, task)
    seconds = time.perf_counter() - started
    profiler.dump_stats(a["pstats"])
    return {"ok": ok, "add_seconds": seconds, "tasks": len(worker._scheduled_tasks)}

