"""Benchmark one yellow month: CSV.gz -> Parquet, then IngestMonth end to end.

Part 1 (10 M rows) and part 2 (20 M rows) time three converters of the same CSV.gz, each
in its own fresh subprocess so that its peak RSS is its own:

- ``parquetize``: the project's step, ``pipeline.convert.parquetize.parquetize``;
- ``duckdb``: ``COPY (SELECT * FROM read_csv(..., columns={...})) TO ... (FORMAT parquet)``;
- ``reference``: the course's ``pyarrow.csv.read_csv`` of the whole file + ``write_table``.

Part 3 runs ``luigi --module pipeline IngestMonth`` (DuckDB sink) against a local HTTP mirror
(in another process) and a hand-written ``curl`` + DuckDB script, each from an empty lake
and warehouse.

Peak RSS comes from ``os.wait4`` on each child (its own ``ru_maxrss``, including any
processes it waited for; ``measure.py``). This main process imports only the standard library:
a child's ``ru_maxrss`` starts at its parent's RSS (Linux keeps the high-water mark across exec).
Run ``python bench/bench_month.py --help`` from the project root.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from measure import (
    PROJECT,
    PYTHON,
    Args,
    Measured,
    best,
    child,
    child_argv,
    child_main,
    is_child,
    log_tail,
    measure,
    median,
    ratio,
    ratio_text,
    run_child,
)

BENCH_DIR = Path(__file__).resolve().parent
SERVICE = "yellow"
MONTH = "2021-01"
FILE_NAME = f"{SERVICE}_tripdata_{MONTH}.csv.gz"
MB = 1 << 20

TARGET_TIME_VS_DUCKDB = 0.70
TARGET_CONVERT_RSS_MB = 500.0
TARGET_E2E_VS_HANDWRITTEN = 0.90
TARGET_E2E_RSS_MB = 600.0
TARGET_BACKFILL_THROUGHPUT = 1.2  # the project's months per minute / the script's, at least
TARGET_NORMALIZE = 0.88  # normalize / plain pyarrow (median), no regression from issue 8

BACKFILL_MONTHS = [f"2020-{m:02d}" for m in range(1, 13)]

CONVERTERS = {
    "parquetize": "parquetize (project)",
    "duckdb": "DuckDB COPY",
    "reference": "pyarrow read_csv (ref)",
}
E2E = {"ingest": "IngestMonth (luigi)", "handwritten": "script (curl + DuckDB)",
       "backfill": "backfill --workers 2", "script_backfill": "script month by month"}


# --------------------------------------------------------------------------- children
# Each runs in a fresh interpreter (`bench_month.py _child NAME ARGS_JSON RESULT_FILE`),
# imports only what its contender needs, and writes a JSON result.


def _self_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sql_str(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


@child("generate")
def child_generate(a: Args) -> Args:
    """Write the sample month with ``pipeline.demo.samples.write_month`` (tmp name, then rename)."""
    from datetime import date

    from pipeline.demo.samples import write_month

    path = Path(a["path"])
    tmp = path.with_name(f".{path.name}.tmp")
    year, month = (int(x) for x in a.get("month", MONTH).split("-"))
    started = time.perf_counter()
    facts = write_month(tmp, SERVICE, date(year, month, 1), a["rows"], a["seed"])
    os.replace(tmp, path)
    return {"work_s": time.perf_counter() - started, "rows": facts.rows, "facts": asdict(facts)}


@child("schema")
def child_schema(a: Args) -> Args:
    """The CSV month's columns (the registry's yellow schema but the Parquet-only fee
    columns) as DuckDB column types, in file order."""
    import pyarrow as pa

    from pipeline.core.datasets import SERVICES

    names = {pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR",
             pa.timestamp("us"): "TIMESTAMP"}
    service = SERVICES[SERVICE]
    return {"columns": [[f.name, names[f.type]] for f in service.schema
                        if f.name not in service.parquet_only]}


def _columns_sql(columns: list[list[str]]) -> str:
    return "{" + ", ".join(f"{_sql_str(n)}: {_sql_str(t)}" for n, t in columns) + "}"


def _duckdb_copy_sql(raw: str, out: str, columns: list[list[str]]) -> str:
    return (f"COPY (SELECT * FROM read_csv({_sql_str(raw)}, header=true, "
            f"columns={_columns_sql(columns)})) TO {_sql_str(out)} (FORMAT parquet)")


@child("parquetize")
def child_parquetize(a: Args) -> Args:
    """The project's conversion step."""
    from datetime import date

    from pipeline.convert.parquetize import parquetize
    from pipeline.core.datasets import SERVICES

    import_rss = _self_rss_mb()
    started = time.perf_counter()
    stats = parquetize(SERVICES[SERVICE], date(2021, 1, 1), Path(a["raw"]), Path(a["out"]))
    return {"work_s": time.perf_counter() - started, "rows": stats.rows,
            "import_rss_mb": import_rss, "parquet_bytes": stats.parquet_bytes,
            "row_groups": stats.row_groups}


