"""The per-month data-quality report: counted while a month is converted, recorded in its
manifest, shown by status; a month that passes, one that warns, one that is blocked; and
the three real green months of ../shared/real/samples through the real converter."""

from __future__ import annotations

import gzip
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline import ParquetizeMonth
from pipeline.convert.quality import CHECKS, QualityCounter, judge
from pipeline.core.datasets import SERVICES
from pipeline.demo import samples
from tests.conftest import Env, Release
from tests.mirror import ReleaseMirror

JAN = date(2021, 1, 1)
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "real" / "samples" / "parquet"
DEFAULTS = {"negative_fare_or_total": 0.02, "dropoff_before_pickup": 0.01,
            "pickup_outside_month": 0.01, "zone_id_invalid": 0.01,
            "distance_over_1000_miles": 0.005, "passenger_count_invalid": 0.05,
            "null_id": 0.10}


def table_of(service: str, rows: int, **columns: list) -> pa.Table:
    """A canonical table of ``service``: the given columns, nulls elsewhere."""
    schema = SERVICES[service].schema
    return pa.Table.from_arrays(
        [pa.array(columns.get(f.name, [None] * rows), f.type) for f in schema], schema=schema)


def at(day: int, minute: int = 0) -> datetime:
    return datetime(2021, 1, day, 12, minute)


def test_each_check_counts_the_rows_it_names_in_every_service() -> None:
    yellow = QualityCounter(SERVICES["yellow"], JAN)
    yellow.add(table_of(
        "yellow", 6,
        tpep_pickup_datetime=[at(1), at(2), at(3), at(4), at(5), datetime(2020, 12, 31)],
        tpep_dropoff_datetime=[at(1, 9), at(2, 9), at(2, 9), at(4, 9), at(5, 9), at(1)],
        fare_amount=[5.0, -1.0, 5.0, 5.0, 5.0, None],
        total_amount=[6.0, 0.0, -2.0, 6.0, 6.0, 6.0],
        PULocationID=[1, 265, 264, 0, 7, 7], DOLocationID=[2, 3, 4, 5, None, 7],
        trip_distance=[1.0, 1.0, 1.0, 1500.0, 1000.0, None],
        passenger_count=[1, 9, 2, None, 0, 10], VendorID=[1, 2, 1, 2, 1, None]))
    assert yellow.counts() == {
        "negative_fare_or_total": 2, "dropoff_before_pickup": 1, "pickup_outside_month": 1,
        "zone_id_invalid": 2, "distance_over_1000_miles": 1, "passenger_count_invalid": 2,
        "null_id": 1}
    assert list(yellow.counts()) == list(CHECKS)

    # fhv bases often report no zone: a null zone is normal there, an impossible one is not.
    fhv = QualityCounter(SERVICES["fhv"], JAN)
    fhv.add(table_of("fhv", 3, pickup_datetime=[at(1), at(2), at(3)],
                     dropoff_datetime=[at(1, 5), at(2, 5), at(3, 5)],
                     PULocationID=[None, 5, 4], DOLocationID=[None, 300, 4],
                     dispatching_base_num=["B00001", None, "B00002"]))
    assert fhv.counts() == {
        "negative_fare_or_total": None, "dropoff_before_pickup": 0, "pickup_outside_month": 0,
        "zone_id_invalid": 1, "distance_over_1000_miles": None,
        "passenger_count_invalid": None, "null_id": 1}

    fhvhv = QualityCounter(SERVICES["fhvhv"], JAN)
    fhvhv.add(table_of("fhvhv", 2, pickup_datetime=[at(1), at(2)],
                       dropoff_datetime=[at(1, 5), at(2, 5)], PULocationID=[None, 5],
                       DOLocationID=[4, 5], base_passenger_fare=[-5.0, 10.0],
                       trip_miles=[2000.0, 3.0], hvfhs_license_num=["HV0003", None]))
    assert fhvhv.counts() == {
        "negative_fare_or_total": 1, "dropoff_before_pickup": 0, "pickup_outside_month": 0,
        "zone_id_invalid": 1, "distance_over_1000_miles": 1,
        "passenger_count_invalid": None, "null_id": 1}

    # 2009-2010 yellow has coordinates, no zone ids: not applicable rather than 100 %.
    old = QualityCounter(SERVICES["yellow"], JAN)
    for _ in range(2):  # counted across tables, not per table
        old.add(table_of("yellow", 2, tpep_pickup_datetime=[at(1), at(2)],
                         tpep_dropoff_datetime=[at(1, 5), at(2, 5)], VendorID=[1, 2]))
    assert old.counts()["zone_id_invalid"] is None
    assert old.counts()["null_id"] == 0


