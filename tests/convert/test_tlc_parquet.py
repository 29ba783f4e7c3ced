"""Issue 8: TLC's own Parquet months, normalised to the registry's schema, through real
Luigi workers, a local server laid out like TLC's CloudFront, DuckDB and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline import (
    Backfill,
    DownloadMonth,
    IngestMonth,
    LoadBigQuery,
    LoadDuckDB,
    LoadPostgres,
    ParquetizeMonth,
)
from pipeline.convert.normalize import cast_exactly, normalize
from pipeline.convert.result import ConversionError
from pipeline.core.datasets import FHVHV, SERVICES, YELLOW
from pipeline.core.months import next_month
from pipeline.demo import samples
from pipeline.demo.samples import PARQUET_ONLY
from pipeline.tasks.load import MonthLoad
from pipeline.warehouses import bigquery as bigquery_load
from pipeline.warehouses import duckdb as duckdb_warehouse
from pipeline.warehouses import postgres as postgres_warehouse
from pipeline.warehouses.base import Dialect
from tests import tlc_samples
from tests.conftest import Env, csv_and_tlc_mirror
from tests.fixtures_cloud import Cloud
from tests.fixtures_postgres import Database
from tests.mirror import Fault, ReleaseMirror

ROWS = 5_000
CSV_MONTHS = {"yellow": ["2021-01", "2021-06", "2021-07"], "green": ["2020-01"],
              "fhv": ["2019-01"], "fhvhv": ["2019-02", "2021-06", "2021-07"]}
TLC_MONTHS = {
    "yellow": ["2009-01", "2010-01", "2021-01", "2021-06", "2021-07", "2021-08", "2021-09",
               "2023-05", "2025-02"],
    "green": ["2020-01", "2025-03"],
    "fhv": ["2019-01"],
    "fhvhv": ["2021-08", "2021-09", "2025-01"],
}
FRACTIONAL = "2021-10"  # yellow: one passenger_count of 1.5


def month(key: str) -> date:
    return date(int(key[:4]), int(key[5:]), 1)


@dataclass
class TlcRelease:
    csv_root: Path
    tlc_root: Path

    def tlc_file(self, service: str, key: str) -> Path:
        return self.tlc_root / f"{service}_tripdata_{key}.parquet"


@pytest.fixture(scope="module")
def tlc_release(tmp_path_factory: pytest.TempPathFactory) -> TlcRelease:
    root = tmp_path_factory.mktemp("tlc")
    release = TlcRelease(root / "csv", root / "tlc")
    samples.write_release(release.csv_root,
                          {s: [month(k) for k in keys] for s, keys in CSV_MONTHS.items()},
                          dict.fromkeys(CSV_MONTHS, ROWS))
    for service, keys in TLC_MONTHS.items():
        for key in keys:
            tlc_samples.write_tlc_month(release.tlc_file(service, key), service, month(key),
                                        ROWS)
    tlc_samples.write_tlc_month(release.tlc_file("yellow", FRACTIONAL), "yellow",
                                month(FRACTIONAL), ROWS, fractional=True)
    return release


mirror = csv_and_tlc_mirror("tlc_release")  # the CSV mirror and TLC's layout


@pytest.fixture(autouse=True)
def auto_source(env: Env) -> None:
    """``[source] kind = auto``, luigi.cfg's default: CSV up to 2021-07, TLC Parquet after."""
    env.configure(source={"kind": "auto"})


def lake_table(env: Env, service: str, key: str) -> pa.Table:
    y, m = key.split("-")
    return pq.read_table(env.lake / "parquet" / service / f"year={y}" / f"month={m}"
                         / f"{service}_tripdata_{key}.parquet")


