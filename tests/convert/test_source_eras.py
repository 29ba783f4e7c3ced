"""Issue 12: TLC's Parquet as it really is. Every schema era of SCHEMAS.md graded B or
better (exact names, order and types, null-typed columns) with QUIRKS.md's values, served
like TLC's CloudFront by a local server, through real Luigi workers into DuckDB; the source
contract for columns the registry does not know (kept in the raw file, or refused on one
line, never downloaded twice)."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline.core.datasets import SERVICES
from pipeline.core.manifest import NewColumn
from pipeline.core.months import next_month
from pipeline.demo import samples
from pipeline.tasks.download import DownloadMonth
from pipeline.tasks.load import LoadDuckDB
from pipeline.tasks.parquetize import ParquetizeMonth
from tests.conftest import Env, csv_and_tlc_mirror
from tests.mirror import ReleaseMirror
from tests.tlc_samples import ERAS, Era, EraMonth, era_month, write_era_month

ROWS = 1_500
MONEY = ("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount",
         "improvement_surcharge", "total_amount", "congestion_surcharge", "airport_fee",
         "cbd_congestion_fee", "ehail_fee", "trip_distance", "base_passenger_fare", "tolls",
         "bcf", "sales_tax", "tips", "driver_pay", "trip_miles")
NEW_COLUMN_ERA = next(e for e in ERAS if e.key == "yellow-2026-06")
NEW_MONTH = "2026-07"  # yellow 2026-06's schema + a column no registry knows yet


@dataclass
class EraRelease:
    csv_root: Path
    tlc_root: Path
    months: dict[str, EraMonth]

    def file(self, era: Era) -> Path:
        return self.tlc_root / f"{era.service}_tripdata_{era.month:%Y-%m}.parquet"


def with_new_column(month: EraMonth) -> pa.Table:
    """The era's file with one more column, as TLC adds them: large_string, partly null."""
    values = pa.array([None if i % 3 else f"kiosk-{i % 7}" for i in range(ROWS)], pa.large_string())
    return month.source.append_column("tip_source", values)


@pytest.fixture(scope="module")
def eras(tmp_path_factory: pytest.TempPathFactory) -> EraRelease:
    root = tmp_path_factory.mktemp("eras")
    release = EraRelease(root / "csv", root / "tlc", {})
    samples.write_zones(release.csv_root / "misc" / "taxi_zone_lookup.csv")
    for era in ERAS:
        release.months[era.key] = write_era_month(release.file(era), era, ROWS)
    extra = with_new_column(era_month(NEW_COLUMN_ERA, ROWS))
    pq.write_table(extra, release.tlc_root / f"yellow_tripdata_{NEW_MONTH}.parquet")
    # A CSV month of the frozen mirror with a column it never had.
    header = [*samples.header_for("yellow", datetime(2021, 1, 1).date()), "tip_source"]
    (release.csv_root / "yellow").mkdir(parents=True)
    with gzip.open(release.csv_root / "yellow" / "yellow_tripdata_2020-06.csv.gz", "wt") as f:
        f.write(",".join(header) + "\n")
    return release


mirror = csv_and_tlc_mirror("eras")  # the eras in TLC's layout (and a zone lookup)


@pytest.fixture(autouse=True)
def tlc_source(env: Env) -> None:
    env.configure(source={"kind": "parquet"}, scheduler={"retry_count": "1"})


