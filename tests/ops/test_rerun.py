"""A person's re-run runs: on the central scheduler, a job started after a fault is fixed
retries at once the months that failed before (their tasks were disabled for
``[scheduler] disable_window``), while unattended retries within one job still stop at
``retry_count``. Failure reasons name the month, the step and the cause in words."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import date

import duckdb

from pipeline.tasks.load import LoadDuckDBZones, LoadPostgres
from pipeline.tasks.parquetize import ParquetizeMonth
from tests.conftest import BIN, Env, Release
from tests.fixtures_scheduler import Luigid
from tests.mirror import Fault, ReleaseMirror
from tests.ops.test_job_faults import holder, prepare_lake  # noqa: F401 (DuckDB held)

NAME = "yellow_tripdata_2021-01.csv.gz"


def yellow_rows(env: Env) -> int:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM yellow_tripdata WHERE source_month = ?",
                           [date(2021, 1, 1)]).fetchone()[0]


def test_a_person_re_runs_a_disabled_month_at_once(env: Env, luigid: Luigid,
                                                   mirror: ReleaseMirror,
                                                   release: Release) -> None:
    env.configure(source={"retries": "1"})  # one HTTP attempt per task attempt
    mirror.inject(NAME, *[Fault("html")] * 3)  # every attempt of the first job (retry_count)
    ingest = ("taxi-pipeline", "ingest", "--month", "2021-01", "--services", "yellow")

    first = env.command(*ingest)
    assert first.returncode == 30, first.stderr
    assert len(mirror.requests_for(NAME)) == 3  # the job's own retries stopped at the count
    failed = [line for line in first.stderr.splitlines() if line.startswith("DISABLED")]
    # The month, the step and the cause, in words.
    assert len(failed) == 1, first.stderr
    assert failed[0].startswith("DISABLED DownloadMonth(service=yellow, month=2021-01): ")
    assert "the server answered an HTML page, not the data file" in failed[0]
    disabled = luigid.api("task_list", status="DISABLED", upstream_status="")
    assert [t for t in disabled if t.startswith("DownloadMonth_2021_01_yellow")]

    # The mirror serves the file again; within the disable window (an hour) a person runs
    # the job: it runs now, instead of "not granted run permission" (exit 25).
    again = env.command(*ingest)
    assert again.returncode == 0, again.stderr
    assert "scheduler: 1 task(s) disabled after failing earlier are enabled again for this " \
           "job: DownloadMonth(service=yellow, month=2021-01)" in again.stderr
    assert len(mirror.requests_for(NAME)) == 4
    assert yellow_rows(env) == release.of("yellow", "2021-01").rows
    assert ParquetizeMonth(service="yellow", month=date(2021, 1, 1)).output().read().rows == \
        release.of("yellow", "2021-01").rows


def test_a_month_whose_check_failed_on_luigid_runs_again_once_fixed(
        env: Env, luigid: Luigid, release: Release,
        holder: subprocess.Popen[str]) -> None:  # noqa: F811
    env.configure(duckdb={"lock_timeout": "1"})
    prepare_lake(env)  # the loads' checks open the locked warehouse while luigi schedules
    ingest = ("taxi-pipeline", "ingest", "--month", "2021-01", "--services", "yellow")
    first = env.command(*ingest, timeout=120)
    assert first.returncode == 30, first.stderr
    assert f"is locked by process {holder.pid}" in first.stderr
    disabled = luigid.api("task_list", status="DISABLED", upstream_status="")
    assert [t for t in disabled if t.startswith("LoadDuckDB_2021_01_yellow")]
    error = luigid.api("fetch_error", task_id=next(t for t in disabled
                                                   if t.startswith("LoadDuckDB_2021")))
    assert f"locked by process {holder.pid}" in error["error"]

    holder.kill()
    holder.wait()
    again = env.command(*ingest, timeout=120)
    assert again.returncode == 0, again.stderr
    assert yellow_rows(env) == release.of("yellow", "2021-01").rows


def test_a_job_stopped_on_luigid_leaves_nothing_running_there(
        env: Env, luigid: Luigid, mirror: ReleaseMirror, release: Release) -> None:
    env.configure(worker={"force_multiprocessing": "true"})
    mirror.inject(NAME, Fault("stall", at=400_000, seconds=30))
    job = subprocess.Popen(
        [str(BIN / "taxi-pipeline"), "ingest", "--month", "2021-01", "--services", "yellow"],
        cwd=env.tmp, env=env.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not [t for t in luigid.api("task_list", status="RUNNING", upstream_status="")
                   if t.startswith("DownloadMonth_2021_01_yellow")]:
            assert job.poll() is None, job.communicate()
            assert time.monotonic() < deadline, "the download never started"
            time.sleep(0.05)
        job.send_signal(signal.SIGTERM)
        _, stderr = job.communicate(timeout=30)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert job.returncode == 143, stderr
    # luigid was told at once: nothing it holds RUNNING waits for the stopped worker to be
    # given up (a minute), so the next job runs the month now.
    assert luigid.api("task_list", status="RUNNING", upstream_status="") == {}
    assert "the job was stopped by SIGTERM" in luigid.api(
        "fetch_error", task_id=next(iter(luigid.api("task_list", status="FAILED",
                                                    upstream_status=""))))["error"]
    again = env.command("taxi-pipeline", "ingest", "--month", "2021-01", "--services", "yellow")
    assert again.returncode == 0, again.stderr
    assert yellow_rows(env) == release.of("yellow", "2021-01").rows


def test_a_missing_load_is_named_in_words(env: Env) -> None:
    # luigi names a dependency's missing outputs in "Unfulfilled dependency at run time:
    # <task> (<outputs>)", in the job's summary, its alert and luigid.
    month = LoadPostgres(service="yellow", month=date(2021, 1, 1)).output()
    assert str(month) == "yellow 2021-01 in table yellow_tripdata, loaded by LoadPostgres"
    assert str(LoadDuckDBZones().output()) == "table zones loaded by LoadDuckDBZones"
    manifest = ParquetizeMonth(service="yellow", month=date(2021, 1, 1)).output()
    assert str(manifest).endswith("_manifest.json describing "
                                  f"{env.lake}/parquet/yellow/year=2021/month=01/"
                                  "yellow_tripdata_2021-01.parquet")
    assert " object at 0x" not in repr(month)
