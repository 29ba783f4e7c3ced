"""Whether a month is complete in the sinks, read from facts without building a task
(``pipeline.tasks.sinks.month_completeness``: the lake's facts and each sink's own), agrees
month by month with ``IngestMonth(...).complete()`` over one lake, DuckDB and PostgreSQL
holding months in every state, and with what each state must answer (issue 29, item 1)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
from luigi.execution_summary import LuigiStatusCode

from pipeline.core.datasets import SERVICES
from pipeline.lake.keys import manifest_key, parquet_key, raw_key
from pipeline.tasks.flows import IngestMonth
from pipeline.tasks.sinks import month_completeness
from tests.conftest import Env
from tests.fixtures_postgres import Database

Month = tuple[str, date]
WHOLE: Month = ("yellow", date(2020, 12, 1))
NO_MANIFEST: Month = ("yellow", date(2021, 1, 1))
DUCKDB_ROW_GONE: Month = ("green", date(2019, 12, 1))
POSTGRES_LOG_CHANGED: Month = ("green", date(2020, 1, 1))
PARQUET_DAMAGED: Month = ("green", date(2021, 1, 1))
RAW_REPLACED: Month = ("fhv", date(2019, 1, 1))
NEVER_INGESTED: Month = ("fhv", date(2020, 1, 1))
BEFORE_GREEN: Month = ("green", date(2013, 1, 1))  # green began in 2013-08: nothing to ask

INGESTED = [WHOLE, NO_MANIFEST, DUCKDB_ROW_GONE, POSTGRES_LOG_CHANGED, PARQUET_DAMAGED,
            RAW_REPLACED]
ASKED = [*INGESTED, NEVER_INGESTED, BEFORE_GREEN]

# What each month must answer, per choice of sinks.
EXPECTED: dict[tuple[str, ...], set[Month]] = {
    ("duckdb",): {WHOLE, POSTGRES_LOG_CHANGED, BEFORE_GREEN},
    ("postgres",): {WHOLE, DUCKDB_ROW_GONE, BEFORE_GREEN},
    ("duckdb", "postgres"): {WHOLE, BEFORE_GREEN},
}


def lake_file(env: Env, key: str) -> Path:
    return env.lake / key


def test_month_complete_agrees_with_ingest_month_in_every_state(
        env: Env, postgres_db: Database) -> None:
    env.configure(postgres={"url": postgres_db.url},
                  pipeline={"services": "yellow,green,fhv", "sinks": "duckdb,postgres"})
    result = env.build(*(IngestMonth(month=m, services=(s,)) for s, m in INGESTED), workers=2)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    complete = month_completeness(("duckdb", "postgres"))
    assert all(complete(s, m) for s, m in INGESTED)

    service, month = NO_MANIFEST
    lake_file(env, manifest_key(SERVICES[service], month)).unlink()

    service, month = DUCKDB_ROW_GONE
    with duckdb.connect(str(env.duckdb_path)) as con:
        con.execute("DELETE FROM green_tripdata WHERE rowid = (SELECT min(rowid) FROM "
                    "green_tripdata WHERE source_month = ?)", [month])

    # The load log names another Parquet file: the table's rows are not the manifest's.
    service, month = POSTGRES_LOG_CHANGED
    postgres_db.query("UPDATE pipeline_loads SET checksum = 'other' WHERE table_name = "
                      "'green_tripdata' AND source_month = %s", [month])

    service, month = PARQUET_DAMAGED
    parquet = lake_file(env, parquet_key(SERVICES[service], month))
    parquet.write_bytes(parquet.read_bytes()[:-100])

    # Another file of another length where the raw file was (its source record no longer
    # describes it, and the manifest was not made from it).
    service, month = RAW_REPLACED
    raw = lake_file(env, raw_key(SERVICES[service], month, "csv"))
    raw.write_bytes(raw.read_bytes() + b"\0")

    for sinks, expected in EXPECTED.items():
        env.configure(pipeline={"sinks": ",".join(sinks)})
        by_tasks = {(s, m) for s, m in ASKED if IngestMonth(month=m, services=(s,)).complete()}
        complete = month_completeness(sinks)
        by_facts = {(s, m) for s, m in ASKED if complete(s, m)}
        assert by_facts == by_tasks == expected, sinks
