"""taxi-pipeline status, and a backfill spread over four worker processes (standing in for
four hosts) against one scheduler."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipeline.core.months import months_between
from pipeline.demo import samples
from pipeline.demo.mirror import ReleaseMirror
from pipeline.tasks.flows import IngestMonth
from tests.conftest import BIN, Env, Release
from tests.fixtures_scheduler import Luigid

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
        "detail": "complete", "published_at": None, "stale": False}
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


@pytest.fixture(scope="module")
def year_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("year-release")
    facts = samples.write_release(root, {"yellow": YEAR_2020}, {"yellow": 2_500})
    return root, {f.month: f.rows for f in facts}


def test_four_workers_share_a_twelve_month_backfill(
        env: Env, luigid: Luigid, year_release: tuple[Path, dict[str, int]]) -> None:
    root, rows = year_release
    with ReleaseMirror(root) as mirror:
        env.configure(source={"base_url": mirror.base_url, "zones_url": mirror.zones_url})
        command = [str(BIN / "luigi"), "--module", "pipeline", "Backfill", "--start", "2020-01",
                   "--end", "2020-12", "--services", "yellow", "--no-lock"]
        logs = [env.tmp / f"host-{i}.log" for i in range(4)]
        hosts = [subprocess.Popen(command, cwd=env.tmp, env=env.env(), text=True,
                                  stdout=subprocess.DEVNULL, stderr=log.open("w"))
                 for log in logs]
        codes = [host.wait(timeout=600) for host in hosts]
        assert codes == [0, 0, 0, 0], [log.read_text()[-1500:] for log in logs]
    ran = luigid.events("RUNNING")
    assert all(n == 1 for n in ran.values()), ran
    assert len([t for t in ran if t.startswith("LoadDuckDB_2020")]) == 12
    # Every task ran in exactly one process, and the work was spread over several.
    own_runs = [sum(int(m) for m in re.findall(r"\* (\d+) ran successfully", log.read_text()))
                for log in logs]
    assert sum(own_runs) == len(ran)
    assert sum(n > 0 for n in own_runs) > 1, own_runs
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        counts = dict(con.execute(
            "SELECT strftime(source_month, '%Y-%m'), count(*) FROM yellow_tripdata GROUP BY 1"
        ).fetchall())
    assert counts == rows
