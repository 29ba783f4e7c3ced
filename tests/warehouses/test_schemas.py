"""Where the SQL warehouses keep their tables (``[duckdb] schema``, ``[postgres] schema``),
moving them with the documented one line of SQL, and PostgreSQL's lower-case column names,
including the in-place rename of tables an earlier version made with TLC's spelling."""

from __future__ import annotations

from datetime import date

import duckdb
import psycopg
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline import IngestMonth, LoadDuckDB, LoadPostgres, LoadPostgresZones
from pipeline.core.datasets import SERVICES, ZONES
from pipeline.tasks.load import postgres_settings
from pipeline.tasks.sinks import SINKS
from pipeline.warehouses import postgres as postgres_load
from pipeline.warehouses.base import WarehouseError
from tests.conftest import Env, Release
from tests.fixtures_postgres import Database

DEC19, JAN20 = date(2019, 12, 1), date(2020, 1, 1)
GREEN = SERVICES["green"]
PIPELINE_TABLES = ["green_tripdata", "pipeline_loads", "zones"]

# The one line of SQL docs/after-the-pipeline.md gives to move the tables from schema main
# (public) to prod, before [duckdb] schema ([postgres] schema) is changed to prod. DuckDB
# has no ALTER TABLE ... SET SCHEMA: the line writes the statements that copy each table,
# and the doc pipes them into a second duckdb.
DUCKDB_MOVE = (
    "SELECT 'CREATE SCHEMA IF NOT EXISTS prod; BEGIN; ' || string_agg(format("
    "'CREATE TABLE prod.{0} AS FROM main.{0}; DROP TABLE main.{0};', table_name), ' ') || "
    "' COMMIT;' FROM duckdb_tables() WHERE schema_name = 'main' AND "
    "(suffix(table_name, '_tripdata') OR table_name IN ('zones', 'pipeline_loads'))"
)
POSTGRES_MOVE = (
    "BEGIN; CREATE SCHEMA IF NOT EXISTS prod; DO $$ DECLARE t text; BEGIN FOR t IN SELECT "
    "tablename FROM pg_tables WHERE schemaname = 'public' AND (tablename LIKE '%\\_tripdata' "
    "OR tablename IN ('zones', 'pipeline_loads')) LOOP EXECUTE format('ALTER TABLE public.%I "
    "SET SCHEMA prod', t); END LOOP; END $$; COMMIT;"
)


def duck_tables(env: Env) -> list[tuple[str, str]]:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        return con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                           "ORDER BY 1, 2").fetchall()


def pg_tables(db: Database) -> list[tuple[str, str]]:
    return db.query("SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
                    "('pg_catalog', 'information_schema') ORDER BY 1, 2")