def duck(env: Env, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_the_fixtures_have_the_schemas_read_from_real_files(eras: EraRelease) -> None:
    """Spot checks against the schemas SCHEMAS.md prints (A: real footers; B+: prints)."""
    def names_types(key: str) -> list[str]:
        era = next(e for e in ERAS if e.key == key)
        return [f"{f.name}: {f.type}" for f in pq.read_schema(eras.file(era))]

    # green_tripdata_2023-12.parquet, read from the real file's footer (grade A).
    assert names_types("green-2023-12") == [
        "VendorID: int32", "lpep_pickup_datetime: timestamp[us]",
        "lpep_dropoff_datetime: timestamp[us]", "store_and_fwd_flag: large_string",
        "RatecodeID: int64", "PULocationID: int32", "DOLocationID: int32",
        "passenger_count: int64", "trip_distance: double", "fare_amount: double",
        "extra: double", "mta_tax: double", "tip_amount: double", "tolls_amount: double",
        "ehail_fee: double", "improvement_surcharge: double", "total_amount: double",
        "payment_type: int64", "trip_type: int64", "congestion_surcharge: double"]
    # green 2023-01's footer: the old writer, ehail_fee null-typed.
    old_green = names_types("green-2022-06")
    assert old_green[0] == "VendorID: int64" and old_green[4] == "RatecodeID: double"
    assert old_green[14] == "ehail_fee: null" and old_green[17] == "payment_type: double"
    # yellow_tripdata_2022-01.parquet as three users printed it (B+).
    assert names_types("yellow-2022-01")[3:6] == [
        "passenger_count: double", "trip_distance: double", "RatecodeID: double"]
    assert names_types("yellow-2022-01")[-1] == "airport_fee: double"
    # yellow 2025-01 (B+): 20 columns, Airport_fee, then cbd_congestion_fee.
    assert names_types("yellow-2025-01")[-3:] == [
        "congestion_surcharge: double", "Airport_fee: double", "cbd_congestion_fee: double"]
    assert names_types("yellow-2014-08")[-4:] == [
        "improvement_surcharge: null", "total_amount: double", "congestion_surcharge: null",
        "airport_fee: null"]
    assert names_types("yellow-2010-02")[7] == "rate_code: int64"
    assert names_types("yellow-2010-02")[-1] == "__index_level_0__: int64"
    assert names_types("yellow-2010-01")[7] == "rate_code: string"
    assert names_types("fhv-2019-05")[3:6] == [
        "PUlocationID: int64", "DOlocationID: int64", "SR_Flag: null"]
    assert names_types("fhvhv-2024-01")[7] == "PULocationID: int32"
    assert names_types("fhvhv-2019-02")[-1] == "wav_match_flag: null"
    assert len({e.key for e in ERAS}) == len(ERAS) == 27


def outside(table: pa.Table, pickup: str, era: Era) -> int:
    start, end = (pa.scalar(datetime(m.year, m.month, 1), pa.timestamp("us"))
                  for m in (era.month, next_month(era.month)))
    times = table.column(pickup)
    inside = pc.sum(pc.and_(pc.greater_equal(times, start), pc.less(times, end))).as_py()
    return table.num_rows - times.null_count - (inside or 0)


def test_every_era_lands_exactly_once_downloaded(env: Env, eras: EraRelease,
                                                 mirror: ReleaseMirror) -> None:
    loads = [LoadDuckDB(service=e.service, month=e.month) for e in ERAS]
    assert env.build(*loads).status == LuigiStatusCode.SUCCESS
    for era in ERAS:
        expected = eras.months[era.key].expected
        registry = SERVICES[era.service]
        task = ParquetizeMonth(service=era.service, month=era.month)
        published = pq.read_table(task.output().parquet.path)
        # One Parquet schema per service, and exactly the values of the source file.
        assert published.schema == registry.schema, era.key
        assert published.equals(expected), era.key
        manifest = task.output().valid()
        assert manifest is not None and task.complete()
        assert manifest.rows == ROWS
        assert manifest.rows_outside_month == outside(expected, registry.pickup_column, era)
        assert manifest.new_columns == ()
        dropped = [c for c in era.schema.names if "lon" in c.lower() or "lat" in c.lower()
                   or c.startswith("__index_level_")]
        assert list(manifest.dropped_columns) == dropped, era.key
        assert manifest.source_etag and manifest.source_last_modified, era.key
        # Downloaded once, and the raw file is the source's bytes.
        file_name = eras.file(era).name
        assert len(mirror.requests_for(file_name, "GET")) == 1, era.key
        raw = Path(DownloadMonth(service=era.service, month=era.month).output().path)
        assert raw.read_bytes() == eras.file(era).read_bytes()
        # In the warehouse: every row, the money to the cent, nulls where the file had none.
        sums = ", ".join(f"sum({c}), count({c})" for c in MONEY if c in registry.columns)
        found = duck(env, f"SELECT count(*), {sums} FROM {era.service}_tripdata "
                     "WHERE source_month = ?", [era.month])[0]
        wanted = [ROWS]
        for c in (c for c in MONEY if c in registry.columns):
            wanted += [pc.sum(expected.column(c)).as_py(), ROWS - expected.column(c).null_count]
        assert [round(v, 6) if isinstance(v, float) else v for v in found] == \
            [round(v, 6) if isinstance(v, float) else v for v in wanted], era.key
    # request_source (2026-06 on): in the table, null in every earlier month.
    for service in ("yellow", "green"):
        expected = eras.months[f"{service}-2026-06"].expected.column("request_source")
        counts = duck(env, f"SELECT count(request_source), count(DISTINCT request_source) "
                      f"FROM {service}_tripdata WHERE source_month = DATE '2026-06-01'")
        assert counts == [(ROWS - expected.null_count, 3)]
        assert duck(env, f"SELECT count(request_source) FROM {service}_tripdata "
                    "WHERE source_month < DATE '2026-06-01'") == [(0,)]
    tails = sum(e.service == "yellow" and e.month.year >= 2021 for e in ERAS)
    assert duck(env, "SELECT count(*) FROM yellow_tripdata WHERE VendorID = 6 "
                "AND payment_type = 0 AND passenger_count IS NULL") == [(4 * tails,)]


# --------------------------------------------------------------------------- new columns


def failed_lines(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def test_a_new_column_lands_the_month_and_stays_in_the_raw_file(
        env: Env, eras: EraRelease, mirror: ReleaseMirror) -> None:
    run = env.command("taxi-pipeline", "ingest", "--month", NEW_MONTH, "--services", "yellow",
                      "--local-scheduler")
    assert run.returncode == 0, run.stderr[-3000:]
    # One warning line names it, with its type and how many rows hold a value.
    named = failed_lines(run.stderr, "tip_source")
    assert len(named) == 1 and named[0].startswith("WARNING: yellow 2026-07: columns the "
                                                   "registry does not know"), run.stderr
    assert "tip_source (large_string, 500 non-null)" in named[0]
    manifest = ParquetizeMonth(service="yellow", month=datetime(2026, 7, 1).date()).output()
    assert manifest.valid().new_columns == (NewColumn("tip_source", "large_string", 500),)
    assert json.loads(Path(manifest.path).read_text())["new_columns"] == [
        {"name": "tip_source", "type": "large_string", "non_null": 500}]
    # The month lands with the registry's columns; the raw file keeps the new one.
    assert pq.read_table(manifest.parquet.path).schema == SERVICES["yellow"].schema
    assert duck(env, "SELECT count(*) FROM yellow_tripdata") == [(ROWS,)]
    raw = env.lake / "raw" / "yellow" / f"yellow_tripdata_{NEW_MONTH}.parquet"
    assert pq.read_table(raw).column("tip_source").null_count == ROWS - 500
    # status shows it.
    table = env.command("taxi-pipeline", "status", "--services", "yellow", "--no-source-check")
    assert table.returncode == 0, table.stdout
    header, row = table.stdout.splitlines()
    assert header.split()[-4:] == ["new", "columns", "quality", "state"]
    # The quality column between them may warn: these fixtures carry the real files' quirks.
    assert row.split()[-1] == "complete" and "tip_source" in row.split()
    records = json.loads(env.command("taxi-pipeline", "status", "--services", "yellow",
                                     "--no-source-check", "--format", "json").stdout)
    assert records[0]["new_columns"] == ["tip_source (large_string, 500 non-null)"]


def test_refused_new_columns_fail_on_one_line_and_cost_one_download(
        env: Env, eras: EraRelease, mirror: ReleaseMirror) -> None:
    env.configure(source={"new_columns": "refuse"}, scheduler={"retry_count": "3"})
    run = env.command("taxi-pipeline", "ingest", "--month", NEW_MONTH, "--services", "yellow",
                      "--local-scheduler")
    assert run.returncode == 30, run.stderr[-3000:]
    message = ("ConversionError: yellow 2026-07: the file has columns the registry does not "
               "know: tip_source; nothing was published ([source] new_columns = refuse)")
    assert f"DISABLED ParquetizeMonth(service=yellow, month=2026-07): {message}" in run.stderr
    assert "Traceback" not in run.stderr
    # Three attempts of the conversion (retry_count), one download.
    attempts = [line for line in run.stderr.splitlines()
                if "failed" in line and "ParquetizeMonth" in line]
    assert len(attempts) == 3, run.stderr
    assert len(mirror.requests_for(f"yellow_tripdata_{NEW_MONTH}.parquet", "GET")) == 1
    assert sorted(p.name for p in (env.lake / "raw" / "yellow").iterdir()) == [
        f"yellow_tripdata_{NEW_MONTH}.parquet", f"yellow_tripdata_{NEW_MONTH}.parquet.source.json"]
    assert not (env.lake / "parquet").exists() or not any(
        p.is_file() for p in (env.lake / "parquet").rglob("*"))


def test_a_csv_month_takes_no_new_columns_whatever_the_setting(
        env: Env, mirror: ReleaseMirror) -> None:
    env.configure(source={"kind": "csv"}, scheduler={"retry_count": "2"})
    run = env.command("taxi-pipeline", "ingest", "--month", "2020-06", "--services", "yellow",
                      "--local-scheduler")
    assert run.returncode == 30, run.stderr[-3000:]
    assert ("ConversionError: yellow 2020-06: yellow header does not match the registry: "
            "unknown columns tip_source; CSV months take no new columns") in run.stderr
    assert len(mirror.requests_for("yellow_tripdata_2020-06.csv.gz", "GET")) == 1
