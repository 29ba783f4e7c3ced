"""Three real TLC green months and the real zone lookup, end to end (issue 12): served as
TLC's CloudFront serves them by a local server, through real Luigi workers into DuckDB and
PostgreSQL. Exact rows, money to the cent, null counts and out-of-month rows as in the
source files (computed from them here), zones 264/265 as the strings ``N/A``.

The files are public data that may not be committed: they are read from
``../shared/real/samples/`` beside the project when it is there, and the tests skip, saying
why, when it is not."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline.core.datasets import GREEN
from pipeline.core.months import next_month
from pipeline.tasks.flows import IngestMonth
from pipeline.tasks.parquetize import ParquetizeMonth
from tests.conftest import Env
from tests.fixtures_postgres import Database
from tests.mirror import ReleaseMirror

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "real" / "samples"
PARQUET = SAMPLES / "parquet"
ZONES = SAMPLES / "zones" / "taxi_zone_lookup__current_2024_version.csv"
# Rows read from each file's footer (SCHEMAS.md, grade A), and its out-of-month pickups
# (QUIRKS.md: 2023-01 one in 2009, two in 2022-12, one in 2023-02; 2023-12 four from
# November; 2024-01 two from 2023-12-31).
MONTHS = {date(2023, 1, 1): (68_211, 4), date(2023, 12, 1): (64_215, 4),
          date(2024, 1, 1): (56_551, 2)}
MONEY = ("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "ehail_fee",
         "improvement_surcharge", "total_amount", "congestion_surcharge", "trip_distance")

pytestmark = pytest.mark.skipif(
    not (PARQUET.is_dir() and ZONES.is_file()),
    reason=f"the real sample files are not at {SAMPLES} (public data the repository may not "
           "hold: CI has them beside the project, a clone does not)")


def source(month: date) -> Path:
    return PARQUET / f"green_tripdata_{month:%Y-%m}.parquet"


@pytest.fixture
def real_mirror(tmp_path: Path) -> Iterator[ReleaseMirror]:
    """TLC's layout straight from the samples folder (read only); the lookup under the
    release's name, copied to the test's temporary directory."""
    release = tmp_path / "release"
    (release / "misc").mkdir(parents=True)
    shutil.copyfile(ZONES, release / "misc" / "taxi_zone_lookup.csv")
    with ReleaseMirror(release, tlc_root=PARQUET) as server:
        yield server


@pytest.fixture
def real_env(env: Env, real_mirror: ReleaseMirror, postgres_db: Database) -> Env:
    env.configure(source={"kind": "parquet", "parquet_base_url": real_mirror.parquet_base_url,
                          "zones_url": real_mirror.zones_url},
                  postgres={"url": postgres_db.url},
                  pipeline={"services": "green", "sinks": "duckdb,postgres"},
                  scheduler={"retry_count": "1"})
    return env


def cents(column: str) -> str:
    return f"sum(CAST(round({column} * 100) AS BIGINT)), count({column})"


def source_figures(table: pa.Table) -> list[int | None]:
    """Per money column: the sum in cents (each value rounded to a cent first, so that the
    order of summation cannot matter) and the count of values."""
    figures: list[int | None] = [table.num_rows]
    for name in MONEY:
        column = table.column(name).cast(pa.float64())
        whole = pc.round(pc.multiply(column, 100.0)).cast(pa.int64())
        figures += [pc.sum(whole).as_py(), len(column) - column.null_count]
    return figures


def outside(table: pa.Table, month: date) -> int:
    start, end = (pa.scalar(datetime(m.year, m.month, 1), pa.timestamp("us"))
                  for m in (month, next_month(month)))
    pickup = table.column("lpep_pickup_datetime")
    inside = pc.sum(pc.and_(pc.greater_equal(pickup, start), pc.less(pickup, end))).as_py()
    return table.num_rows - pickup.null_count - inside


def test_three_real_green_months_land_exactly(real_env: Env, real_mirror: ReleaseMirror,
                                              postgres_db: Database) -> None:
    tasks = [IngestMonth(month=month) for month in MONTHS]
    assert real_env.build(*tasks).status == LuigiStatusCode.SUCCESS
    figures = f"count(*), {', '.join(cents(c) for c in MONEY)}"
    with duckdb.connect(str(real_env.duckdb_path), read_only=True) as con:
        for month, (rows, out_of_month) in MONTHS.items():
            real = pq.read_table(source(month))
            assert real.num_rows == rows
            wanted = source_figures(real)
            assert wanted[1 + 2 * MONEY.index("ehail_fee") + 1] == 0  # 100 % null, as read
            task = ParquetizeMonth(service="green", month=month)
            manifest = task.output().valid()
            assert manifest is not None and manifest.rows == rows
            assert manifest.rows_outside_month == outside(real, month) == out_of_month
            # The lake's Parquet holds the file's values under the registry's schema.
            published = pq.read_table(task.output().parquet.path)
            assert published.schema == GREEN.schema
            for f in GREEN.schema:
                if f.name in real.column_names:
                    assert published.column(f.name).equals(
                        real.column(f.name).cast(f.type)), (month, f.name)
                else:
                    assert published.column(f.name).null_count == rows
            found = con.execute(f"SELECT {figures} FROM green_tripdata WHERE source_month = ?",
                                [month]).fetchone()
            assert list(found) == wanted, month
            assert postgres_db.query(f"SELECT {figures} FROM green_tripdata "
                                     "WHERE source_month = %s", [month])[0] == tuple(wanted)
            negative = pc.sum(pc.less(real.column("fare_amount"), 0)).as_py()
            assert 176 <= negative <= 189
            assert con.execute("SELECT count(*) FROM green_tripdata WHERE source_month = ? "
                               "AND fare_amount < 0", [month]).fetchone() == (negative,)
            assert len(real_mirror.requests_for(source(month).name, "GET")) == 1
        # The real lookup: 265 zones, 264 and 265 with the text N/A, nothing empty.
        zones = con.execute("SELECT * FROM zones WHERE LocationID >= 264 ORDER BY 1").fetchall()
        assert zones == [(264, "Unknown", "N/A", "N/A"), (265, "N/A", "Outside of NYC", "N/A")]
        assert con.execute("SELECT count(*), count(Borough), count(Zone), count(service_zone) "
                           "FROM zones").fetchone() == (265, 265, 265, 265)
    # PostgreSQL's column names are in lower case (issue 28), DuckDB's TLC's.
    assert postgres_db.query("SELECT locationid, borough, zone, service_zone FROM zones "
                             "WHERE locationid >= 264 ORDER BY 1") == zones