def test_duckdb_tables_live_in_the_configured_schema_and_move_with_one_line(
        env: Env, release: Release) -> None:
    env.configure(pipeline={"services": "green"}, duckdb={"schema": "raw data"})
    assert env.build(IngestMonth(month=DEC19)).status == LuigiStatusCode.SUCCESS
    rows = release.of("green", "2019-12").rows
    assert duck_tables(env) == [("raw data", t) for t in PIPELINE_TABLES]
    assert SINKS["duckdb"].rows_by_month(GREEN) == {DEC19: rows}
    assert LoadDuckDB(service="green", month=DEC19).complete()

    # Back to the default schema: nothing there yet, so nothing is complete.
    env.configure(duckdb={"schema": "main"})
    assert SINKS["duckdb"].rows_by_month(GREEN) == {}
    assert not LoadDuckDB(service="green", month=DEC19).complete()
    assert env.build(IngestMonth(month=DEC19)).status == LuigiStatusCode.SUCCESS

    # Moved by the documented line, then the setting: complete as it stands, no reload.
    with duckdb.connect(str(env.duckdb_path)) as con:
        (statements,) = con.execute(DUCKDB_MOVE).fetchone()
        con.execute(statements)
    env.configure(duckdb={"schema": "prod"})
    assert ("main", "green_tripdata") not in duck_tables(env)
    assert ("prod", "green_tripdata") in duck_tables(env)
    assert LoadDuckDB(service="green", month=DEC19).complete()
    assert SINKS["duckdb"].rows_by_month(GREEN) == {DEC19: rows}
    assert env.build(IngestMonth(month=JAN20)).status == LuigiStatusCode.SUCCESS
    assert SINKS["duckdb"].rows_by_month(GREEN) == {
        DEC19: rows, JAN20: release.of("green", "2020-01").rows}
    assert ("main", "green_tripdata") not in duck_tables(env)

    # Unquoted SQL with TLC's spelling or any other: DuckDB keeps "VendorID" but matches
    # names case-insensitively.
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        assert con.execute("SELECT count(vendorid) = count(VendorID) FROM prod.green_tripdata"
                           ).fetchone() == (True,)
        assert "VendorID" in [c for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'green_tripdata'").fetchall()]


def test_an_empty_schema_setting_is_one_line(env: Env) -> None:
    env.configure(duckdb={"schema": " "})
    with pytest.raises(WarehouseError, match=r"^\[duckdb\] schema is empty"):
        IngestMonth(month=DEC19)


@pytest.fixture
def pg(env: Env, postgres_db: Database) -> Database:
    env.configure(postgres={"url": postgres_db.url},
                  pipeline={"services": "green", "sinks": "postgres"})
    return postgres_db


def test_postgres_tables_live_in_the_configured_schema_and_move_with_one_line(
        env: Env, pg: Database, release: Release) -> None:
    env.configure(postgres={"schema": "Raw"})
    assert env.build(IngestMonth(month=DEC19)).status == LuigiStatusCode.SUCCESS
    rows = release.of("green", "2019-12").rows
    assert pg_tables(pg) == [("Raw", t) for t in PIPELINE_TABLES]
    assert pg.query('SELECT count(*) FROM "Raw".green_tripdata') == [(rows,)]
    assert SINKS["postgres"].rows_by_month(GREEN) == {DEC19: rows}
    assert LoadPostgres(service="green", month=DEC19).complete()

    # The default schema holds nothing yet.
    env.configure(postgres={"schema": "public"})
    assert not LoadPostgres(service="green", month=DEC19).complete()
    assert SINKS["postgres"].rows_by_month(GREEN) == {}
    assert env.build(IngestMonth(month=DEC19)).status == LuigiStatusCode.SUCCESS
    assert ("public", "green_tripdata") in pg_tables(pg)

    # The documented line (psql -c, as the pipeline's role), then the setting: complete
    # with no reload.
    with psycopg.connect(pg.url, autocommit=True) as con:
        con.execute(POSTGRES_MOVE)
    env.configure(postgres={"schema": "prod"})
    assert [t for s, t in pg_tables(pg) if s == "prod"] == PIPELINE_TABLES
    assert [t for s, t in pg_tables(pg) if s == "public"] == []
    assert LoadPostgres(service="green", month=DEC19).complete()
    assert LoadPostgresZones().complete()
    assert env.build(IngestMonth(month=JAN20)).status == LuigiStatusCode.SUCCESS
    assert SINKS["postgres"].rows_by_month(GREEN) == {
        DEC19: rows, JAN20: release.of("green", "2020-01").rows}
    # Its month index moved with it (the other is the first schema's, "Raw").
    assert pg.query("SELECT schemaname FROM pg_indexes WHERE indexname = "
                    "'green_tripdata_source_month' ORDER BY 1") == [("Raw",), ("prod",)]
    # Unquoted SQL, as Postgres users write it.
    assert pg.query("SELECT count(*) FROM prod.green_tripdata t JOIN prod.zones z "
                    "ON z.locationid = t.pulocationid WHERE t.vendorid IS NOT NULL") != [(0,)]


def _old_layout(pg: Database, table: str, names: list[str]) -> None:
    """What an earlier version left: TLC's spelling, quoted, and its DDL stamp 1."""
    for name in names:
        if name != name.lower():
            pg.query(f'ALTER TABLE {table} RENAME COLUMN "{name.lower()}" TO "{name}"')
    pg.query(f"COMMENT ON TABLE {table} IS 'nyc-taxi-pipeline DDL 1'")


def _columns(pg: Database, table: str) -> list[str]:
    return [c for (c,) in pg.query(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum", [table])]


def test_tables_with_tlc_spelling_are_renamed_in_place_once_rows_kept(
        env: Env, pg: Database, release: Release) -> None:
    for month in (DEC19, JAN20):
        assert env.build(IngestMonth(month=month)).status == LuigiStatusCode.SUCCESS
    _old_layout(pg, "green_tripdata", GREEN.columns)
    _old_layout(pg, "zones", ZONES.schema.names)
    assert "VendorID" in _columns(pg, "green_tripdata")
    assert "LocationID" in _columns(pg, "zones")
    every_row = pg.query("SELECT * FROM green_tripdata ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, "
                         "10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21")
    zones = pg.query('SELECT * FROM zones ORDER BY "LocationID"')
    money = pg.query('SELECT sum(total_amount), sum(fare_amount), count("VendorID") '
                     "FROM green_tripdata")
    logged = pg.query("SELECT source_month, loaded_at FROM pipeline_loads "
                      "WHERE source_month = %s", [DEC19])
    rows = {m: release.of("green", f"{m:%Y-%m}").rows for m in (DEC19, JAN20)}
    assert len(every_row) == sum(rows.values())

    # The old layout is not complete to this version, so the next run's loads rename.
    assert not LoadPostgres(service="green", month=JAN20).complete()
    assert env.build(IngestMonth(month=JAN20)).status == LuigiStatusCode.SUCCESS
    assert _columns(pg, "green_tripdata") == [c.lower() for c in GREEN.columns] + \
        ["source_month"]
    assert _columns(pg, "zones") == [c.lower() for c in ZONES.schema.names]
    assert pg.query("SELECT obj_description('green_tripdata'::regclass), "
                    "obj_description('zones'::regclass)") == [
        ("nyc-taxi-pipeline DDL 2", "nyc-taxi-pipeline DDL 2")]
    # Every row and every cent kept, the month not reloaded kept as it was.
    assert pg.query("SELECT * FROM green_tripdata ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, "
                    "10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21") == every_row
    assert pg.query("SELECT * FROM zones ORDER BY locationid") == zones
    assert pg.query("SELECT sum(total_amount), sum(fare_amount), count(vendorid) "
                    "FROM green_tripdata") == money
    assert pg.query("SELECT source_month, loaded_at FROM pipeline_loads "
                    "WHERE source_month = %s", [DEC19]) == logged
    assert LoadPostgres(service="green", month=DEC19).complete()

    # Idempotent: the DDL step again changes nothing, and the next run has nothing to do.
    with postgres_load.connect_in(postgres_settings()) as con:
        postgres_load.ensure_tables(con, "green_tripdata", postgres_load.DIALECT.trips_schema(
            GREEN), index_month=True, namespace="public")
    assert _columns(pg, "green_tripdata") == [c.lower() for c in GREEN.columns] + \
        ["source_month"]
    logged_now = pg.query("SELECT * FROM pipeline_loads ORDER BY 1, 2")
    result = env.build(IngestMonth(month=DEC19), IngestMonth(month=JAN20))
    assert result.status == LuigiStatusCode.SUCCESS
    assert pg.query("SELECT * FROM pipeline_loads ORDER BY 1, 2") == logged_now


def test_a_rename_that_cannot_finish_leaves_the_old_names(env: Env, pg: Database) -> None:
    """All columns renamed or none: a rename that cannot take its lock (a BI tool's open
    transaction reads the table) fails on one line, the table as it was."""
    assert env.build(IngestMonth(month=DEC19)).status == LuigiStatusCode.SUCCESS
    _old_layout(pg, "green_tripdata", GREEN.columns)
    before = _columns(pg, "green_tripdata")
    pg.query(f'ALTER ROLE taxi IN DATABASE "{pg.name}" SET lock_timeout = 300')
    with psycopg.connect(pg.cluster.url(pg.name)) as reader:
        reader.execute("SELECT count(*) FROM green_tripdata").fetchone()  # holds its lock
        with pytest.raises(WarehouseError) as failed, \
                postgres_load.connect_in(postgres_settings()) as con:
            postgres_load.ensure_tables(
                con, "green_tripdata", postgres_load.DIALECT.trips_schema(GREEN),
                index_month=True, namespace="public")
        reader.rollback()
    assert "\n" not in str(failed.value) and "lock timeout" in str(failed.value)
    assert _columns(pg, "green_tripdata") == before
    assert pg.query("SELECT obj_description('green_tripdata'::regclass)") == [
        ("nyc-taxi-pipeline DDL 1",)]
