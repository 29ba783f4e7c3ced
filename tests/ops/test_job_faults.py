"""Anticipated faults end a job with a one-line reason, its exit code and its alert, never
a traceback or a wait: the DuckDB file held by another process, a full disk, a read-only
lake, the central scheduler down. After the fault is fixed, the next run completes the
month with its exact rows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from tests.conftest import Env, Release
from tests.ops.test_notify import Receivers, receivers  # noqa: F401 (the alert's receivers)
from tests.ports import free_port

pytestmark = pytest.mark.fault_case


def ingest(env: Env, *more: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return env.command("taxi-pipeline", "ingest", "--month", "2021-01", "--services", "yellow",
                       *more, timeout=timeout)


def yellow_rows(env: Env) -> int:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM yellow_tripdata WHERE source_month = ?",
                           [date(2021, 1, 1)]).fetchone()[0]


def assert_one_line(output: str, text: str) -> None:
    assert "Traceback" not in output, output
    assert any(text in line for line in output.splitlines()), output


def prepare_lake(env: Env) -> None:
    """The lake holds the month and the zones, the warehouse not yet: the completeness
    checks of the loads then open the warehouse while luigi schedules."""
    for task in (["Zones"], ["ParquetizeMonth", "--service", "yellow", "--month", "2021-01"]):
        run = env.command("luigi", "--module", "pipeline", *task, "--local-scheduler")
        assert run.returncode == 0, run.stderr


@pytest.fixture
def holder(env: Env) -> Iterator[subprocess.Popen[str]]:
    """Another process (a DuckDB shell, a BI tool) holding the warehouse file open."""
    env.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); sys.stdin.read()", str(env.duckdb_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "open\n"
    yield process
    process.kill()
    process.wait()


def test_a_locked_warehouse_fails_the_month_naming_the_holder(
        env: Env, release: Release, holder: subprocess.Popen[str],
        receivers: Receivers) -> None:  # noqa: F811
    env.configure(duckdb={"lock_timeout": "1"}, email={"receiver": ""})
    prepare_lake(env)
    started = time.monotonic()
    run = ingest(env, "--local-scheduler")
    output = run.stdout + run.stderr
    assert run.returncode == 30, output
    assert_one_line(output, f"is locked by process {holder.pid} (")
    # Found while luigi scheduled: a failure of the month with its reason, not a wait.
    assert "DISABLED LoadDuckDB(service=yellow, month=2021-01): its completeness check " \
           "failed: WarehouseError: DuckDB file" in output
    assert "waited 1 s ([duckdb] lock_timeout)" in output
    assert time.monotonic() - started < 60
    assert [post["text"] for _, post in receivers.hook.posts if str(holder.pid) in post["text"]]

    holder.kill()
    holder.wait()
    again = ingest(env, "--local-scheduler")
    assert again.returncode == 0, again.stderr
    assert yellow_rows(env) == release.of("yellow", "2021-01").rows


def test_a_locked_warehouse_ends_a_plain_luigi_run_too(
        env: Env, release: Release, holder: subprocess.Popen[str]) -> None:
    # luigi itself marks a task whose completeness check raised UNKNOWN, and its worker
    # (keep_alive) then waited forever for the tasks above it.
    env.configure(duckdb={"lock_timeout": "1"})
    prepare_lake(env)
    run = env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2021-01",
                      "--services", "yellow", "--local-scheduler", timeout=120)
    assert run.returncode == 30, run.stderr
    assert_one_line(run.stderr, f"is locked by process {holder.pid} (")


def test_the_central_scheduler_down_at_start_is_one_line_at_once(
        env: Env, receivers: Receivers) -> None:  # noqa: F811
    port = free_port()
    env.configure(core={"scheduler_host": "127.0.0.1", "scheduler_port": str(port)},
                  email={"receiver": ""})
    started = time.monotonic()
    run = ingest(env)
    assert run.returncode == 35, run.stderr
    assert time.monotonic() - started < 15
    assert_one_line(run.stderr, f"the central scheduler at http://127.0.0.1:{port} is not "
                                "reachable (connection refused)")
    assert sum("not reachable" in line for line in run.stderr.splitlines()) == 1
    assert [post for _, post in receivers.hook.posts if "not reachable" in post["text"]]
    assert not env.lake.exists()


def test_a_job_refused_before_it_runs_still_sends_its_alert(
        env: Env, receivers: Receivers) -> None:  # noqa: F811
    env.configure(email={"receiver": ""})
    env.lake.parent.mkdir(parents=True, exist_ok=True)
    env.lake.write_text("not a directory")
    run = ingest(env, "--local-scheduler")
    assert run.returncode == 40, run.stderr
    assert run.stderr.splitlines()[0] == \
        f"error: [lake] root {env.lake} is a file, not a directory"
    texts = [post["text"] for _, post in receivers.hook.posts]
    assert len(texts) == 1 and "is a file, not a directory" in texts[0]
    assert "exit code 40" in texts[0]


def test_the_central_scheduler_down_ends_a_plain_luigi_run_at_once(env: Env) -> None:
    port = free_port()
    env.configure(core={"scheduler_host": "127.0.0.1", "scheduler_port": str(port)})
    started = time.monotonic()
    run = env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2021-01",
                      "--services", "yellow", timeout=60)
    assert run.returncode == 35, run.stderr
    assert time.monotonic() - started < 15
    assert_one_line(run.stderr, f"the central scheduler at http://127.0.0.1:{port} is not "
                                "reachable")
    assert not env.lake.exists()


def _mount_tmpfs(directory: Path, size: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(directory)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")


@pytest.fixture
def small_disk(env: Env) -> Iterator[Path]:
    """A file system of 2 MB, mounted for the test (skipped where mounting is impossible)."""
    directory = env.tmp / "small"
    _mount_tmpfs(directory, "2m")
    yield directory
    subprocess.run(["umount", "-l", str(directory)], check=False)


def test_a_full_disk_under_the_warehouse_fails_the_month_on_one_line(
        env: Env, release: Release, small_disk: Path) -> None:
    env.configure(duckdb={"path": str(small_disk / "warehouse.duckdb")})
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 1_900_000)  # what another program left on the disk
    run = ingest(env, "--local-scheduler")
    output = run.stdout + run.stderr
    assert run.returncode == 30, output
    assert_one_line(output, "No space left on device")
    assert "LoadDuckDB(service=yellow, month=2021-01)" in output

    filler.unlink()  # the disk is made room on
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = ingest(env, "--local-scheduler")
    assert again.returncode == 0, again.stderr
    assert yellow_rows(env) == release.of("yellow", "2021-01").rows


def test_a_full_disk_under_the_lake_fails_the_month_on_one_line(
        env: Env, release: Release, small_disk: Path) -> None:
    env.configure(lake={"root": str(small_disk / "lake")})
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 1_700_000)
    run = ingest(env, "--local-scheduler")
    output = run.stdout + run.stderr
    assert run.returncode == 30, output
    assert "Traceback" not in output, output
    assert any("No space left on device" in line or "is full" in line
               for line in output.splitlines()), output
    # Nothing half-written under a final name: no manifest claims the month.
    assert not list((small_disk / "lake").rglob("_manifest.json"))

    filler.unlink()
    subprocess.run(["mount", "-o", "remount,size=256m", str(small_disk)], check=True)
    again = ingest(env, "--local-scheduler")
    assert again.returncode == 0, again.stderr
    assert yellow_rows(env) == release.of("yellow", "2021-01").rows


def test_a_read_only_lake_is_refused_before_anything_runs(env: Env, small_disk: Path) -> None:
    env.configure(lake={"root": str(small_disk / "lake")})
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    run = ingest(env, "--local-scheduler")
    assert run.returncode == 40, run.stderr
    assert_one_line(run.stderr, f"[lake] root {small_disk / 'lake'} is read-only")
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
