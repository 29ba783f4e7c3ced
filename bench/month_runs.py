"""What ``bench_month.py``'s parts share: the measured runs and their record, the sample
months and the release they are served from, the mirror's process, the luigi config of a
project run, and the seconds of each stage read back from its stamped luigi log."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from measure import (
    PROJECT,
    PYTHON,
    Args,
    Measured,
    child_argv,
    run_child,
)
from month_children import FILE_NAME, MONTH, SERVICE

BENCH_DIR = Path(__file__).resolve().parent
# The script whose child functions (month_children) a Bench runs: it registers them.
SCRIPT = BENCH_DIR / "bench_month.py"
MB = 1 << 20
BACKFILL_MONTHS = [f"2020-{m:02d}" for m in range(1, 13)]


@dataclass
class Run:
    """One measured child process."""

    section: str
    contender: str
    rep: int
    wall_s: float
    peak_rss_mb: float
    returncode: int
    rows: int | None = None
    work_s: float | None = None
    detail: Args = field(default_factory=dict)


class Bench:
    """Runs children, keeps their logs under ``work/logs`` and every Run for the report."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.runs: list[Run] = []

    def child(self, name: str, args: Args, log_name: str) -> tuple[Measured, Args]:
        """Run one child function in a fresh interpreter; fail loudly if it fails."""
        return run_child(SCRIPT, name, args, self.logs / f"{log_name}.log")

    def record(self, run: Run, expected_rows: int) -> Run:
        self.runs.append(run)
        work = f"{run.work_s:7.2f}s work" if run.work_s is not None else " " * 12
        ok = "" if run.rows == expected_rows else f"  ROWS {run.rows} != {expected_rows}!"
        print(f"  {run.section:<6} {run.contender:<12} #{run.rep}: {run.wall_s:7.2f}s wall "
              f"{work} {run.peak_rss_mb:8.1f} MB{ok}", flush=True)
        return run



def sample_file(bench: Bench, rows: int, seed: int) -> Path:
    """The generated month of ``rows`` rows, reused when its sidecar matches."""
    path = bench.work / f"{SERVICE}_{MONTH}_{rows}rows.csv.gz"
    sidecar = path.with_suffix(".json")
    if sidecar.exists() and path.exists():
        meta = json.loads(sidecar.read_text())
        if (meta.get("rows"), meta.get("seed"), meta.get("bytes")) == (
                rows, seed, path.stat().st_size):
            print(f"reusing {path.name} ({rows:,} rows, {path.stat().st_size / MB:,.0f} MiB)")
            return path
    print(f"generating {path.name} ({rows:,} rows)...", flush=True)
    measured, result = bench.child("generate", {"path": str(path), "rows": rows, "seed": seed},
                                   f"generate-{rows}")
    meta = {"rows": result["rows"], "seed": seed, "bytes": path.stat().st_size,
            "generate_s": round(measured.wall_s, 1), "facts": result["facts"]}
    sidecar.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"  done in {measured.wall_s:.0f}s: {meta['bytes'] / MB:,.0f} MiB")
    return path


def start_mirror(bench: Bench, root: Path, bandwidth: int = 0
                 ) -> tuple[subprocess.Popen[bytes], Args]:
    """The ReleaseMirror in its own process, so it never counts in a measured RSS; it sends
    each file at ``bandwidth`` bytes a second (0: as fast as it can)."""
    ready = bench.logs / "mirror-ready.json"
    ready.unlink(missing_ok=True)
    argv = child_argv(SCRIPT, "mirror", {"root": str(root), "ready": str(ready),
                                           "bandwidth": bandwidth},
                      bench.logs / "mirror.json")
    log = open(bench.logs / "mirror.log", "wb")  # noqa: SIM115 (lives as long as the mirror)
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                            cwd=PROJECT)
    log.close()
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the mirror did not start: see logs/mirror.log")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())



def stop_mirror(mirror: subprocess.Popen[bytes]) -> None:
    """Close the mirror child's stdin (its signal to stop) and wait for it."""
    assert mirror.stdin is not None
    mirror.stdin.close()
    try:
        mirror.wait(timeout=10)
    except subprocess.TimeoutExpired:
        mirror.kill()
        mirror.wait()

def release_dir(bench: Bench, raw: Path, rows: int) -> Path:
    """``{service}/{file}`` + ``misc/taxi_zone_lookup.csv``, as ``write_release`` lays out."""
    root = bench.work / f"release-{rows}"
    target = root / SERVICE / FILE_NAME
    if not (target.exists() and target.stat().st_ino == raw.stat().st_ino):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(raw, target)
        except OSError:
            shutil.copyfile(raw, target)
    write_zones(root)
    return root


def write_zones(root: Path) -> None:
    """The zone lookup of a release (``misc/taxi_zone_lookup.csv``), written once, by a
    child interpreter: this process imports no pipeline code."""
    zones = root / "misc" / "taxi_zone_lookup.csv"
    if not zones.exists():
        code = ("import sys; from pathlib import Path;"
                " from pipeline.demo.samples import write_zones; write_zones(Path(sys.argv[1]))")
        subprocess.run([PYTHON, "-c", code, str(zones)], check=True, cwd=PROJECT)


def project_run(run_dir: Path, urls: Args, extra: dict[str, dict[str, str]] | None
                ) -> dict[str, str]:
    """An empty ``run_dir`` for one run of the project, and the environment that points
    luigi at its config there (``luigi_config``)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    return {**os.environ, "LUIGI_CONFIG_PATH": str(luigi_config(run_dir, urls, extra))}


LOGGING_INI = """[loggers]
keys = root

[handlers]
keys = stderr

[formatters]
keys = stamped

[logger_root]
level = INFO
handlers = stderr

