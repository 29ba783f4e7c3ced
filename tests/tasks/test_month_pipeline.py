"""IngestMonth through a real Luigi worker: exact rows in the lake and in DuckDB, re-runs."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import luigi
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline import DownloadMonth, IngestMonth, LoadDuckDB, ParquetizeMonth
from pipeline.core.datasets import SERVICES
from pipeline.core.months import BadParameter
from tests.conftest import Env, Release

JAN = date(2021, 1, 1)


def query(env: Env, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


class Runs:
    """Which tasks actually ran (not merely were found complete)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def __enter__(self) -> Runs:
        luigi.Task.event_handler(luigi.Event.START)(self._record)
        return self

    def _record(self, task: luigi.Task) -> None:
        self.started.append(task.task_id)

    def __exit__(self, *exc: object) -> None:
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.START].discard(self._record)


def test_a_month_lands_in_lake_and_duckdb(env: Env, release: Release) -> None:
    result = env.build(IngestMonth(month=JAN))
    assert result.status == LuigiStatusCode.SUCCESS
    for service in ("yellow", "green"):
        facts = release.of(service, "2021-01")
        stem = f"{service}_tripdata_2021-01"
        lake_dir = env.lake / "parquet" / service / "year=2021" / "month=01"
        manifest = json.loads((lake_dir / "_manifest.json").read_text())
        assert manifest["rows"] == facts.rows
        assert manifest["rows_outside_month"] == facts.rows_outside_month
        assert manifest["source_bytes"] == (env.lake / "raw" / service / f"{stem}.csv.gz").stat(
        ).st_size
        assert pq.read_metadata(lake_dir / f"{stem}.parquet").num_rows == facts.rows
        assert query(env, f"SELECT count(*) FROM {service}_tripdata WHERE source_month = ?",
                     [JAN]) == [(facts.rows,)]
    assert query(env, "SELECT count(*) FROM zones") == [(265,)]
    # Out-of-month pickups are kept, under the month of the file they came from.
    facts = release.of("yellow", "2021-01")
    outside = query(env, "SELECT count(*) FROM yellow_tripdata WHERE source_month = ? AND "
                    "(tpep_pickup_datetime < ? OR tpep_pickup_datetime >= ?)",
                    [JAN, JAN, date(2021, 2, 1)])
    assert outside == [(facts.rows_outside_month,)]
    # Types as the registry says, nulls as nulls.
    types = dict(query(env, "SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_name = 'yellow_tripdata'"))
    assert types["VendorID"] == "BIGINT" and types["tpep_pickup_datetime"] == "TIMESTAMP"
    assert types["fare_amount"] == "DOUBLE" and types["source_month"] == "DATE"
    assert query(env, "SELECT count(*) FILTER (VendorID IS NULL), "
                 "count(*) FILTER (store_and_fwd_flag = '') FROM yellow_tripdata") == [
        (facts.empty_tail_rows, 0)]


def test_rerun_of_a_complete_month_runs_nothing(env: Env) -> None:
    assert env.build(IngestMonth(month=JAN)).status == LuigiStatusCode.SUCCESS
    raw = env.lake / "raw" / "yellow" / "yellow_tripdata_2021-01.csv.gz"
    before = raw.stat().st_mtime_ns
    with Runs() as runs:
        result = env.build(IngestMonth(month=JAN))
    assert result.status == LuigiStatusCode.SUCCESS
    assert runs.started == []
    assert raw.stat().st_mtime_ns == before


def test_duckdb_holds_each_month_once_after_repeated_loads(env: Env, release: Release) -> None:
    dec = date(2020, 12, 1)
    for month in (JAN, dec):
        assert env.build(IngestMonth(month=month, services=("yellow",))).status == \
            LuigiStatusCode.SUCCESS
    # Force the January load to run twice more, as a re-run after a lost load log would.
    for _ in range(2):
        task = LoadDuckDB(service="yellow", month=JAN)
        task.run()
    counts = dict(query(env, "SELECT source_month, count(*) FROM yellow_tripdata GROUP BY 1"))
    assert counts == {JAN: release.of("yellow", "2021-01").rows,
                      dec: release.of("yellow", "2020-12").rows}
    assert query(env, "SELECT count(*) FROM pipeline_loads WHERE table_name = 'yellow_tripdata'"
                 ) == [(2,)]


def test_green_and_fhv_months_publish_one_schema(env: Env, release: Release) -> None:
    months = [date(2019, 12, 1), date(2020, 1, 1), JAN]
    tasks = [LoadDuckDB(service="green", month=m) for m in months]
    tasks += [LoadDuckDB(service="fhv", month=m) for m in (date(2019, 1, 1), date(2020, 1, 1))]
    assert env.build(*tasks).status == LuigiStatusCode.SUCCESS
    for task in tasks:
        parquet = ParquetizeMonth(service=task.service, month=task.month).output().parquet.file
        assert pq.read_schema(parquet) == SERVICES[task.service].schema
    fees = query(env, "SELECT source_month, count(ehail_fee) FROM green_tripdata GROUP BY 1 "
                 "ORDER BY 1")
    assert [f[1] > 0 for f in fees] == [True, False, False]
    assert query(env, "SELECT count(*) FROM fhv_tripdata") == [
        (release.of("fhv", "2019-01").rows + release.of("fhv", "2020-01").rows,)]


def test_a_damaged_parquet_file_is_not_complete(env: Env) -> None:
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    target = ParquetizeMonth(service="yellow", month=JAN).output()
    assert target.exists()
    with open(target.parquet.file, "r+b") as f:
        f.truncate(target.parquet.file.stat().st_size - 100)
    assert not ParquetizeMonth(service="yellow", month=JAN).complete()
    # The next run re-converts it from the raw file without downloading again.
    with Runs() as runs:
        assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
            LuigiStatusCode.SUCCESS
    assert [r.split("_")[0] for r in runs.started] == ["ParquetizeMonth"]
    assert target.exists()


def test_unpublished_month_fails_and_leaves_nothing(env: Env) -> None:
    result = env.build(DownloadMonth(service="yellow", month=date(2030, 1, 1)))
    assert result.status == LuigiStatusCode.FAILED
    assert env.lake_files() == []


@pytest.mark.parametrize(("sinks", "message"), [
    ("duckdb,snowflake", "unknown sink 'snowflake'"),
    (",", "no sink given"),
])
def test_naming_a_sink_that_does_not_exist_is_an_error(env: Env, sinks: str,
                                                       message: str) -> None:
    env.configure(pipeline={"sinks": sinks})
    with pytest.raises(BadParameter, match=message):
        IngestMonth(month=JAN)