def test_a_check_warns_only_above_its_share_of_the_rows() -> None:
    counts = {"negative_fare_or_total": 20, "null_id": 21, "zone_id_invalid": None}
    findings = judge(counts, 1_000, {"negative_fare_or_total": 0.02, "null_id": 0.02,
                                     "zone_id_invalid": 0.0})
    assert [(f.check, f.count) for f in findings] == [("null_id", 21)]
    assert findings[0].describe() == "null_id 21 of 1,000 rows (2.1% > threshold 0.02)"


def write_odd_month(root: Path, rows: int = 4_000) -> dict[str, int]:
    """A green January with more negative fares than the 2 % default allows, and a few of
    every other problem; returns each check's count, worked out row by row here."""
    columns = {}
    for chunk, _, _ in samples.trip_chunks("green", JAN, rows):
        columns = {name: array.to_pylist() for name, array in chunk.items()}
    for i in range(300):
        columns["fare_amount"][i] = -abs(columns["fare_amount"][i])
    for i in range(300, 320):
        columns["lpep_dropoff_datetime"][i] = (columns["lpep_pickup_datetime"][i]
                                               - timedelta(minutes=5))
    for i in range(320, 330):
        columns["PULocationID"][i] = 266 if i % 2 else None
    for i in range(330, 335):
        columns["trip_distance"][i] = 201_421.68
    for i in range(335, 340):
        columns["passenger_count"][i] = 12
    header = samples.header_for("green", JAN)
    table = pa.table({name: columns[name] for name in header})
    path = root / "green" / "green_tripdata_2021-01.csv.gz"
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wb") as out:
        pacsv.write_csv(table, out, pacsv.WriteOptions(quoting_style="none"))
    samples.write_zones(root / "misc" / "taxi_zone_lookup.csv")
    start, end = datetime(2021, 1, 1), datetime(2021, 2, 1)
    rows_of = list(zip(*(columns[c] for c in (
        "fare_amount", "total_amount", "lpep_pickup_datetime", "lpep_dropoff_datetime",
        "PULocationID", "DOLocationID", "trip_distance", "passenger_count", "VendorID")),
        strict=True))
    return {
        "negative_fare_or_total": sum(f < 0 or t < 0 for f, t, *_ in rows_of),
        "dropoff_before_pickup": sum(d < p for _, _, p, d, *_ in rows_of),
        "pickup_outside_month": sum(not start <= p < end for _, _, p, *_ in rows_of),
        "zone_id_invalid": sum(any(z is None or not 1 <= z <= 265 for z in (pu, do))
                               for *_, pu, do, _, _, _ in rows_of),
        "distance_over_1000_miles": sum(m > 1000 for *_, m, _, _ in rows_of),
        "passenger_count_invalid": sum(n is not None and not 1 <= n <= 9
                                       for *_, n, _ in rows_of),
        "null_id": sum(v is None for *_, v in rows_of),
    }


@pytest.fixture
def odd_month(env: Env, tmp_path: Path) -> dict[str, int]:
    counts = write_odd_month(tmp_path / "odd-release")
    server = ReleaseMirror(tmp_path / "odd-release").start()
    env.configure(source={"base_url": server.base_url, "zones_url": server.zones_url},
                  scheduler={"retry_count": "1"})
    yield counts
    server.stop()


