"""Seeded kill trials: a run of IngestMonth is SIGKILLed while a chosen stage runs (download,
parquetize, upload or a load; the seed picks the stage and a random moment within it), over
a month whose older version is already published in half the trials.

Each trial proves its kill landed: the run must still be alive when the signal is sent (it
ends by SIGKILL, not by itself), and the worker's log names the tasks that had started and
not finished at that moment, which the trial records as the stage hit (``make reliability``
prints how many trials hit each stage). After each kill, everything that ``complete()``
accepts is intact, every warehouse holds the old month or the new one, never a mix, and the
next run finishes the month exactly. A few trials run by default; ``make reliability`` runs
them all."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipeline.demo import samples
from pipeline.lake.gcs import GCS
from pipeline.tasks.download import DownloadMonth
from pipeline.tasks.flows import IngestMonth
from pipeline.tasks.load import LoadDuckDB, LoadPostgres
from pipeline.tasks.parquetize import ParquetizeMonth
from tests.conftest import BIN, Env, Release
from tests.fixtures_postgres import Database
from tests.mirror import Fault, ReleaseMirror
from tests.waiting import wait_until

JAN = date(2021, 1, 1)
NAME = "yellow_tripdata_2021-01.csv.gz"
OLD_ROWS = 20_000

DEFAULT_TRIALS = range(3)
SLOW_TRIALS = range(3, 27)
LOCAL_STAGES = ("DownloadMonth", "ParquetizeMonth", "LoadDuckDB", "LoadPostgres")
CLOUD_STAGES = (*LOCAL_STAGES, "UploadMonth", "LoadBigQuery")
# luigi's worker logs these two lines around each task it runs.
_STARTED = re.compile(r"running +(\w+)\(")
_DONE = re.compile(r"done +(\w+)\(")


@dataclass
class Warehouses:
    env: Env
    pg: Database
    cloud: object | None = None

    def counts(self) -> dict[str, int]:
        found = {"duckdb": 0}
        if self.env.duckdb_path.exists():  # a run killed before its first load made none
            with (duckdb.connect(str(self.env.duckdb_path), read_only=True) as con,
                  contextlib.suppress(duckdb.CatalogException)):
                    found["duckdb"] = con.execute(
                        "SELECT count(*) FROM yellow_tripdata WHERE source_month = ?", [JAN]
                    ).fetchone()[0]
        try:
            found["postgres"] = self.pg.query(
                "SELECT count(*) FROM yellow_tripdata WHERE source_month = %s", [JAN])[0][0]
        except Exception as e:  # no table yet
            assert "does not exist" in str(e), e
            found["postgres"] = 0
        if self.cloud is not None:
            found["bigquery"] = self._bigquery()
        return found

    def _bigquery(self) -> int:
        cloud = self.cloud
        try:
            return cloud.query(  # type: ignore[attr-defined]
                f"SELECT count(*) FROM `{cloud.table('yellow_tripdata')}` "  # type: ignore[attr-defined]
                "WHERE source_month = DATE '2021-01-01'")[0][0]
        except Exception as e:
            assert "not found" in str(e).lower() or "does not exist" in str(e).lower(), e
            return 0


@pytest.fixture(scope="module")
def old_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An earlier publication of yellow 2021-01, with fewer rows."""
    root = tmp_path_factory.mktemp("old-release")
    samples.write_release(root, {"yellow": [JAN]}, {"yellow": OLD_ROWS}, seed=7)
    return root


def publish_old_version(env: Env, old_release: Path) -> None:
    """Load the old version everywhere, then drop the lake files so the new one is fetched."""
    with ReleaseMirror(old_release) as old:
        saved = dict(env.settings["source"])
        env.configure(source={"base_url": old.base_url, "zones_url": old.zones_url})
        assert env.build(IngestMonth(month=JAN, services=("yellow",))).scheduling_succeeded
        env.configure(source=saved)
    for task in (DownloadMonth(service="yellow", month=JAN),
                 ParquetizeMonth(service="yellow", month=JAN)):
        target = task.output()
        Path(target.path).unlink()
    assert not LoadDuckDB(service="yellow", month=JAN).complete()


def check_after_kill(env: Env, release: Release, warehouses: Warehouses,
                     had_old: bool) -> None:
    new_rows = release.of("yellow", "2021-01").rows
    raw = DownloadMonth(service="yellow", month=JAN)
    if raw.complete():
        assert Path(raw.output().path).read_bytes() == (release.root / "yellow" / NAME).read_bytes()
    parquet = ParquetizeMonth(service="yellow", month=JAN)
    if parquet.complete():
        manifest = parquet.output().read()
        assert manifest is not None and manifest.rows == new_rows
        assert pq.read_table(parquet.output().parquet.file).num_rows == new_rows
    allowed = {new_rows, OLD_ROWS} if had_old else {new_rows, 0}
    for sink, rows in warehouses.counts().items():
        assert rows in allowed, f"{sink} holds {rows} rows: a mix of two versions"
    for task in (LoadDuckDB(service="yellow", month=JAN),
                 LoadPostgres(service="yellow", month=JAN)):
        if task.complete():
            assert parquet.complete()