def duck(env: Env, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


# --------------------------------------------------------------------------- drifts


def test_every_drift_normalises_to_the_registry_schema(tlc_release: TlcRelease,
                                                       tmp_path: Path) -> None:
    for service, keys in TLC_MONTHS.items():
        for key in keys:
            source = pq.read_table(tlc_release.tlc_file(service, key))
            out = tmp_path / f"{service}-{key}.parquet"
            stats = normalize(SERVICES[service], month(key), tlc_release.tlc_file(service, key),
                              out)
            table = pq.read_table(out)
            assert table.schema == SERVICES[service].schema, (service, key)
            assert stats.rows == table.num_rows == ROWS
            # (2009 yellow maps text codes: its own test below.)
            by_folded = {n.casefold(): n for n in source.column_names} if key > "2011" else {}
            for f in SERVICES[service].schema:
                name = by_folded.get(f.name.casefold())
                if name is None:
                    continue
                # Exact: the canonical value equals the source value, type aside.
                assert table.column(f.name).cast(source.column(name).type).equals(
                    source.column(name)), (service, key, f.name)
            if service == "yellow" and key >= "2021-08":
                assert table.column("airport_fee").null_count == 0  # airport_fee or Airport_fee
            if service in ("yellow", "green", "fhvhv"):
                cbd = table.column("cbd_congestion_fee")
                assert (cbd.null_count == 0) == (key >= "2025"), (service, key)
            if service == "fhvhv":
                assert table.column("SR_Flag").null_count == ROWS  # only CSV months have it
    assert "Airport_fee" in pq.read_schema(tlc_release.tlc_file("yellow", "2023-05")).names
    assert pq.read_schema(tlc_release.tlc_file("yellow", "2023-05")).field(
        "VendorID").type == pa.int32()
    assert pq.read_schema(tlc_release.tlc_file("yellow", "2021-08")).field(
        "passenger_count").type == pa.float64()
    assert pq.read_schema(tlc_release.tlc_file("fhvhv", "2025-01")).field(
        "pickup_datetime").type == pa.timestamp("ns")


def test_2009_yellow_maps_its_own_column_set(tlc_release: TlcRelease, tmp_path: Path) -> None:
    raw = tlc_release.tlc_file("yellow", "2009-01")
    stats = normalize(YELLOW, date(2009, 1, 1), raw, tmp_path / "out.parquet")
    assert stats.dropped_columns == ("Start_Lon", "Start_Lat", "End_Lon", "End_Lat")
    table, source = pq.read_table(tmp_path / "out.parquet"), pq.read_table(raw)
    vendors = dict(zip(source.column("vendor_name").to_pylist(),
                       table.column("VendorID").to_pylist(), strict=True))
    assert vendors == {"CMT": 1, "VTS": 2}
    payments = set(zip(source.column("Payment_Type").to_pylist(),
                       table.column("payment_type").to_pylist(), strict=True))
    assert payments <= {("Credit", 1), ("CASH", 2), ("No Charge", 3), ("Dispute", 4)}
    assert table.column("tpep_pickup_datetime")[0].as_py() == datetime.fromisoformat(
        source.column("Trip_Pickup_DateTime")[0].as_py())
    assert table.column("fare_amount").equals(source.column("Fare_Amt"))
    assert table.column("extra").equals(source.column("surcharge"))
    assert set(table.column("store_and_fwd_flag").to_pylist()) <= {"N", "Y"}
    for absent in ("PULocationID", "improvement_surcharge", "airport_fee"):
        assert table.column(absent).null_count == ROWS


def test_2010_codes_under_canonical_names_map_by_kind() -> None:
    flag, pay = (YELLOW.aliases[n].values for n in ("store_and_fwd_flag", "payment_type"))
    assert cast_exactly(pa.array([1.0, 0.0, None]), pa.string(), "store_and_fwd_flag",
                        flag).to_pylist() == ["Y", "N", None]
    assert cast_exactly(pa.array(["Y", "N"]), pa.string(), "store_and_fwd_flag",
                        flag).to_pylist() == ["Y", "N"]
    assert cast_exactly(pa.array(["CSH", "CRD", "NOC"]), pa.int64(), "payment_type",
                        pay).to_pylist() == [2, 1, 3]
    assert cast_exactly(pa.array([1, 4], pa.int32()), pa.int64(), "payment_type",
                        pay).to_pylist() == [1, 4]


YELLOW_2010 = ("vendor_id", "pickup_datetime", "dropoff_datetime", "passenger_count",
               "trip_distance", "pickup_longitude", "pickup_latitude", "rate_code",
               "store_and_fwd_flag", "dropoff_longitude", "dropoff_latitude", "payment_type",
               "fare_amount", "surcharge", "mta_tax", "tip_amount", "tolls_amount",
               "total_amount")
# Canonical columns no 2009-2010 file has: null in those months.
LATER_COLUMNS = ("PULocationID", "DOLocationID", "improvement_surcharge",
                 "congestion_surcharge", *PARQUET_ONLY)


def canonical_old_yellow(key: str) -> pa.Table:
    """A 2009-2010 yellow month as the registry publishes it: the generator's values, the
    columns of later years null."""
    columns = next(c for c, _, _ in samples.trip_chunks("yellow", month(key), ROWS))
    return pa.Table.from_arrays(
        [pa.nulls(ROWS, f.type) if f.name in LATER_COLUMNS else columns[f.name].cast(f.type)
         for f in YELLOW.schema], schema=YELLOW.schema)


def outside_month(table: pa.Table, pickup: str, key: str) -> int:
    """Rows of ``table`` whose pickup lies outside the month ``key``."""
    start, end = (pa.scalar(datetime(d.year, d.month, 1), pa.timestamp("us"))
                  for d in (month(key), next_month(month(key))))
    times = table.column(pickup)
    inside = pc.and_(pc.greater_equal(times, start), pc.less(times, end))
    return table.num_rows - pc.sum(inside).as_py()


def test_a_whole_2010_yellow_month_normalises_through_the_pipeline(
        env: Env, tlc_release: TlcRelease) -> None:
    env.configure(source={"kind": "parquet"})
    task = ParquetizeMonth(service="yellow", month=month("2010-01"))
    assert env.build(task).status == LuigiStatusCode.SUCCESS
    # The raw file, and what the source said it was (ETag, Last-Modified, length).
    assert [f for f in env.lake_files() if f.startswith("raw/")] == [
        "raw/yellow/yellow_tripdata_2010-01.parquet",
        "raw/yellow/yellow_tripdata_2010-01.parquet.source.json"]
    source = pq.read_table(tlc_release.tlc_file("yellow", "2010-01"))
    assert tuple(source.column_names) == YELLOW_2010
    table, manifest = lake_table(env, "yellow", "2010-01"), task.output().valid()
    assert manifest is not None and manifest.source_url.endswith(
        "/trip-data/yellow_tripdata_2010-01.parquet")
    assert manifest.dropped_columns == ("pickup_longitude", "pickup_latitude",
                                        "dropoff_longitude", "dropoff_latitude")
    assert table.schema == YELLOW.schema and manifest.rows == table.num_rows == ROWS
    # Every value is the generator's, whatever the 2010 spelling of its code.
    assert table.equals(canonical_old_yellow("2010-01"))

    def pairs(old: str, canonical: str) -> set[tuple]:
        return set(zip(source.column(old).to_pylist(), table.column(canonical).to_pylist(),
                       strict=True))

    assert pairs("vendor_id", "VendorID") == {("CMT", 1), ("VTS", 2)}
    assert pairs("payment_type", "payment_type") == {
        ("CRD", 1), ("Cre", 1), ("CAS", 2), ("Cas", 2), ("No Charge", 3), ("Dispute", 4)}
    assert pairs("store_and_fwd_flag", "store_and_fwd_flag") == {(0.0, "N"), (1.0, "Y")}
    assert pairs("rate_code", "RatecodeID") == {(c, c) for c in (1, 2, 3, 4, 5, 99)}
    for absent in LATER_COLUMNS:
        assert table.column(absent).null_count == ROWS, absent
    assert manifest.rows_outside_month == outside_month(table, "tpep_pickup_datetime",
                                                        "2010-01") > 0


def test_2010_yellow_with_timestamps_dds_and_a_missing_flag(tlc_release: TlcRelease,
                                                             tmp_path: Path) -> None:
    """Some 2010 files hold timestamps rather than text, DDS trips, flags left empty."""
    source = pq.read_table(tlc_release.tlc_file("yellow", "2010-01"))
    flags = source.column("store_and_fwd_flag").to_pylist()
    flags[3] = None
    changes = {
        "pickup_datetime": source.column("pickup_datetime").cast(pa.timestamp("ns")),
        "dropoff_datetime": source.column("dropoff_datetime").cast(pa.timestamp("ns")),
        "vendor_id": pa.array(["DDS"] * 3 + source.column("vendor_id").to_pylist()[3:]),
        "store_and_fwd_flag": pa.array(flags),
    }
    for name, column in changes.items():
        source = source.set_column(source.column_names.index(name), name, column)
    raw = tmp_path / "raw.parquet"
    pq.write_table(source, raw)
    stats = normalize(YELLOW, month("2010-01"), raw, tmp_path / "out.parquet")
    expected = canonical_old_yellow("2010-01")
    vendor_ids = [3] * 3 + expected.column("VendorID").to_pylist()[3:]
    expected_flags = expected.column("store_and_fwd_flag").to_pylist()
    expected_flags[3] = None
    expected = expected.set_column(0, "VendorID", pa.array(vendor_ids)).set_column(
        6, "store_and_fwd_flag", pa.array(expected_flags))
    assert pq.read_table(tmp_path / "out.parquet").equals(expected)
    assert stats.rows == ROWS and len(stats.dropped_columns) == 4


def write(path: Path, table: pa.Table, name: str, column: pa.Array) -> Path:
    """``table`` with ``column`` as ``name`` (replaced or appended), written to ``path``."""
    if name in table.column_names:
        table = table.set_column(table.column_names.index(name), name, column)
    else:
        table = table.append_column(name, column)
    pq.write_table(table, path)
    return path


def test_inexact_values_are_refused_on_one_line(tlc_release: TlcRelease, tmp_path: Path) -> None:
    raw = tlc_release.tlc_file("yellow", FRACTIONAL)
    out = tmp_path / "out.parquet"
    with pytest.raises(ConversionError) as refused:
        normalize(YELLOW, month(FRACTIONAL), raw, out)
    assert str(refused.value) == (
        "yellow 2021-10: column passenger_count holds values that are not whole numbers in "
        "1 row (e.g. 1.5); nothing was published")
    # A fractional id, a nanosecond timestamp with a sub-microsecond part, a stray column.
    four = pq.read_table(tlc_release.tlc_file("yellow", "2021-08")).slice(0, 4)
    with pytest.raises(ConversionError, match=r"^yellow 2021-10: column VendorID holds values "
                       r"that are not whole numbers in 2 rows \(e.g. 2.5\); nothing"):
        normalize(YELLOW, month(FRACTIONAL), write(tmp_path / "ids.parquet", four, "VendorID",
                                                   pa.array([1.0, 2.0, 2.5, 3.5])), out)
    ns = pa.array([1_000, 2_001, 3_000, 4_002], pa.timestamp("ns"))
    with pytest.raises(ConversionError, match="column tpep_pickup_datetime holds timestamps "
                       "with a sub-microsecond part in 2 rows"):
        normalize(YELLOW, month(FRACTIONAL), write(tmp_path / "ns.parquet", four,
                                                   "tpep_pickup_datetime", ns), out)
    with pytest.raises(ConversionError, match="columns the registry does not know: surprise"):
        normalize(YELLOW, month(FRACTIONAL), write(tmp_path / "more.parquet", four, "surprise",
                                                   ns), out, new_columns="refuse")


def test_a_fractional_id_fails_the_month_and_publishes_nothing(env: Env) -> None:
    env.configure(pipeline={"services": "yellow"}, scheduler={"retry_count": "1"})
    result = env.build(IngestMonth(month=month(FRACTIONAL)))
    assert result.status == LuigiStatusCode.FAILED
    assert [f for f in env.lake_files() if "zones" not in f] == [
        "raw/yellow/yellow_tripdata_2021-10.parquet",
        "raw/yellow/yellow_tripdata_2021-10.parquet.source.json"]
    assert not env.duckdb_path.exists() or duck(
        env, "SELECT count(*) FROM information_schema.tables "
        "WHERE table_name = 'yellow_tripdata'") == [(0,)]
    assert not ParquetizeMonth(service="yellow", month=month(FRACTIONAL)).complete()


def test_auto_takes_csv_for_the_mirrors_months_and_tlc_parquet_around_them(env: Env) -> None:
    def raw(key: str) -> str:
        return Path(DownloadMonth(service="yellow", month=month(key)).output().path).name

    env.configure(source={"kind": "auto"})
    assert [raw(key) for key in ("2018-12", "2019-01", "2021-07", "2021-08")] == [
        "yellow_tripdata_2018-12.parquet", "yellow_tripdata_2019-01.csv.gz",
        "yellow_tripdata_2021-07.csv.gz", "yellow_tripdata_2021-08.parquet"]
    env.configure(source={"kind": "parquet"})
    assert raw("2019-01") == "yellow_tripdata_2019-01.parquet"
    assert DownloadMonth(service="yellow", month=month("2019-01")).url.endswith(
        "/trip-data/yellow_tripdata_2019-01.parquet")
    env.configure(source={"kind": "csv"})
    assert raw("2025-01") == "yellow_tripdata_2025-01.csv.gz"


def test_a_truncated_or_foreign_parquet_download_is_refused(env: Env,
                                                           mirror: ReleaseMirror) -> None:
    env.configure(source={"retries": "1", "kind": "parquet"}, scheduler={"retry_count": "1"})
    mirror.inject("yellow_tripdata_2021-08.parquet", Fault("truncate", at=5_000))
    task = DownloadMonth(service="yellow", month=date(2021, 8, 1))
    assert env.build(task).status == LuigiStatusCode.FAILED
    mirror.inject("yellow_tripdata_2021-08.parquet", Fault("html"))
    assert env.build(task).status == LuigiStatusCode.FAILED
    assert env.lake_files() == []
    assert env.build(task).status == LuigiStatusCode.SUCCESS
    assert env.lake_files() == ["raw/yellow/yellow_tripdata_2021-08.parquet",
                                "raw/yellow/yellow_tripdata_2021-08.parquet.source.json"]


# --------------------------------------------------------------------------- CSV == Parquet


@pytest.mark.parametrize(("service", "key"), [("yellow", "2021-01"), ("green", "2020-01"),
                                              ("fhv", "2019-01")])
def test_a_month_from_csv_and_from_parquet_is_the_same_table(
        env: Env, tmp_path: Path, service: str, key: str) -> None:
    tables, manifests = {}, {}
    for kind in ("csv", "parquet"):
        env.configure(source={"kind": kind}, lake={"root": str(tmp_path / kind)})
        task = ParquetizeMonth(service=service, month=month(key))
        assert env.build(task).status == LuigiStatusCode.SUCCESS
        tables[kind] = lake_table(env, service, key)
        manifests[kind] = json.loads(task.output().manifest.file.read_text())
    assert tables["csv"].schema == tables["parquet"].schema == SERVICES[service].schema
    assert tables["csv"].equals(tables["parquet"])
    for field in ("rows", "rows_outside_month", "schema_fingerprint", "parquet_sha256"):
        assert manifests["csv"][field] == manifests["parquet"][field], field
    assert manifests["parquet"]["source_url"].endswith(f"/trip-data/{service}_tripdata_{key}"
                                                       ".parquet")
    assert manifests["csv"]["source_url"].endswith(".csv.gz")


# --------------------------------------------------------------------------- backfill


def expected_rows(tlc_release: TlcRelease, key: str) -> list[tuple]:
    """The month's canonical rows, from the sample generator and TLC's airport_fee."""
    columns = next(c for c, _, _ in samples.trip_chunks("yellow", month(key), ROWS))
    fee = pq.read_table(tlc_release.tlc_file("yellow", key)).column("airport_fee")
    arrays = [fee if n == "airport_fee" else pa.nulls(ROWS, pa.float64())
              if n in PARQUET_ONLY else columns[n] for n in YELLOW.columns]
    table = pa.Table.from_arrays(arrays, schema=YELLOW.schema)
    return sorted((tuple(row.values()) for row in table.to_pylist()), key=repr)


def test_a_backfill_across_the_csv_parquet_boundary_lands_one_table(
        env: Env, tlc_release: TlcRelease) -> None:
    env.configure(pipeline={"services": "yellow"}, source={"kind": "auto"})
    result = env.build(Backfill(start=date(2021, 6, 1), end=date(2021, 9, 1)))
    assert result.status == LuigiStatusCode.SUCCESS
    assert [f for f in env.lake_files() if f.startswith("raw/yellow")
            and not f.endswith(".source.json")] == [
        "raw/yellow/yellow_tripdata_2021-06.csv.gz", "raw/yellow/yellow_tripdata_2021-07.csv.gz",
        "raw/yellow/yellow_tripdata_2021-08.parquet", "raw/yellow/yellow_tripdata_2021-09.parquet"]
    names = ", ".join(f'"{n}"' for n in YELLOW.columns)
    for key in ("2021-06", "2021-07", "2021-08", "2021-09"):
        found = duck(env, f"SELECT {names} FROM yellow_tripdata WHERE source_month = ?",
                     [month(key)])
        assert sorted(found, key=repr) == expected_rows(tlc_release, key), key
    assert duck(env, "SELECT count(*) FILTER (airport_fee IS NOT NULL) FROM yellow_tripdata "
                "WHERE source_month >= '2021-08-01'") == [(2 * ROWS,)]


def test_fhvhv_lands_in_duckdb(env: Env, tlc_release: TlcRelease) -> None:
    result = env.build(IngestMonth(month=date(2025, 1, 1), services=("fhvhv",)))
    assert result.status == LuigiStatusCode.SUCCESS
    source = pq.read_table(tlc_release.tlc_file("fhvhv", "2025-01"))
    assert duck(env, "SELECT count(*), sum(trip_time), count(DISTINCT hvfhs_license_num) "
                "FROM fhvhv_tripdata") == [
        (ROWS, pc.sum(source.column("trip_time")).as_py(), 2)]
    assert lake_table(env, "fhvhv", "2025-01").schema == SERVICES["fhvhv"].schema


def fhvhv_table(tlc_release: TlcRelease, key: str) -> pa.Table:
    """A fhvhv month as the registry publishes it: up to 2021-07 the CSV mirror's 7 columns
    (from the generator), after it TLC's Parquet file's columns; the rest null."""
    if key <= "2021-07":
        columns = next(c for c, _, _ in samples.trip_chunks("fhvhv", month(key), ROWS))
    else:
        source = pq.read_table(tlc_release.tlc_file("fhvhv", key))
        columns = dict(zip(source.column_names, source.columns, strict=True))
    return pa.Table.from_arrays(
        [columns[f.name].cast(f.type) if f.name in columns else pa.nulls(ROWS, f.type)
         for f in FHVHV.schema], schema=FHVHV.schema)


def shared_rides(tlc_release: TlcRelease, key: str) -> int:
    return ROWS - fhvhv_table(tlc_release, key).column("SR_Flag").null_count


def test_a_fhvhv_csv_month_lands_in_the_schema_of_the_parquet_months(
        env: Env, tlc_release: TlcRelease, mirror: ReleaseMirror) -> None:
    key = "2019-02"  # the first month of High Volume FHV
    result = env.build(IngestMonth(month=month(key), services=("fhvhv",)))
    assert result.status == LuigiStatusCode.SUCCESS
    assert [f for f in env.lake_files() if f.startswith("raw/fhvhv")] == [
        "raw/fhvhv/fhvhv_tripdata_2019-02.csv.gz",
        "raw/fhvhv/fhvhv_tripdata_2019-02.csv.gz.source.json"]
    # Fetched under the release path fhvhv/, through GitHub's redirect to the asset.
    served = mirror.requests_for("fhvhv_tripdata_2019-02.csv.gz")
    assert {(s.path, s.status) for s in served} == {
        ("/release-assets/fhvhv/fhvhv_tripdata_2019-02.csv.gz", 200)}
    table = lake_table(env, "fhvhv", key)
    expected = fhvhv_table(tlc_release, key)
    # Exact rows: int64 zone ids, timestamp[us], empty SR_Flag as null, Parquet-only null.
    assert table.schema == FHVHV.schema
    assert table.equals(expected)
    assert set(table.column("hvfhs_license_num").to_pylist()) == {
        "HV0002", "HV0003", "HV0004", "HV0005"}
    shared = shared_rides(tlc_release, key)
    assert 0 < shared < ROWS // 5
    assert set(table.column("SR_Flag").to_pylist()) == {"1", None}
    assert table.column("trip_time").type == pa.int64()
    assert table.column("trip_time").null_count == ROWS
    manifest = ParquetizeMonth(service="fhvhv", month=month(key)).output().valid()
    assert manifest is not None and manifest.rows == ROWS
    assert manifest.source_url == (f"{mirror.base_url}/fhvhv/fhvhv_tripdata_2019-02.csv.gz")
    assert manifest.rows_outside_month == outside_month(expected, "pickup_datetime", key) > 0
    # The same canonical schema as a month from TLC's Parquet.
    parquet_month = ParquetizeMonth(service="fhvhv", month=month("2021-08"))
    assert env.build(parquet_month).status == LuigiStatusCode.SUCCESS
    assert lake_table(env, "fhvhv", "2021-08").schema == table.schema
    assert parquet_month.output().valid().schema_fingerprint == manifest.schema_fingerprint
    types = dict(duck(env, "SELECT column_name, data_type FROM information_schema.columns "
                      "WHERE table_name = 'fhvhv_tripdata'"))
    assert [types[c] for c in ("hvfhs_license_num", "pickup_datetime", "PULocationID",
                               "trip_time", "SR_Flag")] == [
        "VARCHAR", "TIMESTAMP", "BIGINT", "BIGINT", "VARCHAR"]
    assert duck(env, "SELECT count(*), count(\"SR_Flag\"), count(*) FILTER (\"SR_Flag\" = ''), "
                "count(\"PULocationID\"), count(trip_miles) FROM fhvhv_tripdata") == [
        (ROWS, shared, 0, ROWS, 0)]


def test_a_fhvhv_backfill_across_the_csv_parquet_boundary_lands_one_table(
        env: Env, tlc_release: TlcRelease) -> None:
    keys = ("2021-06", "2021-07", "2021-08", "2021-09")
    env.configure(pipeline={"services": "fhvhv"})
    result = env.build(Backfill(start=month(keys[0]), end=month(keys[-1])))
    assert result.status == LuigiStatusCode.SUCCESS
    assert [f for f in env.lake_files() if f.startswith("raw/fhvhv")
            and not f.endswith(".source.json")] == [
        "raw/fhvhv/fhvhv_tripdata_2021-06.csv.gz", "raw/fhvhv/fhvhv_tripdata_2021-07.csv.gz",
        "raw/fhvhv/fhvhv_tripdata_2021-08.parquet", "raw/fhvhv/fhvhv_tripdata_2021-09.parquet"]
    columns = [c for (c,) in duck(env, "SELECT column_name FROM information_schema.columns "
                                  "WHERE table_name = 'fhvhv_tripdata' ORDER BY ordinal_position")]
    assert columns == [*FHVHV.columns, "source_month"]
    assert duck(env, "SELECT source_month, count(*), count(\"SR_Flag\"), count(trip_miles) "
                "FROM fhvhv_tripdata GROUP BY 1 ORDER BY 1") == [
        (month("2021-06"), ROWS, shared_rides(tlc_release, "2021-06"), 0),
        (month("2021-07"), ROWS, shared_rides(tlc_release, "2021-07"), 0),
        (month("2021-08"), ROWS, 0, ROWS),
        (month("2021-09"), ROWS, 0, ROWS)]
    names = ", ".join(f'"{n}"' for n in FHVHV.columns)
    for key in keys:
        found = duck(env, f"SELECT {names} FROM fhvhv_tripdata WHERE source_month = ?",
                     [month(key)])
        expected = [tuple(row.values()) for row in fhvhv_table(tlc_release, key).to_pylist()]
        assert sorted(found, key=repr) == sorted(expected, key=repr), key


# --------------------------------------------------------------------------- warehouses


OLD = date(2021, 7, 1)
NEW = date(2021, 8, 1)


@dataclass
class Engine:
    """One warehouse engine as the column contract sees it: its load task, SQL, its columns."""

    task: type[MonthLoad]
    run_sql: Callable[[str], list]
    columns: Callable[[str], list[str]]
    table_name: Callable[[str], str]
    quote: Callable[[str], str]
    dialect: Dialect

    def create(self, table: str, schema: pa.Schema) -> None:
        body = ", ".join(f"{self.quote(n)} {t}" for n, t in self.dialect.columns(schema))
        self.run_sql(f"CREATE TABLE {self.table_name(table)} ({body})")


def double_quoted(name: str) -> str:
    return f'"{name}"'


@pytest.fixture(params=["duckdb", "postgres", "bigquery"])
def engine(request: pytest.FixtureRequest, env: Env) -> Engine:
    """Each engine in turn, with its sink configured."""
    if request.param == "duckdb":
        def run_duck(sql: str) -> list:
            with duckdb.connect(str(env.duckdb_path)) as con:
                con.execute(sql)
                return con.fetchall() if con.description else []

        return Engine(LoadDuckDB, run_duck, lambda table: [c for (c,) in duck(
            env, "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position", [table])], double_quoted, double_quoted,
            duckdb_warehouse.DIALECT)
    if request.param == "postgres":
        db: Database = request.getfixturevalue("postgres_db")
        env.configure(postgres={"url": db.url}, pipeline={"sinks": "postgres"})
        def run_pg(sql: str) -> list:
            # As the pipeline's role, so that the table is its own.
            with psycopg.connect(db.url, autocommit=True) as con, con.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else []

        return Engine(LoadPostgres, run_pg, lambda table: [
            c for (c,) in db.query(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", [table])],
            # PostgreSQL's columns are in lower case (issue 28).
            double_quoted, lambda name: double_quoted(name.lower()), postgres_warehouse.DIALECT)
    cloud: Cloud = request.getfixturevalue("cloud")
    env.configure(pipeline={"sinks": "gcs,bigquery"})
    return Engine(LoadBigQuery, cloud.query, lambda table: [
        f.name for f in cloud.bq.client().get_table(cloud.table(table)).schema],
        lambda table: f"`{cloud.table(table)}`", lambda name: f"`{name}`",
        bigquery_load.DIALECT)


# A table made by an earlier pipeline, which knew fewer columns: the registry's columns then,
# source_month, and one row of an earlier month.
ADDED_LATER = {
    "yellow": (PARQUET_ONLY, "2021-08", "VendorID"),  # airport_fee, cbd_congestion_fee
    "fhvhv": (("SR_Flag",), "2021-07", "hvfhs_license_num"),  # the CSV months' column
}


@pytest.mark.parametrize("service", sorted(ADDED_LATER))
def test_every_warehouse_adds_new_registry_columns_in_place(
        env: Env, engine: Engine, service: str, tlc_release: TlcRelease) -> None:
    added, key, id_column = ADDED_LATER[service]
    registry = SERVICES[service]
    table = f"{service}_tripdata"
    earlier = date(2019, 3, 1)
    before = [c for c in registry.columns if c not in added]
    engine.create(table, pa.schema([registry.schema.field(c) for c in before])
                  .append(pa.field("source_month", pa.date32())))
    value = "'HV0003'" if id_column == "hvfhs_license_num" else "7"
    engine.run_sql(f"INSERT INTO {engine.table_name(table)} ({engine.quote(id_column)}, "
                   f"{engine.quote('source_month')}) VALUES ({value}, DATE '2019-03-01')")
    env.configure(pipeline={"services": service})

    load = engine.task(service=service, month=month(key))
    assert env.build(load).status == LuigiStatusCode.SUCCESS
    assert engine.columns(table) == [engine.dialect.column_name(c)
                                     for c in [*before, "source_month", *added]]
    counts = ", ".join(f"count({engine.quote(c)})" for c in added)
    found = sorted(engine.run_sql(
        f"SELECT {engine.quote('source_month')}, count(*), {counts} "
        f"FROM {engine.table_name(table)} GROUP BY 1"))
    new = lake_table(env, service, key)
    assert found == [(earlier, 1, *([0] * len(added))),
                     (month(key), ROWS, *(ROWS - new.column(c).null_count for c in added))]
    assert load.complete()
    # The next load takes the table as it now is (source_month before the added columns).
    next_key = f"{next_month(month(key)):%Y-%m}"
    assert env.build(engine.task(service=service, month=month(next_key))).status == \
        LuigiStatusCode.SUCCESS


def test_every_warehouse_refuses_a_table_that_is_not_a_prefix_of_the_registry(
        env: Env, engine: Engine) -> None:
    """A table whose columns differ otherwise (one is missing) is left as it is."""
    columns = [f for f in YELLOW.schema if f.name != "VendorID"]
    engine.create("yellow_tripdata", pa.schema(columns).append(
        pa.field("source_month", pa.date32())))
    env.configure(pipeline={"services": "yellow"}, scheduler={"retry_count": "1"})
    assert env.build(engine.task(service="yellow", month=NEW)).status == \
        LuigiStatusCode.FAILED
    assert engine.columns("yellow_tripdata") == [
        *(engine.dialect.column_name(f.name) for f in columns), "source_month"]
    assert engine.run_sql(f"SELECT count(*) FROM {engine.table_name('yellow_tripdata')}") == \
        [(0,)]