[handler_stderr]
class = StreamHandler
level = INFO
formatter = stamped
args = (sys.stderr,)

[formatter_stamped]
format = %(asctime)s %(levelname)s: %(message)s
"""


def luigi_config(run_dir: Path, urls: Args, extra: dict[str, dict[str, str]] | None = None
                 ) -> Path:
    """The project's luigi.cfg with the source, lake and warehouse pointed at this run, and
    a logging config that stamps every line with the time (``[core] logging_conf_file``),
    so the workers' "running"/"done" lines give each task's seconds. ``extra`` sets more
    keys (section -> key -> value)."""
    cfg = configparser.RawConfigParser()
    cfg.optionxform = str  # type: ignore[assignment,method-assign]
    cfg.read(PROJECT / "luigi.cfg")
    logging_ini = run_dir / "bench-logging.ini"
    logging_ini.write_text(LOGGING_INI)
    settings = {"source": {"base_url": urls["base_url"], "zones_url": urls["zones_url"]},
                "lake": {"root": str(run_dir / "lake")},
                "duckdb": {"path": str(run_dir / "warehouse.duckdb")},
                "core": {"logging_conf_file": str(logging_ini)}}
    for section, values in [*settings.items(), *(extra or {}).items()]:
        if not cfg.has_section(section):
            cfg.add_section(section)
        for key, value in values.items():
            cfg.set(section, key, value)
    path = run_dir / "bench-luigi.cfg"
    with open(path, "w") as f:
        cfg.write(f)
    return path


_TASK_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO: \[pid (\d+)\] "
                        r"Worker Worker\(.*?\) (running|done) +(\w+)\((.*)\)\s*$")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
STAGES = {"DownloadMonth": "download", "ParquetizeMonth": "convert", "LoadDuckDB": "load",
          "Zones": "zones", "LoadDuckDBZones": "zones"}
STAGE_NAMES = {"download": "download + verify", "convert": "convert (parquetize)",
               "load": "load (DuckDB)", "zones": "zones (fetch + load)",
               "overhead": "scheduling + processes"}


def task_spans(log: Path) -> list[tuple[str, str, float, float]]:
    """(task family, parameters, start, end) of every task a luigi log shows running and
    done, in epoch seconds from the stamped "running"/"done" lines."""
    started: dict[tuple[str, str], float] = {}
    spans = []
    for line in log.read_text(errors="replace").splitlines():
        m = _TASK_LINE.match(line)
        if not m:
            continue
        stamp, _, what, family, params = m.groups()
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if what == "running":
            started[(family, params)] = at
        elif (family, params) in started:
            spans.append((family, params, started.pop((family, params)), at))
    return spans


def stage_seconds(log: Path, started_at: float, wall_s: float) -> dict[str, float]:
    """Seconds per stage of one IngestMonth run (tasks of a stage added up), and the rest
    of the wall time (``overhead``): of it, ``startup`` (process start to the first log
    line: interpreter, imports, config) and ``exit`` (the last task done to the process's
    end); the remainder is scheduling, completeness checks and the forked processes."""
    stages = dict.fromkeys(("download", "convert", "load", "zones"), 0.0)
    spans = task_spans(log)
    for family, _, start, end in spans:
        if family in STAGES:
            stages[STAGES[family]] += end - start
    stages["overhead"] = wall_s - sum(stages.values())
    stamps = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
              for line in log.read_text(errors="replace").splitlines()
              if (m := _STAMP.match(line))]
    if stamps and spans:
        stages["startup"] = stamps[0] - started_at
        stages["exit"] = started_at + wall_s - max(end for *_, end in spans)
    return {k: round(v, 3) for k, v in stages.items()}


def overrides(settings: list[str]) -> dict[str, dict[str, str]]:
    """``SECTION.KEY=VALUE`` strings as section -> key -> value."""
    out: dict[str, dict[str, str]] = {}
    for item in settings:
        name, sep, value = item.partition("=")
        section, dot, key = name.partition(".")
        if not (sep and dot and section and key):
            raise SystemExit(f"--luigi-set {item!r} is not SECTION.KEY=VALUE")
        out.setdefault(section, {})[key] = value
    return out


def backfill_release(bench: Bench, rows: int, seed: int, months: list[str]) -> Path:
    """The yellow ``months`` (of 2020, which the CSV mirror publishes) of ``rows`` rows and the
    zones, laid out as the mirror serves them; generated once, reused after."""
    root = bench.work / f"backfill-{rows}"
    for key in months:
        path = root / SERVICE / f"{SERVICE}_tripdata_{key}.csv.gz"
        sidecar = path.with_suffix(".json")
        if path.exists() and sidecar.exists() and json.loads(sidecar.read_text()) == {
                "rows": rows, "seed": seed, "bytes": path.stat().st_size}:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {path.name} ({rows:,} rows)...", flush=True)
        bench.child("generate", {"path": str(path), "rows": rows, "seed": seed, "month": key},
                    f"generate-{key}-{rows}")
        sidecar.write_text(json.dumps({"rows": rows, "seed": seed,
                                       "bytes": path.stat().st_size}))
    write_zones(root)
    return root


def paced(part: str, bandwidth_mb: float) -> tuple[str, str]:
    """A whole-process part's section name and the start of its log names: ``backfill``
    for both as fast as the local server sends; ``backfill@25MB/s`` and ``backfill-25MBps``
    at a source's pace, so that each pace keeps its own logs (``e2e`` alike)."""
    if not bandwidth_mb:
        return part, part
    return f"{part}@{bandwidth_mb:g}MB/s", f"{part}-{bandwidth_mb:g}MBps"


def part_of(section: str) -> str:
    """``e2e`` for ``e2e@25MB/s``: the part a section is a pace of."""
    return section.partition("@")[0]
