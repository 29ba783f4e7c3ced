"""Every benchmark script runs: each is run as a user would (``python bench/bench_x.py``), on
a tiny input in its own work directory, and must exit 0 and write results that account for
the rows it was given. The figures themselves are not judged here (bench/README.md has them);
only that the script still works with the pipeline as it is now."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT
from tests.fixtures_postgres import find_bin_dir

BENCH = PROJECT / "bench"
TIMEOUT = 300


def run(script: str, args: tuple[str, ...], work: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(BENCH / script), *(a.format(work=work) for a in args)]
    done = subprocess.run(argv, cwd=PROJECT, capture_output=True, text=True, timeout=TIMEOUT,
                          check=False)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return done


def results(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


MONTH_SKIPS = ("--skip-10m", "--skip-20m", "--skip-e2e", "--skip-backfill", "--skip-normalize")


def month_args(part: str, *extra: str) -> tuple[str, ...]:
    """bench_month.py with every part skipped but ``part`` (one of MONTH_SKIPS' names)."""
    return (*(s for s in MONTH_SKIPS if s != f"--skip-{part}"), "--repeat", "1",
            "--work-dir", "{work}", *extra)


def test_every_script_has_its_smoke_run() -> None:
    scripts = {p.name for p in BENCH.glob("bench_*.py")}
    smoked = {"bench_month.py", "bench_parquet_source.py", "bench_postgres.py", "bench_cloud.py",
              "bench_bucket_lake.py", "bench_scheduler.py", "bench_integrity.py",
              "bench_history.py"}
    assert scripts == smoked, "a bench script without a smoke test below (or one gone)"


@pytest.mark.parametrize("part", ["10m", "e2e", "backfill", "normalize"])
def test_bench_month(tmp_path: Path, part: str) -> None:
    args = {"10m": month_args("10m", "--rows", "3000"),
            "e2e": month_args("e2e", "--rows", "3000"),
            "backfill": month_args("backfill", "--backfill-rows", "500", "--backfill-months",
                                   "2", "--backfill-bandwidth", "0"),
            "normalize": month_args("normalize", "--normalize-rows", "2000")}[part]
    done = run("bench_month.py", args, tmp_path)
    found = results(tmp_path / "results.json")
    rows = {(e["section"], e["contender"]): e["rows"] for e in found["summary"]}
    expected = {
        "10m": {("0.003M", c): 3000 for c in ("parquetize", "duckdb", "reference")},
        "e2e": {("e2e", "ingest"): 3000, ("e2e", "handwritten"): 3000},
        "backfill": {("backfill", "backfill"): 1000, ("backfill", "script_backfill"): 1000},
        "normalize": {},
    }[part]
    assert rows == expected
    if part == "normalize":
        assert found["normalize"]["rows"] == 2000
    assert [t["what"] for t in found["targets"]]  # each part states its targets
    assert "Targets (best against best" in done.stdout


def test_bench_parquet_source(tmp_path: Path) -> None:
    run("bench_parquet_source.py", ("--rows", "2000", "--repeat", "1", "--work-dir",
                                    "{work}/out", "--results", "{work}/results.json"), tmp_path)
    found = results(tmp_path / "results.json")
    assert found["rows"] == 2000 and found["identical"] is True
    assert set(found["summary"]) == {"normalize", "plain"}


def test_bench_postgres(tmp_path: Path) -> None:
    if find_bin_dir() is None:
        pytest.skip("no PostgreSQL server binaries: `make system-deps` installs them")
    run("bench_postgres.py", ("--rows", "2000", "--work-dir", "{work}"), tmp_path)
    found = results(tmp_path / "results.json")
    assert found["copy"]["rows"] == found["load"]["rows"] == 2000


def test_bench_cloud(tmp_path: Path) -> None:
    run("bench_cloud.py", ("--rows", "2000", "--check-rows", "50", "--check-months", "1",
                           "--repeat", "1", "--work-dir", "{work}"), tmp_path)
    found = results(tmp_path / "results.json")
    assert [r["part"] for r in found["results"]] == ["upload", "completeness"]
    assert all(len(times) == 1 for r in found["results"] for times in r["times"].values())


def test_bench_bucket_lake(tmp_path: Path) -> None:
    run("bench_bucket_lake.py", ("--rows", "300", "--months", "1", "--workers", "1",
                                 "--work-dir", "{work}"), tmp_path)
    found = results(tmp_path / "result.json")
    assert found["setup"]["months"] == 1
    assert found["local"]["wall_s"] > 0 and found["bucket"]["wall_s"] > 0


def test_bench_scheduler_no_op_rerun(tmp_path: Path) -> None:
    """Part A, with its in-process count and profile (the children that patch the
    pipeline's functions to count their calls)."""
    run("bench_scheduler.py", ("--rows", "50", "--repeat", "1", "--noop-range", "2020-01",
                               "2020-01", "--skip-schedule", "--work-dir", "{work}",
                               "--results", "{work}/results.json"), tmp_path)
    noop = results(tmp_path / "results.json")["noop"]
    assert noop["range"] == ["2020-01", "2020-01"]
    assert len(noop["local"]["runs"]) == len(noop["central"]["runs"]) == 1
    calls = noop["inproc"]["calls"]
    assert calls["LoadDuckDB.complete()"]["n"] == 3  # a month of three services
    # What the count patches must still be in the pipeline (scheduler_noop.COUNTED says
    # where): a function moved or gone shows here, not as a silently missing row.
    assert noop["inproc"]["not_counted"] == []
    assert noop["profile"]["profile"]["pipeline_cumulative"]


def test_bench_scheduler_long_backfill(tmp_path: Path) -> None:
    """Part B on two months: luigid knows every task of the backfill before one runs."""
    run("bench_scheduler.py", ("--skip-noop", "--sched-range", "2020-01", "2020-02",
                               "--sched-repeat", "1", "--sched-history", "off", "--work-dir",
                               "{work}", "--results", "{work}/results.json"), tmp_path)
    schedule = results(tmp_path / "results.json")["schedule"]
    # Backfill, 2 IngestMonth, 3 tasks for each of 2 x 3 months, Zones and LoadDuckDBZones.
    assert schedule["off"]["tasks"] == 1 + 2 + 3 * 6 + 2
    assert schedule["profile"]["tasks"] == 1 + 2 + 3 * 6 + 2


def test_bench_integrity(tmp_path: Path) -> None:
    """The byte checks' cost, on a 3,000-row month: every check measured, a verdict given."""
    done = run("bench_integrity.py", ("--rows", "3000", "--repeat", "1", "--work-dir", "{work}"),
               tmp_path)
    found = results(tmp_path / "integrity-results.json")
    assert found["rows"] == 3000
    assert set(found["loads"]) == {"plain", "verified"}
    assert "target <= 5%" in done.stdout


def test_bench_history(tmp_path: Path) -> None:
    """The smallest scale (three months of yellow) through a real luigid, DuckDB sink: every
    month landed, the no-op re-run and status measured, status exits 0."""
    done = run("bench_history.py", ("--scales", "3m x 1", "--rows", "20", "--work",
                                    "{work}", "--results", "{work}/results.json"), tmp_path)
    assert "3m x 1" in done.stdout and "sinks: duckdb\n" in done.stdout
    [found] = results(tmp_path / "results.json")
    assert found["scale"] == "3m x 1" and found["sinks"] == ["duckdb"]
    assert found["service_months"] == 3 and found["status_exit"] == 0
    # Download, Parquet and load of each month, its IngestMonth, the zones and the chunk.
    assert found["tasks"] >= 3 * 4 and found["noop_s"] > 0
