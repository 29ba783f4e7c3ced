"""taxi-pipeline status: each stage of a month and every inconsistency. (A backfill spread
over four worker processes against one scheduler is a case of tests/ops/test_scheduler.py's
test_processes_on_one_scheduler_run_each_task_once.)"""

from __future__ import annotations

import json
from datetime import date

import duckdb

from pipeline.core.months import months_between
from pipeline.tasks.flows import IngestMonth
from tests.conftest import Env, Release

YEAR_2020 = months_between(date(2020, 1, 1), date(2020, 12, 1))


def test_status_reports_each_stage_and_every_inconsistency(env: Env, release: Release) -> None:
    for month in (date(2020, 12, 1), date(2021, 1, 1)):
        assert env.build(IngestMonth(month=month, services=("yellow",))).scheduling_succeeded
    with duckdb.connect(str(env.duckdb_path)) as con:
        con.execute("DELETE FROM yellow_tripdata WHERE source_month = DATE '2021-01-01' "
                    "AND VendorID = 1")
    run = env.command("taxi-pipeline", "status", "--start", "2020-11", "--end", "2021-02",
                      "--services", "yellow", "--format", "json")
    assert run.returncode == 1, run.stderr
    records = {r["month"]: r for r in json.loads(run.stdout)}
    assert records["2020-11"]["state"] == "not published yet"
    dec = release.of("yellow", "2020-12").rows
    assert records["2020-12"] | {"raw_bytes": None, "quality": None} == {
        "month": "2020-12", "service": "yellow", "raw_bytes": None, "parquet_rows": dec,
        "sinks": {"duckdb": dec}, "state": "complete", "complete": True,
        "new_columns": [], "source": None, "quality": None, "quality_warnings": [],
        "detail": "complete", "published_at": None, "stale": False,
        # A CSV.gz month: its Parquet was converted while it downloaded (the record says so).
        "converted_while_downloading": True}
    assert records["2020-12"]["quality"]["pickup_outside_month"] == release.of(
        "yellow", "2020-12").rows_outside_month
    jan = records["2021-01"]
    assert jan["parquet_rows"] == release.of("yellow", "2021-01").rows
    assert jan["sinks"]["duckdb"] < jan["parquet_rows"]
    assert jan["state"] == "mismatch"
    assert jan["detail"] == (f"MISMATCH duckdb {jan['sinks']['duckdb']:,} != manifest "
                            f"{jan['parquet_rows']:,}")
    assert records["2021-02"]["state"] == "not published yet"

    table = env.command("taxi-pipeline", "status", "--services", "yellow")
    assert table.returncode == 1
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["month", "service", "raw", "MB"]
    assert [line.split()[0] for line in lines[1:]] == ["2020-12", "2021-01"]
    assert "MISMATCH" in lines[2]


def test_status_of_complete_months_exits_0(env: Env) -> None:
    assert env.build(IngestMonth(month=date(2021, 1, 1), services=("green",))).status.name \
        == "SUCCESS"
    run = env.command("taxi-pipeline", "status", "--services", "green", "--no-source-check")
    assert run.returncode == 0, run.stdout
    assert run.stdout.splitlines()[1].split()[-1] == "complete"
