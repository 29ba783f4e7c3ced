"""The taxi-pipeline console script, run as a user would."""

from __future__ import annotations

import duckdb

from tests.conftest import Env, Release


def test_demo_runs_offline_and_shows_the_result(env: Env) -> None:
    run = env.command("taxi-pipeline", "demo", "--months", "2021-03", "--scale", "0.05",
                      "--source-dir", str(env.tmp / "demo-source"))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "busiest yellow pickup zones in 2021-03" in run.stdout
    assert f"warehouse: {env.duckdb_path}" in run.stdout
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        counts = con.execute("SELECT (SELECT count(*) FROM yellow_tripdata), "
                             "(SELECT count(*) FROM green_tripdata), "
                             "(SELECT count(*) FROM fhv_tripdata), "
                             "(SELECT count(*) FROM zones)").fetchone()
    assert counts == (10_000, 2_000, 5_000, 265)


def test_ingest_job_exits_with_luigis_codes(env: Env, release: Release) -> None:
    ok = env.command("taxi-pipeline", "ingest", "--month", "2021-01", "--services", "green",
                     "--local-scheduler")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "scheduler: local" in ok.stderr
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM green_tripdata").fetchone() == (
            release.of("green", "2021-01").rows,)
    missing = env.command("taxi-pipeline", "ingest", "--month", "2030-01", "--services",
                          "green", "--local-scheduler")
    assert missing.returncode == 30
    bad = env.command("taxi-pipeline", "ingest", "--month", "2030-13", "--local-scheduler")
    assert bad.returncode == 40  # bad input, refused on one line before anything is scheduled
    assert bad.stderr.splitlines() == [
        "taxi-pipeline ingest: error: argument --month: invalid month '2030-13': "
        "expected YYYY-MM, e.g. 2021-01 (see --help)"]


def test_help_explains_each_job(env: Env) -> None:
    for job in ("ingest", "demo"):
        run = env.command("taxi-pipeline", job, "--help")
        assert run.returncode == 0
        assert "usage: taxi-pipeline " + job in run.stdout


def test_a_batch_job_does_not_load_luigids_server_or_history(env: Env) -> None:
    # Serving luigid needs SQLAlchemy and luigi's web server; a job that only schedules
    # (locally or through luigid's RPC) would pay 0.4 s of imports for them at each start.
    probe = ("import sys, pipeline.ops.cli, pipeline.ops.jobs; "
             "print(sorted(m for m in ('sqlalchemy', 'luigi.server', 'luigi.db_task_history')"
             " if m in sys.modules))")
    run = env.command("python", "-c", probe)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"
