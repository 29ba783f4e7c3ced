"""`taxi-pipeline status` adds what the source says to what the lake and the sinks say,
never in its place (issue 13): a warehouse still holding a month whose lake files are gone
says so, whether the source still publishes the month or not."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

from luigi.execution_summary import LuigiStatusCode

from pipeline.core.months import months_between
from pipeline.demo import samples
from pipeline.ops.status import lake_months
from pipeline.tasks.download import DownloadMonth
from pipeline.tasks.flows import IngestMonth
from pipeline.tasks.parquetize import ParquetizeMonth
from tests.conftest import Env, Release

JAN = date(2021, 1, 1)
GONE = date(2019, 6, 1)  # generated here, ingested, then withdrawn from the source


def records(env: Env, *args: str) -> tuple[int, dict[str, dict]]:
    run = env.command("taxi-pipeline", "status", "--services", "yellow", "--format", "json",
                      *args)
    return run.returncode, {r["month"]: r for r in json.loads(run.stdout)}


def drop_lake_files(month: date) -> None:
    """The month's raw file, its source record and its Parquet folder, deleted."""
    download = DownloadMonth(service="yellow", month=month)
    download.output().remove()
    download.source_record.remove()
    shutil.rmtree(Path(ParquetizeMonth(service="yellow", month=month).output().path).parent)


def test_rows_a_warehouse_holds_stay_in_the_status_when_the_lake_lost_them(
        env: Env, release: Release) -> None:
    path = release.root / "yellow" / "yellow_tripdata_2019-06.csv.gz"
    facts = samples.write_month(path, "yellow", GONE, 2_000)
    for month in (GONE, JAN):
        assert env.build(IngestMonth(month=month, services=("yellow",))).status == \
            LuigiStatusCode.SUCCESS
    assert lake_months(("yellow",)) == months_between(GONE, JAN)
    jan_rows = release.of("yellow", "2021-01").rows
    for month in (GONE, JAN):
        drop_lake_files(month)
    path.unlink()  # the source withdrew 2019-06; 2021-01 it still publishes
    code, found = records(env, "--start", "2019-06", "--end", "2021-01")
    assert code == 1
    assert found["2019-06"]["state"] == "mismatch"
    assert found["2019-06"]["detail"] == (
        f"not published; duckdb has {facts.rows:,} rows without a manifest")
    assert found["2019-06"]["source"] == "not published"
    assert found["2021-01"]["state"] == "mismatch"
    assert found["2021-01"]["detail"] == (
        f"not downloaded; duckdb has {jan_rows:,} rows without a manifest")
    assert found["2021-01"]["source"] == "published"
    assert found["2021-01"]["sinks"] == {"duckdb": jan_rows}
    # A month neither in the lake nor in a sink reads simply as what the source says.
    assert found["2019-07"]["state"] == "not published yet" and found["2019-07"]["sinks"] == {
        "duckdb": None}
    # Without asking the source, the lake's facts and the sinks' stay.
    code, found = records(env, "--start", "2021-01", "--end", "2021-01", "--no-source-check")
    assert found["2021-01"]["detail"] == (
        f"not downloaded; duckdb has {jan_rows:,} rows without a manifest")
    assert found["2021-01"]["source"] is None