@child("duckdb")
def child_duckdb(a: Args) -> Args:
    """DuckDB's CSV reader with explicit types, straight into Parquet."""
    import duckdb

    con = duckdb.connect()
    for statement in script_sql("", "", [], a["threads"], "")[:2]:  # the script's settings
        con.execute(statement)
    import_rss = _self_rss_mb()
    started = time.perf_counter()
    (rows,) = con.execute(_duckdb_copy_sql(a["raw"], a["out"], a["columns"])).fetchone()
    work = time.perf_counter() - started
    con.close()
    return {"work_s": work, "rows": rows, "import_rss_mb": import_rss,
            "parquet_bytes": Path(a["out"]).stat().st_size}


@child("reference")
def child_reference(a: Args) -> Args:
    """The course's way: the whole file into one Arrow table, then one Parquet write."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    import_rss = _self_rss_mb()
    started = time.perf_counter()
    table = pacsv.read_csv(a["raw"])
    pq.write_table(table, a["out"])
    return {"work_s": time.perf_counter() - started, "rows": table.num_rows,
            "import_rss_mb": import_rss, "parquet_bytes": Path(a["out"]).stat().st_size}


def _curl(url: str, dest: Path) -> None:
    """The script's download: ``curl -sSf -o dest url``, with ``-L``: the mirror, like
    GitHub's release host, answers a month's URL with a redirect."""
    subprocess.run(["curl", "-sSfL", "-o", str(dest), url], check=True)


def script_sql(raw: str, parquet: str, columns: list[list[str]], threads: int,
               table: str, *, create: bool = True) -> list[str]:
    """The issue's script, statement by statement: an expert's bulk settings, ``COPY`` of
    the CSV.gz (explicit types) to Parquet, then ``CREATE TABLE ... AS SELECT`` from it
    (``INSERT INTO`` for the next months of a backfill, when ``create`` is false)."""
    load = (f"CREATE TABLE {table} AS SELECT * FROM read_parquet({_sql_str(parquet)})"
            if create else f"INSERT INTO {table} SELECT * FROM read_parquet({_sql_str(parquet)})")
    return [f"SET threads={int(threads)}", "SET preserve_insertion_order=false",
            _duckdb_copy_sql(raw, parquet, columns), load]


def run_script(url: str, work: Path, db: Path, columns: list[list[str]], threads: int,
               name: str, *, create: bool = True) -> Args:
    """One month through the script: curl, then one DuckDB session on the warehouse file
    (settings, ``COPY``, ``CTAS``); the seconds of each stage and the table's rows."""
    import duckdb

    raw, parquet = work / f"{name}.csv.gz", work / f"{name}.parquet"
    t = time.perf_counter()
    _curl(url, raw)
    fetch = time.perf_counter() - t
    *settings, copy, load = script_sql(str(raw), str(parquet), columns, threads,
                                       f"{SERVICE}_tripdata", create=create)
    con = duckdb.connect(str(db))
    try:
        for statement in settings:
            con.execute(statement)
        t = time.perf_counter()
        con.execute(copy)
        copy_s = time.perf_counter() - t
        t = time.perf_counter()
        con.execute(load)
        ctas_s = time.perf_counter() - t
        (rows,) = con.execute(f"SELECT count(*) FROM {SERVICE}_tripdata").fetchone()
    finally:
        con.close()
    return {"fetch_s": fetch, "copy_s": copy_s, "ctas_s": ctas_s, "rows": rows}