def manifest_of(env: Env, service: str, key: str) -> dict:
    folder = env.lake / "parquet" / service / f"year={key[:4]}" / f"month={key[5:]}"
    return json.loads((folder / "_manifest.json").read_text())


def quality_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "quality" in line]


def test_a_month_within_the_thresholds_records_its_counts_and_passes(
        env: Env, release: Release) -> None:
    run = env.command("taxi-pipeline", "ingest", "--month", "2021-01", "--services", "green",
                      "--local-scheduler")
    assert run.returncode == 0, run.stderr[-2000:]
    assert quality_lines(run.stderr) == []
    facts = release.of("green", "2021-01")
    manifest = manifest_of(env, "green", "2021-01")
    parquet = pq.read_table(env.lake / "parquet" / "green" / "year=2021" / "month=01"
                            / "green_tripdata_2021-01.parquet")
    zero_passengers = parquet.filter(pa.compute.equal(parquet["passenger_count"], 0)).num_rows
    assert manifest["quality"] == {
        "negative_fare_or_total": facts.refund_rows, "dropoff_before_pickup": 0,
        "pickup_outside_month": facts.rows_outside_month, "zone_id_invalid": 0,
        "distance_over_1000_miles": 0, "passenger_count_invalid": zero_passengers,
        "null_id": facts.empty_tail_rows}
    assert zero_passengers > 0 and facts.refund_rows > 0
    # What the run did: seconds per stage, rows, bytes, rows per second.
    figures = manifest["run"]
    assert figures["rows"] == facts.rows == manifest["rows"]
    assert figures["bytes"] == {"source": manifest["source_bytes"],
                                "parquet": manifest["parquet_bytes"]}
    assert figures["seconds"]["download"] > 0 and figures["seconds"]["convert"] > 0
    convert = figures["seconds"]["convert"]  # rounded to the millisecond
    assert facts.rows / (convert + 0.0005) - 1 <= figures["rows_per_second"] \
        <= facts.rows / max(convert - 0.0005, 1e-9) + 1


def test_a_month_over_a_threshold_warns_once_and_is_published(
        env: Env, odd_month: dict[str, int]) -> None:
    run = env.command("taxi-pipeline", "ingest", "--month", "2021-01", "--services", "green",
                      "--local-scheduler")
    assert run.returncode == 0, run.stderr[-2000:]
    negative = odd_month["negative_fare_or_total"]
    assert negative > 0.02 * 4_000
    warnings = quality_lines(run.stderr)
    assert len(warnings) == 1, warnings
    assert warnings[0].endswith(
        f"green 2021-01: quality warning: negative_fare_or_total {negative:,} of 4,000 rows "
        f"({negative / 40:.1f}% > threshold 0.02) (published; [quality] blocking would fail "
        "the month)")
    assert manifest_of(env, "green", "2021-01")["quality"] == odd_month
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM green_tripdata").fetchone() == (4_000,)

    status = env.command("taxi-pipeline", "status", "--services", "green", "--no-source-check")
    assert status.returncode == 0  # complete: a warning is not a missing stage
    header, line = status.stdout.splitlines()
    assert header.split()[-2:] == ["quality", "state"]
    assert line.split()[-3:] == ["warn:", "negative_fare_or_total", "complete"]
    records = json.loads(env.command("taxi-pipeline", "status", "--services", "green",
                                     "--no-source-check", "--format", "json").stdout)
    assert records[0]["quality"] == odd_month
    assert records[0]["quality_warnings"] == ["negative_fare_or_total"]


