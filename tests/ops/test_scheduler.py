"""The central scheduler layer through a real luigid, real worker processes and a local
HTTP source: history, in-run retries, dedup across processes, Backfill, progress."""

from __future__ import annotations

import subprocess
import time
from datetime import date

import duckdb

from pipeline.demo.mirror import Fault, ReleaseMirror
from pipeline.tasks.flows import Backfill
from tests.conftest import BIN, Env, Release
from tests.fixtures_scheduler import Luigid

NAME = "yellow_tripdata_2021-01.csv.gz"


def luigi_cmd(*args: str) -> list[str]:
    return [str(BIN / "luigi"), "--module", "pipeline", *args]


def rows(env: Env, sql: str) -> list[tuple]:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_history_is_recorded_and_browsable(env: Env, luigid: Luigid, release: Release) -> None:
    run = env.command(*luigi_cmd("IngestMonth", "--month", "2021-01", "--services", "green"))
    assert run.returncode == 0, run.stderr[-2000:]
    ran = luigid.events("RUNNING")
    assert ran and all(count == 1 for count in ran.values())
    assert any(task.startswith("LoadDuckDB_2021_01_green") for task in ran)
    status, page = luigid.get("/history")
    assert status == 200 and "LoadDuckDB" in page
    done = luigid.api("task_list", status="DONE", upstream_status="")
    assert any(t.startswith("ParquetizeMonth_2021_01_green") for t in done)
    assert luigid.stop() == 0  # SIGTERM: a clean stop that saves the state
    assert (luigid.directory / "state.pickle").stat().st_size > 0


def test_failures_are_retried_in_the_same_run(env: Env, luigid: Luigid,
                                             mirror: ReleaseMirror, release: Release) -> None:
    env.configure(source={"retries": "1"})  # one HTTP attempt per task attempt
    mirror.inject(NAME, Fault("status", status=503), Fault("status", status=503))
    run = env.command(*luigi_cmd("IngestMonth", "--month", "2021-01", "--services", "yellow"))
    assert run.returncode == 0, run.stderr[-2000:]
    served = mirror.requests_for(NAME)
    assert [s.status for s in served] == [503, 503, 200]
    # The second pause is longer than the first: the delay grows (0.5 s, then 1 s).
    assert served[1].at - served[0].at >= 0.5
    assert served[2].at - served[1].at >= 1.0
    failed = luigid.events("FAILED")
    assert [n for t, n in failed.items() if t.startswith("DownloadMonth")] == [2]
    assert rows(env, "SELECT count(*) FROM yellow_tripdata") == [
        (release.of("yellow", "2021-01").rows,)]


def test_a_permanent_failure_ends_the_run_non_zero(env: Env, luigid: Luigid,
                                                  mirror: ReleaseMirror) -> None:
    run = env.command(*luigi_cmd("IngestMonth", "--month", "2030-01", "--services", "yellow"))
    assert run.returncode == 30
    assert len(mirror.requests_for("yellow_tripdata_2030-01.csv.gz")) == 3  # retry_count
    assert "yellow 2030-01 is not published" in run.stderr


def test_processes_on_one_scheduler_run_each_task_once(env: Env, luigid: Luigid,
                                                       release: Release) -> None:
    asks = [
        ["IngestMonth", "--month", "2021-01"],
        ["IngestMonth", "--month", "2021-01"],
        ["Backfill", "--start", "2020-12", "--end", "2021-01", "--services", "yellow"],
    ]
    processes = [subprocess.Popen(luigi_cmd(*ask, "--no-lock"), cwd=env.tmp, env=env.env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for ask in asks]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in processes]
    assert [code for code, _ in results] == [0, 0, 0], results[0][1][-2000:]
    ran = luigid.events("RUNNING")
    assert all(count == 1 for count in ran.values()), ran
    assert sum(t.startswith(("LoadDuckDB_", "DownloadMonth_")) for t in ran) == 6
    assert dict(rows(env, "SELECT source_month, count(*) FROM yellow_tripdata GROUP BY 1")) == {
        date(2020, 12, 1): release.of("yellow", "2020-12").rows,
        date(2021, 1, 1): release.of("yellow", "2021-01").rows}
    assert rows(env, "SELECT count(*) FROM green_tripdata") == [
        (release.of("green", "2021-01").rows,)]


def test_backfill_covers_every_month_of_a_long_range() -> None:
    task = Backfill(start=date(2015, 1, 1), end=date(2021, 7, 1))
    months = [t.month for t in task.requires()]
    assert len(months) == 79 == len(set(months))
    assert months[0] == date(2015, 1, 1) and months[-1] == date(2021, 7, 1)


def test_backfill_goes_on_past_a_failed_month_and_names_it(env: Env, luigid: Luigid,
                                                            release: Release) -> None:
    run = env.command("taxi-pipeline", "backfill", "--start", "2020-11", "--end", "2021-01",
                      "--services", "yellow")
    assert run.returncode == 30
    assert "scheduler: central luigid at http://127.0.0.1:" in run.stderr
    failed = [line for line in run.stderr.splitlines() if line.startswith("DISABLED")]
    assert failed == [
        "DISABLED DownloadMonth(service=yellow, month=2020-11): NotPublished: yellow 2020-11 is "
        f"not published at {env.settings['source']['base_url']}/yellow/"
        "yellow_tripdata_2020-11.csv.gz (HTTP 404)"]
    assert dict(rows(env, "SELECT source_month, count(*) FROM yellow_tripdata GROUP BY 1")) == {
        date(2020, 12, 1): release.of("yellow", "2020-12").rows,
        date(2021, 1, 1): release.of("yellow", "2021-01").rows}


def test_progress_is_visible_through_the_scheduler_api(env: Env, luigid: Luigid,
                                                      mirror: ReleaseMirror) -> None:
    mirror.inject(NAME, Fault("throttle", rate=250_000))
    run = subprocess.Popen(luigi_cmd("IngestMonth", "--month", "2021-01", "--services",
                                     "yellow"), cwd=env.tmp, env=env.env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:
        for task_id, task in luigid.api("task_list", status="RUNNING",
                                        upstream_status="").items():
            if task_id.startswith("DownloadMonth") and task.get("status_message"):
                seen.append((task["progress_percentage"], task["status_message"]))
        time.sleep(0.2)
    assert run.wait(timeout=60) == 0
    assert any(0 < p < 100 and "MB" in m for p, m in seen), seen
    percentages = [p for p, _ in seen]
    assert percentages == sorted(percentages)
