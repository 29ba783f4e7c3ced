"""The central scheduler layer through a real luigid, real worker processes and a local
HTTP source: history, in-run retries, dedup across processes (overlapping asks, four hosts
sharing a year, four processes into every sink), Backfill, progress."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipeline.core.months import months_between
from pipeline.demo import samples
from pipeline.tasks.flows import Backfill
from tests.conftest import BIN, Env, Release
from tests.fixtures_scheduler import Luigid
from tests.mirror import Fault, ReleaseMirror

NAME = "yellow_tripdata_2021-01.csv.gz"
YEAR_2020 = months_between(date(2020, 1, 1), date(2020, 12, 1))


def luigi_cmd(*args: str) -> list[str]:
    return [str(BIN / "luigi"), "--module", "pipeline", *args]


def rows_of(env: Env, sql: str) -> list[tuple]:
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
    assert rows_of(env, "SELECT count(*) FROM yellow_tripdata") == [
        (release.of("yellow", "2021-01").rows,)]


def test_a_permanent_failure_ends_the_run_non_zero(env: Env, luigid: Luigid,
                                                  mirror: ReleaseMirror) -> None:
    run = env.command(*luigi_cmd("IngestMonth", "--month", "2030-01", "--services", "yellow"))
    assert run.returncode == 30
    assert len(mirror.requests_for("yellow_tripdata_2030-01.csv.gz")) == 3  # retry_count
    assert "yellow 2030-01 is not published" in run.stderr


@dataclass(frozen=True)
class SharedRun:
    """Several luigi processes on one luigid at once (standing in for hosts): what each asks
    for, and the (service, month) pairs that must land, once, in every sink."""

    asks: tuple[tuple[str, ...], ...]
    months: tuple[tuple[str, str], ...]
    sinks: str = "duckdb"
    year_release: bool = False  # the twelve yellow months of 2020, not the shared release
    multiprocessing: bool = False  # each task in a forked process, as in luigi.cfg
    spread: bool = False  # asks alike and many tasks: the work must land on several


BACKFILL_2020 = ("Backfill", "--start", "2020-01", "--end", "2020-12", "--services", "yellow")
YELLOW_DEC_JAN = (("yellow", "2020-12"), ("yellow", "2021-01"))


@pytest.fixture(scope="module")
def year_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("year-release")
    facts = samples.write_release(root, {"yellow": YEAR_2020}, {"yellow": 2_500})
    return root, {f.month: f.rows for f in facts}


@pytest.mark.parametrize("case", [
    pytest.param(SharedRun(
        asks=(("IngestMonth", "--month", "2021-01"), ("IngestMonth", "--month", "2021-01"),
              ("Backfill", "--start", "2020-12", "--end", "2021-01", "--services", "yellow")),
        months=(*YELLOW_DEC_JAN, ("green", "2021-01"))), id="overlapping-asks"),
    pytest.param(SharedRun(asks=(BACKFILL_2020,) * 4,
                           months=tuple(("yellow", f"{m:%Y-%m}") for m in YEAR_2020),
                           year_release=True, spread=True), id="four-hosts-a-year"),
    pytest.param(SharedRun(
        asks=(("IngestMonth", "--month", "2021-01", "--services", "yellow"),
              ("IngestMonth", "--month", "2021-01", "--services", "yellow"),
              ("Backfill", "--start", "2020-12", "--end", "2021-01", "--services", "yellow"),
              ("IngestMonth", "--month", "2020-12", "--services", "yellow")),
        months=YELLOW_DEC_JAN, sinks="duckdb,postgres,gcs,bigquery", multiprocessing=True),
        id="four-processes-all-sinks", marks=pytest.mark.fault_case),
])
def test_processes_on_one_scheduler_run_each_task_once(
        env: Env, luigid: Luigid, release: Release, case: SharedRun,
        request: pytest.FixtureRequest) -> None:
    rows = {key: release.of(*key).rows for key in case.months if not case.year_release}
    sinks = case.sinks.split(",")
    with contextlib.ExitStack() as stack:
        if case.year_release:
            root, year_rows = request.getfixturevalue("year_release")
            mirror = stack.enter_context(ReleaseMirror(root))
            env.configure(source={"base_url": mirror.base_url, "zones_url": mirror.zones_url})
            rows = {("yellow", month): n for month, n in year_rows.items()}
        postgres_db = request.getfixturevalue("postgres_db") if "postgres" in sinks else None
        cloud = request.getfixturevalue("cloud") if "bigquery" in sinks else None
        env.configure(pipeline={"sinks": case.sinks},
                      worker={"force_multiprocessing": str(case.multiprocessing).lower()},
                      **({"postgres": {"url": postgres_db.url}} if postgres_db else {}))
        logs = [env.tmp / f"process-{i}.log" for i in range(len(case.asks))]
        processes = [subprocess.Popen(luigi_cmd(*ask, "--no-lock"), cwd=env.tmp, env=env.env(),
                                      stdout=subprocess.DEVNULL, stderr=log.open("w"))
                     for ask, log in zip(case.asks, logs, strict=True)]
        codes = [p.wait(timeout=600) for p in processes]
    assert codes == [0] * len(logs), [log.read_text()[-1500:] for log in logs]

    ran = luigid.events("RUNNING")
    assert ran and all(n == 1 for n in ran.values()), ran
    for family in ("DownloadMonth_", "ParquetizeMonth_", "LoadDuckDB_"):
        assert sum(t.startswith(family) for t in ran) == len(case.months), family
    # Every task ran in exactly one process.
    own_runs = [sum(int(m) for m in re.findall(r"\* (\d+) ran successfully", log.read_text()))
                for log in logs]
    assert sum(own_runs) == len(ran), own_runs
    if case.spread:
        assert sum(n > 0 for n in own_runs) > 1, own_runs

    expected: dict[str, dict[date, int]] = {}
    for (service, month), n in rows.items():
        expected.setdefault(service, {})[date.fromisoformat(month + "-01")] = n
    assert set(expected) == {service for service, _ in case.months}
    for service, months in expected.items():
        by_month = f"SELECT source_month, count(*) FROM {service}_tripdata GROUP BY 1"
        assert dict(rows_of(env, by_month)) == months, service
        if postgres_db:
            assert dict(postgres_db.query(by_month)) == months, service
        if cloud:
            assert dict(cloud.query(f"SELECT source_month, count(*) FROM "
                                    f"`{cloud.table(f'{service}_tripdata')}` GROUP BY 1")
                        ) == months, service


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
    assert dict(rows_of(env, "SELECT source_month, count(*) FROM yellow_tripdata GROUP BY 1")) == {
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
