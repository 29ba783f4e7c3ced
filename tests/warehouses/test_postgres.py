"""The PostgreSQL sink against a real throwaway server: exact rows beside DuckDB, types,
re-runs, parallel branches, a SIGKILLed load, concurrent loads of one month, and the
failures a person meets (unreachable server, wrong password, a table in the way)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import duckdb
import luigi
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline import (
    IngestMonth,
    LoadDuckDB,
    LoadDuckDBZones,
    LoadPostgres,
    LoadPostgresZones,
    ParquetizeMonth,
)
from pipeline.core.datasets import SERVICES
from pipeline.demo import samples
from pipeline.tasks.load import postgres_settings
from pipeline.warehouses import pg_copy
from pipeline.warehouses import postgres as postgres_load
from pipeline.warehouses.base import WarehouseError, asking_about_many_months, read_zones
from tests.conftest import BIN, Env, Release
from tests.fixtures_postgres import Database
from tests.ports import free_port
from tests.waiting import wait_until

DEC19, JAN20 = date(2019, 12, 1), date(2020, 1, 1)
BIG = date(2020, 6, 1)  # a month large enough (300k rows) for a COPY to take a while
BIG_ROWS = 300_000
GREEN = SERVICES["green"]


@pytest.fixture
def pg(env: Env, postgres_db: Database) -> Database:
    env.configure(postgres={"url": postgres_db.url},
                  pipeline={"services": "green", "sinks": "duckdb,postgres"})
    return postgres_db


@pytest.fixture(scope="module")
def big_month(release: Release) -> samples.SampleFacts:
    """Green 2020-06 (with the empty tail), served beside the release's months."""
    path = release.root / "green" / "green_tripdata_2020-06.csv.gz"
    return samples.write_month(path, "green", BIG, BIG_ROWS)