def kill_group(run: subprocess.Popen[bytes]) -> None:
    """SIGKILL the run and its forked workers, and wait until every one of them is gone
    (a dying worker still holds its file locks)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(run.pid, signal.SIGKILL)
    run.wait()

    def gone() -> bool:
        try:
            os.killpg(run.pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, 30, "the killed workers gone")


def running_tasks(log: str) -> list[str]:
    """The tasks the log shows started and not finished."""
    started, done = _STARTED.findall(log), _DONE.findall(log)
    for name in done:
        started.remove(name)
    return sorted(started)


def kill_in_stage(run: subprocess.Popen[bytes], log: Path, stage: str,
                  rng: random.Random) -> list[str]:
    """Wait for ``stage`` to start, SIGKILL the run at a random moment soon after, and
    return the tasks it was running then. Fails if the run ends before the kill."""
    wait_until(lambda: re.search(rf"running +{stage}\(", log.read_text()), 120,
               f"{stage} started", process=run, interval=0.002)
    time.sleep(rng.uniform(0.0, 0.08))  # a random moment within the stage: the trial's seed
    kill_group(run)
    assert run.returncode == -signal.SIGKILL, (
        f"the run ended by itself (exit {run.returncode}) before the kill")
    return running_tasks(log.read_text())


def run_trial(seed: int, env: Env, release: Release, warehouses: Warehouses,
              old_release: Path, mirror: ReleaseMirror, stages: tuple[str, ...],
              hit: list[tuple[str, object]]) -> None:
    rng = random.Random(seed)
    had_old = rng.random() < 0.5
    stage = stages[seed % len(stages)]
    if had_old:
        publish_old_version(env, old_release)
    if stage == "DownloadMonth":
        # A download of this size takes milliseconds here; slowed down, it can be hit.
        mirror.inject(NAME, Fault("throttle", rate=400_000))
    log = env.tmp / f"trial-{seed}.log"
    with open(log, "wb") as err:
        run = subprocess.Popen(
            [str(BIN / "luigi"), "--module", "pipeline", "IngestMonth", "--month", "2021-01",
             "--services", "yellow", "--local-scheduler", "--workers", "2",
             "--log-level", "INFO"],
            cwd=env.tmp, env=env.env(), stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True)
        running = kill_in_stage(run, log, stage, rng)
    hit.append(("kill_stage", "+".join(running) or "between tasks"))
    check_after_kill(env, release, warehouses, had_old)

    finish = env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2021-01",
                         "--services", "yellow", "--local-scheduler", "--workers", "2")
    assert finish.returncode == 0, finish.stderr[-3000:]
    rows = release.of("yellow", "2021-01").rows
    assert set(warehouses.counts().values()) == {rows}
    GCS.forget()  # this process's cached listing predates the other process's uploads
    assert IngestMonth(month=JAN, services=("yellow",)).complete()


@pytest.fixture
def local_sinks(env: Env, postgres_db: Database) -> Warehouses:
    env.configure(postgres={"url": postgres_db.url}, pipeline={"sinks": "duckdb,postgres"})
    return Warehouses(env, postgres_db)


@pytest.fixture
def all_sinks(env: Env, postgres_db: Database, cloud: object) -> Warehouses:
    env.configure(postgres={"url": postgres_db.url},
                  pipeline={"sinks": "duckdb,postgres,gcs,bigquery"})
    return Warehouses(env, postgres_db, cloud)


@pytest.mark.kill_trial
@pytest.mark.parametrize(("seed", "sinks"), [
    *[pytest.param(seed, "local", id=str(seed)) for seed in DEFAULT_TRIALS],
    # Every sink, the cloud's too: their stages added to what a kill can hit.
    *[pytest.param(seed, "all", id=f"all-sinks-{seed}", marks=pytest.mark.slow)
      for seed in SLOW_TRIALS],
])
def test_kill_trial(seed: int, sinks: str, env: Env, release: Release, old_release: Path,
                    mirror: ReleaseMirror, request: pytest.FixtureRequest) -> None:
    warehouses = request.getfixturevalue(f"{sinks}_sinks")
    run_trial(seed, env, release, warehouses, old_release, mirror,
              LOCAL_STAGES if sinks == "local" else CLOUD_STAGES, request.node.user_properties)

