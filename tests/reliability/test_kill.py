"""A worker SIGKILLed in the middle of a step leaves nothing that looks complete, and the
next run finishes the month exactly."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from pipeline.demo import samples
from pipeline.tasks.download import DownloadMonth
from pipeline.tasks.parquetize import ParquetizeMonth
from tests.conftest import BIN, Env, Release
from tests.mirror import Fault, ReleaseMirror
from tests.waiting import wait_until

pytestmark = pytest.mark.kill_trial


def start_ingest(env: Env, month: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "luigi"), "--module", "pipeline", "IngestMonth", "--month", month,
         "--services", "yellow", "--local-scheduler"],
        cwd=env.tmp, env=env.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        text=True, start_new_session=True,
    )


def kill_when(process: subprocess.Popen[str], ready: Callable[[], bool],
              timeout: float = 60) -> None:
    wait_until(ready, timeout, "the moment to kill the run", process=process, interval=0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def temporaries(directory: Path, min_bytes: int = 0) -> list[Path]:
    if not directory.exists():
        return []
    return [p for p in directory.glob(".*.tmp") if p.stat().st_size >= min_bytes]


def test_kill_during_download(env: Env, mirror: ReleaseMirror, release: Release) -> None:
    name = "yellow_tripdata_2021-01.csv.gz"
    mirror.inject(name, Fault("stall", at=400_000, seconds=20))
    run = start_ingest(env, "2021-01")
    raw_dir = env.lake / "raw" / "yellow"
    kill_when(run, lambda: bool(temporaries(raw_dir, 200_000)))
    task = DownloadMonth(service="yellow", month=date(2021, 1, 1))
    assert not task.complete()
    assert not (raw_dir / name).exists()

    finish = env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2021-01",
                         "--services", "yellow", "--local-scheduler")
    assert finish.returncode == 0, finish.stderr
    manifest = ParquetizeMonth(service="yellow", month=date(2021, 1, 1)).output().read()
    assert manifest is not None and manifest.rows == release.of("yellow", "2021-01").rows
    assert (raw_dir / name).read_bytes() == (release.root / "yellow" / name).read_bytes()


@pytest.fixture
def large_month(release: Release) -> samples.SampleFacts:
    """A month big enough (1.2 M rows) that converting it takes a while to interrupt."""
    path = release.root / "yellow" / "yellow_tripdata_2019-06.csv.gz"
    facts_file = path.with_suffix(".rows")
    if not facts_file.exists():
        facts = samples.write_month(path, "yellow", date(2019, 6, 1), 1_200_000)
        facts_file.write_text(str(facts.rows))
    return samples.SampleFacts("yellow", "2019-06", int(facts_file.read_text()), 0, 0, 0, (), "")


@pytest.mark.parametrize("convert_while_downloading", ["false", "true"])
def test_kill_during_parquetize(env: Env, large_month: samples.SampleFacts,
                                convert_while_downloading: str) -> None:
    """Killed while the month's Parquet is written: by ParquetizeMonth (off), or by the
    conversion beside DownloadMonth's download (on)."""
    env.configure(pipeline={"convert_while_downloading": convert_while_downloading})
    run = start_ingest(env, "2019-06")
    task = ParquetizeMonth(service="yellow", month=date(2019, 6, 1))
    parquet_dir = task.output().parquet.file.parent
    kill_when(run, lambda: bool(temporaries(parquet_dir)))
    if convert_while_downloading == "false":
        assert DownloadMonth(service="yellow", month=date(2019, 6, 1)).complete()
    assert not task.complete()
    assert not task.output().manifest.exists()  # no manifest: nothing claims the month is done

    finish = env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2019-06",
                         "--services", "yellow", "--local-scheduler")
    assert finish.returncode == 0, finish.stderr
    manifest = task.output().read()
    assert manifest is not None and manifest.rows == large_month.rows
    assert task.complete()