def duck(env: Env, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def month_counts(pg: Database) -> dict[date, int]:
    return dict(pg.query("SELECT source_month, count(*) FROM green_tripdata GROUP BY 1"))


class Events:
    """Start and finish times of tasks, written by the process that ran each one (with
    several workers luigi runs every task in a forked child)."""

    def __init__(self, path: Path, *classes: type[luigi.Task]) -> None:
        self.path, self.classes = path, classes
        self.handlers = {luigi.Event.START: self._started, luigi.Event.SUCCESS: self._succeeded}

    def __enter__(self) -> Events:
        for cls in self.classes:
            for event, handler in self.handlers.items():
                cls.event_handler(event)(handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for cls in self.classes:
            for event, handler in self.handlers.items():
                luigi.Task._event_callbacks[cls][event].discard(handler)

    def _started(self, task: luigi.Task) -> None:
        self._write("start", task)

    def _succeeded(self, task: luigi.Task) -> None:
        self._write("end", task)

    def _write(self, what: str, task: luigi.Task) -> None:
        with open(self.path, "a") as f:
            f.write(f"{task.task_family} {what} {time.time()!r} {os.getpid()}\n")

    def read(self) -> dict[str, dict[str, float]]:
        times: dict[str, dict[str, float]] = {}
        for line in self.path.read_text().splitlines():
            family, what, at, _ = line.split()
            times.setdefault(family, {})[what] = float(at)
        return times

    def families(self) -> list[str]:
        return [line.split()[0] for line in self.path.read_text().splitlines()
                if " start " in line] if self.path.exists() else []


def sortable(rows: list[tuple]) -> list[tuple]:
    """Rows in a fixed order, NaN made comparable (NaN != NaN)."""
    clean = [tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in r)
             for r in rows]
    return sorted(clean, key=repr)


# --------------------------------------------------------------------------- the month flow


def test_two_green_months_land_in_postgres_and_duckdb(env: Env, pg: Database,
                                                      release: Release) -> None:
    for month in (DEC19, JAN20):
        assert env.build(IngestMonth(month=month)).status == LuigiStatusCode.SUCCESS
    expected = {m: release.of("green", f"{m:%Y-%m}").rows for m in (DEC19, JAN20)}
    assert month_counts(pg) == expected
    assert dict(duck(env, "SELECT source_month, count(*) FROM green_tripdata GROUP BY 1")) == \
        expected
    assert pg.query("SELECT count(*) FROM zones") == [(265,)]
    assert duck(env, "SELECT count(*) FROM zones") == [(265,)]

    types = dict(pg.query("SELECT column_name, data_type FROM information_schema.columns "
                          "WHERE table_name = 'green_tripdata'"))
    # Lower case, so that unquoted SQL works (DuckDB keeps TLC's spelling).
    assert types["vendorid"] == types["pulocationid"] == "bigint"
    assert pg.query("SELECT count(*) FROM green_tripdata WHERE vendorid IS NOT NULL "
                    "AND ratecodeid IS NOT NULL AND pulocationid > 0") != [(0,)]
    assert types["lpep_pickup_datetime"] == "timestamp without time zone"
    assert types["fare_amount"] == types["ehail_fee"] == "double precision"
    assert types["store_and_fwd_flag"] == "text" and types["source_month"] == "date"
    assert pg.query("SELECT indexdef LIKE '%(source_month)' FROM pg_indexes "
                    "WHERE tablename = 'green_tripdata'") == [(True,)]

    # Every value as the Parquet file has it: the empty tail's NULLs stay NULL, not ''.
    jan = release.of("green", "2020-01")
    assert jan.empty_tail_rows > 0
    assert pg.query('SELECT count(*) FILTER (WHERE vendorid IS NULL), '
                    "count(*) FILTER (WHERE store_and_fwd_flag = '') FROM green_tripdata "
                    "WHERE source_month = %s", [JAN20]) == [(jan.empty_tail_rows, 0)]
    parquet = ParquetizeMonth(service="green", month=JAN20).output().parquet.file
    columns = ", ".join(f'"{c.lower()}"' for c in GREEN.columns)
    in_pg = pg.query(f"SELECT {columns} FROM green_tripdata WHERE source_month = %s", [JAN20])
    in_lake = [tuple(r.values()) for r in pq.read_table(parquet).to_pylist()]
    assert sortable(in_pg) == sortable(in_lake)
    fees = pg.query("SELECT source_month, count(ehail_fee) > 0 FROM green_tripdata GROUP BY 1 "
                    "ORDER BY 1")
    assert fees == [(DEC19, True), (JAN20, False)]

    # A re-run of complete months runs nothing; a forced re-load replaces, never adds.
    with Events(env.tmp / "events.txt", luigi.Task) as events:
        for month in (DEC19, JAN20):
            assert env.build(IngestMonth(month=month)).status == LuigiStatusCode.SUCCESS
    assert events.families() == []
    LoadPostgres(service="green", month=JAN20).run()
    assert month_counts(pg) == expected
    assert pg.query("SELECT count(*) FROM pipeline_loads WHERE table_name = 'green_tripdata'"
                    ) == [(2,)]
    assert LoadPostgres(service="green", month=JAN20).complete()


def test_postgres_and_duckdb_loads_of_a_month_run_at_the_same_time(
        env: Env, pg: Database, big_month: samples.SampleFacts) -> None:
    ready = [ParquetizeMonth(service="green", month=BIG), LoadDuckDBZones(), LoadPostgresZones()]
    assert env.build(*ready).status == LuigiStatusCode.SUCCESS
    with Events(env.tmp / "events.txt", LoadPostgres, LoadDuckDB) as events:
        result = env.build(LoadPostgres(service="green", month=BIG),
                           LoadDuckDB(service="green", month=BIG), workers=2)
    assert result.status == LuigiStatusCode.SUCCESS
    times = events.read()
    pg_load, duck_load = times["LoadPostgres"], times["LoadDuckDB"]
    # Each started before the other finished: the two branches overlapped in time.
    assert pg_load["start"] < duck_load["end"] and duck_load["start"] < pg_load["end"], times
    assert month_counts(pg) == {BIG: big_month.rows}
    assert duck(env, "SELECT count(*) FROM green_tripdata") == [(big_month.rows,)]


def test_a_load_killed_during_its_copy_leaves_the_previous_rows(
        env: Env, pg: Database, big_month: samples.SampleFacts) -> None:
    assert env.build(LoadPostgres(service="green", month=BIG)).status == LuigiStatusCode.SUCCESS
    # The previous state: an older, smaller version of the month (and no load log entry).
    pg.query("DELETE FROM green_tripdata WHERE vendorid = 1")
    pg.query("DELETE FROM pipeline_loads WHERE table_name = 'green_tripdata'")
    (old,) = pg.query("SELECT count(*) FROM green_tripdata")[0]
    assert 0 < old < big_month.rows

    command = [str(BIN / "luigi"), "--module", "pipeline", "LoadPostgres", "--service",
               "green", "--month", "2020-06", "--local-scheduler"]
    run = subprocess.Popen(command, cwd=env.tmp, env=env.env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    copied = "SELECT tuples_processed FROM pg_stat_progress_copy WHERE relid = to_regclass(%s)"
    wait_until(lambda: (rows := pg.query(copied, ['"green_tripdata"'])) and rows[0][0] >= 20_000,
               60, "the load mid-COPY (to kill it there)", process=run, interval=0.01)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()

    assert pg.query("SELECT count(*) FROM green_tripdata") == [(old,)]
    assert pg.query("SELECT count(*) FROM green_tripdata WHERE vendorid = 1") == [(0,)]
    assert not LoadPostgres(service="green", month=BIG).complete()
    finish = env.command("luigi", *command[1:])
    assert finish.returncode == 0, finish.stderr
    assert month_counts(pg) == {BIG: big_month.rows}
    assert LoadPostgres(service="green", month=BIG).complete()


def test_loads_of_one_month_at_once_never_double_it(
        env: Env, pg: Database, release: Release) -> None:
    assert env.build(ParquetizeMonth(service="green", month=JAN20)).status == \
        LuigiStatusCode.SUCCESS
    target = ParquetizeMonth(service="green", month=JAN20).output()
    manifest = target.read()
    assert manifest is not None
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def load() -> None:
        start.wait()
        try:
            postgres_load.load_month(GREEN, JAN20, target.parquet.file, manifest,
                                     postgres_settings())
        except BaseException as e:  # reported below
            errors.append(e)

    loads = [threading.Thread(target=load) for _ in range(3)]
    for thread in loads:
        thread.start()
    for thread in loads:
        thread.join()
    assert errors == []
    assert month_counts(pg) == {JAN20: release.of("green", "2020-01").rows}
    assert pg.query("SELECT count(*) FROM pipeline_loads") == [(1,)]


def test_a_load_does_not_wait_for_a_running_load_of_another_month(
        env: Env, pg: Database, release: Release) -> None:
    manifests = {}
    for month in (DEC19, JAN20):
        assert env.build(ParquetizeMonth(service="green", month=month)).status == \
            LuigiStatusCode.SUCCESS
        target = ParquetizeMonth(service="green", month=month).output()
        manifests[month] = (target.parquet.file, target.read())
    postgres_load.load_month(GREEN, DEC19, *manifests[DEC19], postgres_settings())
    # Another process in the middle of re-loading December: its transaction stays open.
    with psycopg.connect(pg.url) as other:
        other.execute("DELETE FROM green_tripdata WHERE source_month = %s", [DEC19])
        done = threading.Event()
        january = threading.Thread(target=lambda: (
            postgres_load.load_month(GREEN, JAN20, *manifests[JAN20], postgres_settings()),
            done.set()))
        january.start()
        january.join(timeout=30)
        assert done.is_set(), "January's load waited for December's"
        other.rollback()
    assert month_counts(pg) == {m: release.of("green", f"{m:%Y-%m}").rows
                                for m in (DEC19, JAN20)}


# --------------------------------------------------------------------------- failures


def failure_lines(output: str, needle: str) -> list[str]:
    return [line for line in output.splitlines() if needle in line]


def test_an_unreachable_server_fails_the_task_on_one_line(env: Env) -> None:
    port = free_port()  # nothing listens there
    env.configure(postgres={"url": f"postgresql://taxi:s3cret-pw@127.0.0.1:{port}/taxi",
                            "connect_timeout": "2"},
                  pipeline={"sinks": "postgres"})
    run = env.command("luigi", "--module", "pipeline", "LoadPostgresZones", "--local-scheduler",
                      timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 30, output
    assert "s3cret-pw" not in output
    assert "Traceback" not in output
    lines = failure_lines(output, "cannot connect to PostgreSQL")
    assert lines, output
    # One line per attempt (the scheduler retries it), each naming the server.
    for line in lines:
        assert f"at 127.0.0.1:{port} (database taxi, user taxi): Connection refused" in line


def test_a_wrong_password_is_refused_clearly(env: Env, pg: Database) -> None:
    wrong = pg.url.replace(f":{pg.cluster.password}@", ":not-the-password@")
    env.configure(postgres={"url": wrong})
    run = env.command("luigi", "--module", "pipeline", "LoadPostgresZones", "--local-scheduler",
                      timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 30, output
    assert "not-the-password" not in output and "Traceback" not in output
    lines = failure_lines(output, "cannot connect to PostgreSQL")
    assert lines, output
    assert f"127.0.0.1:{pg.cluster.port} (database {pg.name}, user taxi): password " \
        f'authentication failed for user "taxi"' in lines[0]
    assert pg.query("SELECT to_regclass('zones')") == [(None,)]


def test_a_table_with_another_schema_is_refused_and_left_alone(env: Env, pg: Database) -> None:
    pg.query('CREATE TABLE green_tripdata ("VendorID" TEXT, note TEXT)')
    pg.query("INSERT INTO green_tripdata VALUES ('x', 'kept')")
    result = env.build(LoadPostgres(service="green", month=DEC19))
    assert result.status == LuigiStatusCode.FAILED
    parquet = ParquetizeMonth(service="green", month=DEC19).output()
    with pytest.raises(WarehouseError) as refused:
        postgres_load.load_month(GREEN, DEC19, parquet.parquet, parquet.read(),
                                 postgres_settings())
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("PostgreSQL table green_tripdata has an incompatible schema "
                              "(vendorid bigint is vendorid text;")
    assert message.endswith("it was left as it is: migrate or drop it")
    assert pg.query("SELECT * FROM green_tripdata") == [("x", "kept")]
    # The rename to lower case was undone with the rest.
    assert pg.query("SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'green_tripdata' ORDER BY ordinal_position") == \
        [("VendorID",), ("note",)]
    assert pg.query("SELECT count(*) FROM pg_indexes WHERE tablename = 'green_tripdata'") == \
        [(0,)]


def test_a_table_of_a_newer_ddl_is_refused(env: Env, pg: Database) -> None:
    assert env.build(LoadPostgresZones()).status == LuigiStatusCode.SUCCESS
    assert pg.query("SELECT obj_description('zones'::regclass)") == [
        ("nyc-taxi-pipeline DDL 2",)]
    pg.query("COMMENT ON TABLE zones IS 'nyc-taxi-pipeline DDL 3'")
    with pytest.raises(WarehouseError, match="zones was created by a newer pipeline"):
        postgres_load.load_zones(*read_zones(Path(LoadPostgresZones().input().path)),
                                 postgres_settings())
    assert pg.query("SELECT count(*) FROM zones") == [(265,)]


def test_the_postgres_sink_without_a_url_is_refused_before_anything_runs(env: Env) -> None:
    env.configure(pipeline={"sinks": "duckdb,postgres"}, postgres={"url": ""})
    with pytest.raises(WarehouseError, match=r"\[postgres\] url is empty"):
        IngestMonth(month=JAN20)


# --------------------------------------------------------------------------- binary COPY


def test_binary_copy_keeps_every_value(postgres_db: Database) -> None:
    table = pa.table({
        "id": pa.array([1, None, -5, 2**62, None, 7], pa.int64()),
        "money": pa.array([1.5, math.nan, None, -0.0, 1e300, -12.34], pa.float64()),
        "at": pa.array([datetime(2021, 1, 1, 0, 30, 10, 123456), None,
                        datetime(1999, 12, 31, 23, 59, 59), datetime(2008, 1, 1),
                        datetime(1970, 1, 1), datetime(2100, 2, 28, 1)], pa.timestamp("us")),
        "flag": pa.array(["N", "", None, "héllo, wörld\t\"x\"\n", "Y", "N"], pa.string()),
        "day": pa.array([date(2021, 1, 1)] * 4 + [None, date(1900, 3, 1)], pa.date32()),
    })
    with psycopg.connect(postgres_db.url) as con, con.cursor() as cur:
        cur.execute("CREATE TABLE t (id BIGINT, money DOUBLE PRECISION, at TIMESTAMP, "
                    "flag TEXT, day DATE)")
        # Batches of every size, so that rows of several layouts share a batch or not.
        batches: Iterator[pa.RecordBatch] = iter(
            [*table.slice(0, 1).to_batches(), *table.slice(1, 3).to_batches(),
             *table.slice(4).to_batches()])
        postgres_load._copy(cur, "t", batches, table.schema)
    got = postgres_db.query("SELECT * FROM t")
    assert sortable(got) == sortable([tuple(r.values()) for r in table.to_pylist()])
    assert postgres_db.query("SELECT count(*) FROM t WHERE flag = ''") == [(1,)]

    # Layouts too many for one int64 key (long texts of many lengths) take the slower path.
    long = "x" * (1 << 21)
    texts = pa.table({name: pa.array([long, "a", None, long[:-1], ""], pa.string())
                      for name in ("a", "b", "c")})
    with psycopg.connect(postgres_db.url) as con, con.cursor() as cur:
        cur.execute("CREATE TABLE texts (a TEXT, b TEXT, c TEXT)")
        postgres_load._copy(cur, "texts", iter(texts.to_batches()), texts.schema)
    got = postgres_db.query("SELECT * FROM texts")
    assert sortable(got) == sortable([tuple(r.values()) for r in texts.to_pylist()])

    with pytest.raises(TypeError, match="no binary COPY encoding"):
        pg_copy.check_schema(pa.schema([("x", pa.int32())]))


def test_a_plan_asks_about_every_month_of_a_table_in_one_query(env: Env, pg: Database) -> None:
    """Inside ``asking_about_many_months`` (a job's plan) every month's answer comes from
    one read of the table, the same answers as asked one by one; outside it, each question
    sees the warehouse as it is now (a task's process must see loads made since)."""
    for month in (DEC19, JAN20):
        assert env.build(IngestMonth(month=month)).status == LuigiStatusCode.SUCCESS
    # A mismatch: a row of January gone behind the load log's back.
    pg.query("DELETE FROM green_tripdata WHERE ctid = (SELECT ctid FROM green_tripdata "
             "WHERE source_month = %s LIMIT 1)", [JAN20])
    settings, months = postgres_settings(), (DEC19, JAN20, date(2020, 2, 1))
    one_by_one = {m: postgres_load.loaded("green_tripdata", m, settings) for m in months}
    assert one_by_one[JAN20] is not None and one_by_one[JAN20][0] == one_by_one[JAN20][2] + 1
    assert one_by_one[date(2020, 2, 1)] is None
    with asking_about_many_months():
        at_once = {m: postgres_load.loaded("green_tripdata", m, settings) for m in months}
        pg.query("DELETE FROM pipeline_loads WHERE source_month = %s", [DEC19])
        # Kept until the block ends: the answer was read with the others.
        assert postgres_load.loaded("green_tripdata", DEC19, settings) == one_by_one[DEC19]
        assert not IngestMonth(month=JAN20).complete()
    assert at_once == one_by_one
    assert postgres_load.loaded("green_tripdata", DEC19, settings) is None
    assert not IngestMonth(month=DEC19).complete()
    with asking_about_many_months():  # a table not there yet: every month not loaded
        assert postgres_load.loaded("yellow_tripdata", DEC19, settings) is None