@child("handwritten")
def child_handwritten(a: Args) -> Args:
    """The issue's script: ``curl -sSf -o``, then in DuckDB ``SET threads``, ``SET
    preserve_insertion_order=false``, ``COPY (SELECT * FROM read_csv(..., header=true,
    columns={...})) TO 'y.parquet' (FORMAT parquet)`` and ``CREATE TABLE yellow_tripdata AS
    SELECT * FROM read_parquet('y.parquet')`` in the warehouse file."""
    work = Path(a["dir"])
    started = time.perf_counter()
    result = run_script(a["url"], work, work / "warehouse.duckdb", a["columns"], a["threads"],
                        "y")
    return {"work_s": time.perf_counter() - started, **result}


@child("script_backfill")
def child_script_backfill(a: Args) -> Args:
    """The issue's script run month after month into one warehouse file: ``CREATE TABLE ...
    AS`` for the first month, ``INSERT INTO`` for the next (the same statements otherwise)."""
    work = Path(a["dir"])
    stages = {"fetch_s": 0.0, "copy_s": 0.0, "ctas_s": 0.0}
    started = time.perf_counter()
    rows = 0
    for i, url in enumerate(a["urls"]):
        result = run_script(url, work, work / "warehouse.duckdb", a["columns"], a["threads"],
                            f"m{i:02d}", create=i == 0)
        rows = result.pop("rows")
        for key, value in result.items():
            stages[key] += value
    return {"work_s": time.perf_counter() - started, "rows": rows, **stages}


@child("count")
def child_count(a: Args) -> Args:
    """Rows of the trips table in a warehouse file (checks an IngestMonth run)."""
    import duckdb

    con = duckdb.connect(a["db"], read_only=True)
    (rows,) = con.execute(f"SELECT count(*) FROM {SERVICE}_tripdata").fetchone()
    con.close()
    return {"rows": rows}


@child("mirror")
def child_mirror(a: Args) -> Args:
    """Serve the release dir until stdin closes; the URLs go to ``a['ready']``."""
    from pipeline.demo.mirror import ReleaseMirror

    mirror = ReleaseMirror(Path(a["root"]), bandwidth=int(a.get("bandwidth", 0))).start()
    ready = Path(a["ready"])
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps({"base_url": mirror.base_url, "zones_url": mirror.zones_url}))
    os.replace(tmp, ready)
    sys.stdin.read()
    mirror.stop()
    return {}


# --------------------------------------------------------------------------- measuring


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
        return run_child(__file__, name, args, self.logs / f"{log_name}.log")

    def record(self, run: Run, expected_rows: int) -> Run:
        self.runs.append(run)
        work = f"{run.work_s:7.2f}s work" if run.work_s is not None else " " * 12
        ok = "" if run.rows == expected_rows else f"  ROWS {run.rows} != {expected_rows}!"
        print(f"  {run.section:<6} {run.contender:<12} #{run.rep}: {run.wall_s:7.2f}s wall "
              f"{work} {run.peak_rss_mb:8.1f} MB{ok}", flush=True)
        return run


# --------------------------------------------------------------------------- the parts


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


def convert_part(bench: Bench, section: str, raw: Path, rows: int, contenders: list[str],
                 columns: list[list[str]], repeat: int, threads: int) -> None:
    """Each converter ``repeat`` times, interleaved, each run in a fresh process."""
    out_dir = bench.work / "parquet"
    out_dir.mkdir(exist_ok=True)
    print(f"\n[{section}] CSV.gz -> Parquet, {rows:,} rows", flush=True)
    for rep in range(1, repeat + 1):
        for name in contenders:
            out = out_dir / f"{name}.parquet"
            out.unlink(missing_ok=True)
            args = {"raw": str(raw), "out": str(out), "columns": columns, "threads": threads}
            measured, result = bench.child(name, args, f"{section}-{name}-{rep}")
            out.unlink(missing_ok=True)
            bench.record(Run(section, name, rep, measured.wall_s, measured.peak_rss_mb, 0,
                             result.pop("rows"), result.pop("work_s"), result), rows)


