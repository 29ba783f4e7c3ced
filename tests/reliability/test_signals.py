"""SIGTERM or SIGINT to a job (and systemd's stop of the shipped service) ends its task
processes within seconds and prints one line; the exit code says which signal (128 +
signum); the next run completes the month with its exact rows."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipeline.ops.stopping import GRACE, descendants
from tests.conftest import BIN, PROJECT, Env, Release
from tests.mirror import Fault, ReleaseMirror

pytestmark = pytest.mark.kill_trial

NAME = "yellow_tripdata_2021-01.csv.gz"
UNIT = PROJECT / "deploy" / "taxi-pipeline-catch-up.service"


def unit_settings(path: Path) -> dict[str, str]:
    """The [Service] settings of a systemd unit (the last of each name wins, as systemd)."""
    settings: dict[str, str] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def session_processes(sid: int) -> list[int]:
    """Processes still alive (not zombies) in the session the job was started in."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                alive.append(int(entry.name))
    return alive


def yellow_rows(env: Env) -> int:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM yellow_tripdata WHERE source_month = ?",
                           [date(2021, 1, 1)]).fetchone()[0]


def downloading(env: Env) -> bool:
    folder = env.lake / "raw" / "yellow"
    return folder.exists() and any(p.stat().st_size >= 200_000 for p in folder.glob(".*.tmp"))


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "systemctl stop"])
def test_a_signal_ends_the_job_and_its_task_processes(
        env: Env, mirror: ReleaseMirror, release: Release, how: str) -> None:
    unit = unit_settings(UNIT)
    if how == "systemctl stop":
        # What systemd does on stop with KillMode=mixed: KillSignal to the main process
        # only; after TimeoutStopSec, SIGKILL to whatever is left of the unit.
        assert unit["KillMode"] == "mixed"
        signum = signal.Signals[unit["KillSignal"]]
        stop_timeout = float(unit["TimeoutStopSec"])
    else:
        signum, stop_timeout = signal.Signals[how], GRACE + 10
    # Task processes forked as in production, and a download that stalls mid-file.
    env.configure(worker={"force_multiprocessing": "true"})
    mirror.inject(NAME, Fault("stall", at=400_000, seconds=30))
    job = subprocess.Popen(
        [str(BIN / "taxi-pipeline"), "ingest", "--month", "2021-01", "--services", "yellow",
         "--local-scheduler"], cwd=env.tmp, env=env.env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (downloading(env) and descendants(job.pid)):
            assert job.poll() is None, job.communicate()
            assert time.monotonic() < deadline, "the download never started"
            time.sleep(0.02)
        tasks = descendants(job.pid)  # the job was running DownloadMonth in these

        signalled = time.monotonic()
        job.send_signal(signum)
        _, stderr = job.communicate(timeout=stop_timeout)
        took = time.monotonic() - signalled
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()

    assert job.returncode == 128 + signum, stderr
    if how == "systemctl stop":
        assert str(job.returncode) in unit["SuccessExitStatus"].split()
    assert took < stop_timeout
    stopped = [line for line in stderr.splitlines() if "stopped by" in line]
    assert stopped == [f"taxi-pipeline ingest: stopped by {signum.name}: {len(tasks)} task "
                       "process(es) ended; nothing half-written is kept, run it again to "
                       "finish"], stderr
    assert "Traceback" not in stderr
    assert session_processes(job.pid) == []  # nothing left for systemd's SIGKILL
    assert not (env.lake / "raw" / "yellow" / NAME).exists()

    again = env.command("taxi-pipeline", "ingest", "--month", "2021-01", "--services",
                        "yellow", "--local-scheduler")
    assert again.returncode == 0, again.stderr
    assert yellow_rows(env) == release.of("yellow", "2021-01").rows
    assert (env.lake / "raw" / "yellow" / NAME).read_bytes() == \
        (release.root / "yellow" / NAME).read_bytes()
