"""The dbt example (``examples/dbt``) builds green on the warehouses as the pipeline leaves
them: ``dbt build`` with dbt-duckdb on the DuckDB file and with dbt-postgres on a real
PostgreSQL, both filled by the pipeline from the test mirror, each in a non-default schema.

dbt lives in its own venv (``make venv-dbt``: ``.venv-dbt``, from requirements-dbt.lock);
the test skips, saying so, when it is missing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from luigi.execution_summary import LuigiStatusCode
from psycopg.conninfo import conninfo_to_dict

from pipeline import IngestMonth
from pipeline.demo import samples
from tests.conftest import PROJECT, Env, Release
from tests.fixtures_postgres import Database

pytestmark = pytest.mark.dbt

DBT = PROJECT / ".venv-dbt" / "bin" / "dbt"
EXAMPLE = PROJECT / "examples" / "dbt"
RAW_SCHEMA = "raw_taxi"  # where the pipeline loads: not DuckDB's main nor Postgres' public
DBT_SCHEMA = "analytics"
# One month of each service: the test release's months, and a small fhvhv month.
MONTHS = {"yellow": date(2021, 1, 1), "green": date(2019, 12, 1), "fhv": date(2020, 1, 1),
          "fhvhv": date(2019, 3, 1)}
FHVHV_ROWS = 3_000
# Every model and data test of the example (dbt build's "PASS=" count).
NODES = 6 + 15


@pytest.fixture(scope="module")
def fhvhv_month(release: Release) -> samples.SampleFacts:
    """An fhvhv month beside the release's (the default release has none)."""
    path = release.root / "fhvhv" / "fhvhv_tripdata_2019-03.csv.gz"
    return samples.write_month(path, "fhvhv", MONTHS["fhvhv"], FHVHV_ROWS)


@pytest.fixture
def filled(env: Env, postgres_db: Database, release: Release,
           fhvhv_month: samples.SampleFacts) -> Iterator[Database]:
    """Both warehouses filled by one run per month, in schema raw_taxi."""
    if not DBT.exists():
        pytest.skip(f"no dbt at {DBT}: `make venv-dbt` installs it (requirements-dbt.lock)")
    env.configure(pipeline={"services": ",".join(MONTHS), "sinks": "duckdb,postgres"},
                  duckdb={"schema": RAW_SCHEMA},
                  postgres={"url": postgres_db.url, "schema": RAW_SCHEMA})
    for service, month in MONTHS.items():
        result = env.build(IngestMonth(month=month, services=(service,)))
        assert result.status == LuigiStatusCode.SUCCESS, service
    yield postgres_db


def dbt_build(env: Env, target: str, extra_env: dict[str, str]) -> str:
    """``dbt build`` of the example against ``target``; its output, after a zero exit."""
    work = env.tmp / f"dbt-{target}"
    result = subprocess.run(
        [str(DBT), "build", "--project-dir", str(EXAMPLE), "--profiles-dir", str(EXAMPLE),
         "--target", target, "--target-path", str(work / "target"),
         "--log-path", str(work / "logs"), "--vars", f"{{pipeline_schema: {RAW_SCHEMA}}}",
         "--no-send-anonymous-usage-stats", "--no-version-check", "--no-partial-parse"],
        env={**os.environ, "TAXI_DBT_SCHEMA": DBT_SCHEMA, "DO_NOT_TRACK": "1",
             **extra_env},
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"PASS={NODES} WARN=0 ERROR=0 SKIP=0" in result.stdout, result.stdout[-3000:]
    return result.stdout


def expected_trips(release: Release, fhvhv: samples.SampleFacts) -> dict[str, int]:
    rows = {s: release.of(s, f"{m:%Y-%m}").rows for s, m in MONTHS.items() if s != "fhvhv"}
    return {**rows, "fhvhv": fhvhv.rows}


def check_models(con: Any, money_cast: str, expected: dict[str, int]) -> None:
    """The models dbt built over a warehouse (a DuckDB or psycopg connection): trips per
    service as loaded, a zone for every trip that names a valid one, the money kept to the
    cent (``money_cast``: what the engine's round needs, ``::numeric`` for PostgreSQL)."""
    by_service = dict(con.execute(
        f"SELECT service, count(*) FROM {DBT_SCHEMA}.fct_trips GROUP BY 1").fetchall())
    unmatched = con.execute(
        f"SELECT count(*) FROM {DBT_SCHEMA}.fct_trips WHERE pickup_location_id "
        "BETWEEN 1 AND 265 AND pickup_borough IS NULL").fetchone()
    money = con.execute(
        f"SELECT round(sum(total_amount){money_cast}, 2) FROM {DBT_SCHEMA}.fct_trips "
        "WHERE service = 'yellow'").fetchone()
    raw_money = con.execute(
        f"SELECT round(sum(total_amount){money_cast}, 2) FROM {RAW_SCHEMA}.yellow_tripdata"
    ).fetchone()
    assert by_service == expected
    assert unmatched == (0,)
    assert money == raw_money


def test_dbt_builds_the_example_on_duckdb_and_postgres(
        env: Env, filled: Database, release: Release,
        fhvhv_month: samples.SampleFacts) -> None:
    expected = expected_trips(release, fhvhv_month)

    dbt_build(env, "duckdb", {"TAXI_DUCKDB_PATH": str(env.duckdb_path)})
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        check_models(con, "", expected)

    server = conninfo_to_dict(filled.url)
    dbt_build(env, "postgres", {
        "PGHOST": str(server["host"]), "PGPORT": str(server["port"]),
        "PGUSER": str(server["user"]), "PGPASSWORD": str(server.get("password") or ""),
        "PGDATABASE": filled.name})
    with psycopg.connect(filled.url) as con:
        check_models(con, "::numeric", expected)
    # dbt's run left nothing in the example's directory (its target is the test's).
    assert not Path(EXAMPLE / "target").exists()