def start_mirror(bench: Bench, root: Path, bandwidth: int = 0
                 ) -> tuple[subprocess.Popen[bytes], Args]:
    """The ReleaseMirror in its own process, so it never counts in a measured RSS; it sends
    each file at ``bandwidth`` bytes a second (0: as fast as it can)."""
    ready = bench.logs / "mirror-ready.json"
    ready.unlink(missing_ok=True)
    argv = child_argv(__file__, "mirror", {"root": str(root), "ready": str(ready),
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
    zones = root / "misc" / "taxi_zone_lookup.csv"
    if not zones.exists():
        code = ("import sys; from pathlib import Path;"
                " from pipeline.demo.samples import write_zones; write_zones(Path(sys.argv[1]))")
        subprocess.run([PYTHON, "-c", code, str(zones)], check=True, cwd=PROJECT)
    return root


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


def e2e_part(bench: Bench, raw: Path, rows: int, columns: list[list[str]], repeat: int,
             threads: int, extra: dict[str, dict[str, str]] | None = None,
             bandwidth_mb: float = 0) -> None:
    """IngestMonth against the mirror vs the hand-written script, each from empty stores.
    The mirror sends the file at ``bandwidth_mb`` MB/s (0: at once)."""
    section, logs = paced("e2e", bandwidth_mb)
    pace = f", the file sent at {bandwidth_mb:g} MB/s" if bandwidth_mb else ""
    print(f"\n[{section}] IngestMonth {SERVICE} {MONTH} ({rows:,} rows) vs hand-written{pace}",
          flush=True)
    mirror, urls = start_mirror(bench, release_dir(bench, raw, rows), int(bandwidth_mb * MB))
    url = f"{urls['base_url']}/{SERVICE}/{FILE_NAME}"
    luigi_bin = str(Path(PYTHON).with_name("luigi"))
    try:
        for rep in range(1, repeat + 1):
            run_dir = bench.work / "e2e" / "ingest"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            env = {**os.environ, "LUIGI_CONFIG_PATH": str(luigi_config(run_dir, urls, extra))}
            argv = [luigi_bin, "--module", "pipeline", "IngestMonth", "--month", MONTH,
                    "--services", SERVICE, "--workers", "1", "--local-scheduler"]
            log = bench.logs / f"{logs}-ingest-{rep}.log"
            started_at = time.time()
            ingest = measure(argv, log, run_dir, env, what="IngestMonth")
            _, counted = bench.child("count", {"db": str(run_dir / "warehouse.duckdb")},
                                     f"{logs}-count-{rep}")
            bench.record(Run(section, "ingest", rep, ingest.wall_s, ingest.peak_rss_mb,
                             ingest.exit_code, counted["rows"], None,
                             {**stage_seconds(log, started_at, ingest.wall_s),
                              "cpu_s": round(ingest.cpu_s, 2)}), rows)
            shutil.rmtree(run_dir, ignore_errors=True)

            hand_dir = bench.work / "e2e" / "handwritten"
            shutil.rmtree(hand_dir, ignore_errors=True)
            hand_dir.mkdir(parents=True)
            args = {"dir": str(hand_dir), "url": url, "columns": columns, "threads": threads}
            hand, result = bench.child("handwritten", args, f"{logs}-handwritten-{rep}")
            bench.record(Run(section, "handwritten", rep, hand.wall_s, hand.peak_rss_mb, 0,
                             result.pop("rows"), result.pop("work_s"),
                             {**result, "cpu_s": round(hand.cpu_s, 2)}), rows)
            shutil.rmtree(hand_dir, ignore_errors=True)
    finally:
        stop_mirror(mirror)


def backfill_release(bench: Bench, rows: int, seed: int) -> Path:
    """Twelve yellow months of ``rows`` rows (2020, months the CSV mirror publishes) and the
    zones, laid out as the mirror serves them; generated once, reused after."""
    root = bench.work / f"backfill-{rows}"
    for key in BACKFILL_MONTHS:
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
    zones = root / "misc" / "taxi_zone_lookup.csv"
    if not zones.exists():
        code = ("import sys; from pathlib import Path;"
                " from pipeline.demo.samples import write_zones; write_zones(Path(sys.argv[1]))")
        subprocess.run([PYTHON, "-c", code, str(zones)], check=True, cwd=PROJECT)
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


def backfill_part(bench: Bench, rows: int, seed: int, columns: list[list[str]],
                  repeat: int, threads: int, workers: int,
                  extra: dict[str, dict[str, str]] | None = None,
                  bandwidth_mb: float = 0) -> None:
    """``taxi-pipeline backfill`` of twelve months against the script run month after
    month, each from an empty lake and warehouse; months per minute and peak RSS. The
    mirror sends each file at ``bandwidth_mb`` MB/s (0: at once)."""
    months = len(BACKFILL_MONTHS)
    section, logs = paced("backfill", bandwidth_mb)
    pace = f", files sent at {bandwidth_mb:g} MB/s" if bandwidth_mb else ""
    print(f"\n[{section}] {months} months x {rows:,} rows: taxi-pipeline backfill "
          f"--workers {workers} vs the script month by month{pace}", flush=True)
    mirror, urls = start_mirror(bench, backfill_release(bench, rows, seed),
                                int(bandwidth_mb * MB))
    cli = str(Path(PYTHON).with_name("taxi-pipeline"))
    try:
        for rep in range(1, repeat + 1):
            run_dir = bench.work / "backfill" / "project"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            env = {**os.environ, "LUIGI_CONFIG_PATH": str(luigi_config(run_dir, urls, extra))}
            argv = [cli, "backfill", "--start", BACKFILL_MONTHS[0], "--end",
                    BACKFILL_MONTHS[-1], "--services", SERVICE, "--workers", str(workers),
                    "--local-scheduler"]
            log = bench.logs / f"{logs}-project-{rep}.log"
            project = measure(argv, log, run_dir, env, what="backfill")
            _, counted = bench.child("count", {"db": str(run_dir / "warehouse.duckdb")},
                                     f"{logs}-count-{rep}")
            spans = task_spans(log)
            busy = {family: round(sum(e - s for f, _, s, e in spans if f == family), 2)
                    for family in ("DownloadMonth", "ParquetizeMonth", "LoadDuckDB")}
            bench.record(Run(section, "backfill", rep, project.wall_s, project.peak_rss_mb,
                             0, counted["rows"], None,
                             {"months_per_min": round(months * 60 / project.wall_s, 2),
                              "cpu_s": round(project.cpu_s, 1), "task_seconds": busy}),
                         rows * months)
            shutil.rmtree(run_dir, ignore_errors=True)

            script_dir = bench.work / "backfill" / "script"
            shutil.rmtree(script_dir, ignore_errors=True)
            script_dir.mkdir(parents=True)
            args = {"dir": str(script_dir), "columns": columns, "threads": threads,
                    "urls": [f"{urls['base_url']}/{SERVICE}/{SERVICE}_tripdata_{key}.csv.gz"
                             for key in BACKFILL_MONTHS]}
            script, result = bench.child("script_backfill", args, f"{logs}-script-{rep}")
            detail = {"months_per_min": round(months * 60 / script.wall_s, 2),
                      "cpu_s": round(script.cpu_s, 1),
                      **{k: round(v, 2) for k, v in result.items() if k.endswith("_s")}}
            bench.record(Run(section, "script_backfill", rep, script.wall_s,
                             script.peak_rss_mb, 0, result["rows"], result["work_s"], detail),
                         rows * months)
            shutil.rmtree(script_dir, ignore_errors=True)
    finally:
        stop_mirror(mirror)


def normalize_part(bench: Bench, rows: int, repeat: int) -> Args:
    """``bench_parquet_source.py`` (normalize vs plain pyarrow on a TLC Parquet month), run
    as it is; its ratio of medians and normalize's peak RSS from its results file."""
    print(f"\n[normalize] bench_parquet_source.py --rows {rows:,} --repeat {repeat}", flush=True)
    log = bench.logs / "normalize.log"
    measure([PYTHON, str(BENCH_DIR / "bench_parquet_source.py"), "--rows", str(rows),
             "--repeat", str(repeat)], log, PROJECT, what="bench_parquet_source.py")
    results = json.loads((BENCH_DIR / "out" / "parquet_source-results.json").read_text())
    summary = results["summary"]
    print(log_tail(log, 600))
    return {"rows": results["rows"], "time_ratio": round(results["time_ratio"], 3),
            "normalize_median_s": round(summary["normalize"]["median_s"], 2),
            "plain_median_s": round(summary["plain"]["median_s"], 2),
            "normalize_peak_rss_mb": round(summary["normalize"]["peak_rss_mb"], 1)}


# --------------------------------------------------------------------------- report


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


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark the yellow 2021-01 month: parquetize vs DuckDB vs pyarrow "
                    "(10M and 20M rows), then IngestMonth end to end vs curl + DuckDB. "
                    "Each contender runs in its own subprocess; prints times, peak RSS, ratios.")
    p.add_argument("--rows", type=int, default=10_000_000,
                   help="rows of the main month (default 10,000,000)")
    p.add_argument("--big-rows", type=int, default=None,
                   help="rows of the memory-focus month (default 2 x --rows)")
    p.add_argument("--skip-10m", action="store_true", help="skip the 10M conversion part")
    p.add_argument("--skip-20m", action="store_true", help="skip the big-month part")
    p.add_argument("--skip-reference-20m", action="store_true",
                   help="skip the whole-file pyarrow reference on the big month (RAM hungry)")
    p.add_argument("--skip-e2e", action="store_true", help="skip the IngestMonth part")
    p.add_argument("--e2e-bandwidth", type=float, nargs="+", default=[0], metavar="MB_PER_S",
                   help="run the IngestMonth part once per pace the mirror sends the file at, "
                        "in MB/s; 0 = as fast as a local server can (default: 0, the pace "
                        "issue 15's target is defined at)")
    p.add_argument("--skip-backfill", action="store_true", help="skip the 12-month backfill")
    p.add_argument("--backfill-rows", type=int, default=1_400_000,
                   help="rows of each backfill month (default 1,400,000, the 2021 size)")
    p.add_argument("--backfill-bandwidth", type=float, nargs="+", default=[0, 25],
                   metavar="MB_PER_S",
                   help="run the backfill part once per pace the mirror sends files at, in "
                        "MB/s; 0 = as fast as a local server can (default: 0 25)")
    p.add_argument("--backfill-workers", type=int, default=2,
                   help="taxi-pipeline backfill --workers (default 2)")
    p.add_argument("--skip-normalize", action="store_true",
                   help="skip bench_parquet_source.py (normalize vs plain pyarrow)")
    p.add_argument("--normalize-rows", type=int, default=None,
                   help="rows of the normalize part's TLC Parquet month (default --rows)")
    p.add_argument("--repeat", type=int, default=2,
                   help="runs per contender; best time, max RSS are kept (default 2)")
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2)")
    p.add_argument("--luigi-set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a luigi.cfg key for the project's runs (repeatable), to "
                        "measure what a setting costs, e.g. worker.force_multiprocessing=false")
    p.add_argument("--seed", type=int, default=0, help="sample data seed (default 0)")
    p.add_argument("--work-dir", type=Path, default=BENCH_DIR / "out",
                   help="samples, logs and results.json (default bench/out, gitignored)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    if is_child(argv):
        return child_main(argv[1:])
    args = parse_args(argv)
    big_rows = args.big_rows or 2 * args.rows
    work = args.work_dir.resolve()
    bench = Bench(work)
    started = datetime.now(UTC)
    print(f"bench work dir: {work}  (python {platform.python_version()}, "
          f"{os.cpu_count()} cpus, pyarrow {_version('pyarrow')}, duckdb {_version('duckdb')})")

    _, schema = bench.child("schema", {}, "schema")
    columns = schema["columns"]
    raw = sample_file(bench, args.rows, args.seed) if not (
        args.skip_10m and args.skip_e2e) else None
    if not args.skip_10m:
        convert_part(bench, size_label(args.rows), raw, args.rows, list(CONVERTERS), columns,
                     args.repeat, args.threads)
    if not args.skip_20m:
        big = sample_file(bench, big_rows, args.seed)
        contenders = [c for c in CONVERTERS if not (args.skip_reference_20m and c == "reference")]
        convert_part(bench, size_label(big_rows), big, big_rows, contenders, columns,
                     args.repeat, args.threads)
    if not args.skip_e2e:
        for bandwidth in args.e2e_bandwidth:
            e2e_part(bench, raw, args.rows, columns, args.repeat, args.threads,
                     overrides(args.luigi_set), bandwidth)
    if not args.skip_backfill:
        for bandwidth in args.backfill_bandwidth:
            backfill_part(bench, args.backfill_rows, args.seed, columns, args.repeat,
                          args.threads, args.backfill_workers, overrides(args.luigi_set),
                          bandwidth)
    normalized = None
    if not args.skip_normalize:
        normalized = normalize_part(bench, args.normalize_rows or args.rows, args.repeat)

    summary, targets = report(bench.runs, normalized)
    results = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "versions": {n: _version(n) for n in ("pyarrow", "duckdb", "luigi", "isal")},
        "luigi_set": args.luigi_set,
        "rows": {"main": args.rows, "big": None if args.skip_20m else big_rows},
        "bench_main_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average": os.getloadavg(),
        "summary": summary,
        "normalize": normalized,
        "targets": targets,
        "runs": [asdict(r) for r in bench.runs],
    }
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