def test_a_blocking_check_fails_the_month_before_anything_is_published(
        env: Env, odd_month: dict[str, int]) -> None:
    env.configure(quality={"blocking": "negative_fare_or_total, null_id"})
    run = env.command("taxi-pipeline", "ingest", "--month", "2021-01", "--services", "green",
                      "--local-scheduler")
    assert run.returncode == 30
    negative = odd_month["negative_fare_or_total"]
    failed = [line for line in run.stderr.splitlines() if line.startswith("DISABLED")]
    assert failed == [
        "DISABLED ParquetizeMonth(service=green, month=2021-01): QualityBlocked: green 2021-01: "
        f"blocking quality check failed: negative_fare_or_total {negative:,} of 4,000 rows "
        f"({negative / 40:.1f}% > threshold 0.02); nothing was published"]
    # Nothing under parquet/ (no file renamed into place, no manifest), nothing loaded.
    assert [f for f in env.lake_files() if not f.startswith("raw/")] == []
    assert not env.duckdb_path.exists() or duckdb.connect(
        str(env.duckdb_path), read_only=True).execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'green_tripdata'"
    ).fetchone() == (0,)
    # The same month passes once the check only warns again.
    env.configure(quality={"blocking": ""})
    assert env.build(ParquetizeMonth(service="green", month=JAN)).status == \
        LuigiStatusCode.SUCCESS


@pytest.mark.parametrize(("setting", "message"), [
    ({"null_id": "1.5"}, "error: [quality] thresholds are shares of a month's rows, 0 to 1: "
                         "null_id = 1.5"),
    ({"blocking": "negative_fares"}, "error: unknown [quality] blocking check "
                                     "'negative_fares': expected any of"),
])
def test_a_quality_setting_that_cannot_be_honoured_is_refused(
        env: Env, setting: dict[str, str], message: str) -> None:
    env.configure(quality=setting)
    run = env.command("taxi-pipeline", "ingest", "--month", "2021-01", "--services", "green",
                      "--local-scheduler")
    assert run.returncode == 40
    assert run.stderr.splitlines()[-1].startswith(message)
    assert env.lake_files() == []


# Measured on the real files (pyarrow, outside the pipeline); QUIRKS.md has the same rates.
REAL_COUNTS = {
    "2023-01": {"negative_fare_or_total": 179, "dropoff_before_pickup": 0,
                "pickup_outside_month": 4, "zone_id_invalid": 0,
                "distance_over_1000_miles": 34, "passenger_count_invalid": 336, "null_id": 0},
    "2023-12": {"negative_fare_or_total": 191, "dropoff_before_pickup": 0,
                "pickup_outside_month": 4, "zone_id_invalid": 0,
                "distance_over_1000_miles": 47, "passenger_count_invalid": 462, "null_id": 0},
    "2024-01": {"negative_fare_or_total": 186, "dropoff_before_pickup": 0,
                "pickup_outside_month": 2, "zone_id_invalid": 0,
                "distance_over_1000_miles": 46, "passenger_count_invalid": 512, "null_id": 0},
}
REAL_ROWS = {"2023-01": 68_211, "2023-12": 64_215, "2024-01": 56_551}


def test_the_three_real_green_months_pass_the_default_thresholds(env: Env) -> None:
    if not all((REAL / f"green_tripdata_{key}.parquet").exists() for key in REAL_COUNTS):
        pytest.skip(f"the real green samples are not at {REAL} (a clone without ../shared)")
    with ReleaseMirror(env.tmp, tlc_root=REAL) as tlc:  # serves the files where they are
        env.configure(source={"kind": "parquet", "parquet_base_url": tlc.parquet_base_url})
        tasks = [ParquetizeMonth(service="green", month=date(int(k[:4]), int(k[5:]), 1))
                 for k in REAL_COUNTS]
        assert env.build(*tasks).status == LuigiStatusCode.SUCCESS
    for key, expected in REAL_COUNTS.items():
        manifest = manifest_of(env, "green", key)
        print(f"real green {key}: {manifest['rows']:,} rows, quality {manifest['quality']}")
        assert manifest["rows"] == REAL_ROWS[key]
        assert manifest["quality"] == expected
        assert judge(manifest["quality"], manifest["rows"], DEFAULTS) == []


def test_the_defaults_above_are_luigi_cfgs(env: Env) -> None:
    from pipeline import config

    assert config.quality().thresholds() == DEFAULTS
    assert config.quality().blocking_checks() == frozenset()
