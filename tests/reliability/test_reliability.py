"""Storage faults, a locked warehouse, hostile input and secrets: each ends in a clear error
or a defined result, and nothing under a final name is damaged."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline.core.datasets import SERVICES
from pipeline.demo import samples
from pipeline.tasks.download import DownloadMonth
from pipeline.tasks.flows import IngestMonth
from pipeline.tasks.load import LoadDuckDB
from pipeline.tasks.parquetize import ParquetizeMonth
from tests.conftest import BIN, Env, Release
from tests.fixtures_postgres import Cluster, Database
from tests.fixtures_scheduler import Luigid
from tests.mirror import ReleaseMirror
from tests.waiting import wait_until

JAN = date(2021, 1, 1)
pytestmark = pytest.mark.fault_case


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1.2 MB tmpfs: room for a month's raw file, not for its Parquet as well."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_disk_full_during_parquetize_fails_cleanly(env: Env, small_disk: Path) -> None:
    env.configure(lake={"root": str(small_disk)})
    result = env.build(ParquetizeMonth(service="yellow", month=JAN))
    assert result.status == LuigiStatusCode.FAILED
    task = ParquetizeMonth(service="yellow", month=JAN)
    assert DownloadMonth(service="yellow", month=JAN).complete()
    assert not task.complete()
    assert [p.name for p in task.output().parquet.file.parent.iterdir()] == []  # temporary removed
    # Room again: the next run converts the month, without downloading it again.
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    assert task.output().read().rows == 30_000  # type: ignore[union-attr]


def test_disk_full_is_reported_in_one_line(env: Env, small_disk: Path) -> None:
    env.configure(lake={"root": str(small_disk)})
    run = env.command("luigi", "--module", "pipeline", "ParquetizeMonth", "--service", "yellow",
                      "--month", "2021-01", "--local-scheduler")
    assert run.returncode == 30
    assert "Traceback" not in run.stderr
    assert "no space left in the lake for" in run.stderr


def hold_duckdb_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process (a DuckDB shell, a BI tool) holding the warehouse file open."""
    code = ("import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', "
            "flush=True); time.sleep(float(sys.argv[2]))")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout and holder.stdout.readline().strip() == "locked"
    return holder


def test_locked_duckdb_file_is_waited_for(env: Env, release: Release) -> None:
    assert env.build(ParquetizeMonth(service="green", month=JAN)).scheduling_succeeded
    duckdb.connect(str(env.duckdb_path)).close()
    holder = hold_duckdb_lock(env.duckdb_path, 2)
    env.configure(duckdb={"lock_timeout": "60"})
    assert env.build(LoadDuckDB(service="green", month=JAN)).status == LuigiStatusCode.SUCCESS
    holder.wait()
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM green_tripdata").fetchone() == (
            release.of("green", "2021-01").rows,)


def test_locked_duckdb_file_beyond_the_timeout_is_a_clear_error(env: Env) -> None:
    duckdb.connect(str(env.duckdb_path)).close()
    holder = hold_duckdb_lock(env.duckdb_path, 30)
    try:
        env.configure(duckdb={"lock_timeout": "1"}, scheduler={"retry_count": "1"})
        run = env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2021-01",
                          "--services", "green", "--local-scheduler")
    finally:
        holder.kill()
    assert run.returncode == 30
    assert "Traceback" not in run.stderr
    # The holder is named, from DuckDB's own lock error.
    assert f"DuckDB file {env.duckdb_path} is locked by process {holder.pid} (" in run.stderr
    # The lake side of the month is done and stays done; only the load is missing.
    assert ParquetizeMonth(service="green", month=JAN).complete()


def test_month_with_zero_rows_is_a_defined_empty_month(env: Env, release: Release) -> None:
    # A month of the calendar no other test serves (yellow began in 2009-01), as CSV.
    env.configure(source={"kind": "csv"})
    path = release.root / "yellow" / "yellow_tripdata_2009-06.csv.gz"
    path.write_bytes(gzip.compress((",".join(SERVICES["yellow"].columns) + "\n").encode()))
    month = date(2009, 6, 1)
    assert env.build(IngestMonth(month=month, services=("yellow",))).status == \
        LuigiStatusCode.SUCCESS
    manifest = ParquetizeMonth(service="yellow", month=month).output().read()
    assert manifest is not None and manifest.rows == 0
    assert LoadDuckDB(service="yellow", month=month).complete()
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        assert con.execute("SELECT rows FROM pipeline_loads WHERE source_month = ?",
                           [month]).fetchall() == [(0,)]


@pytest.mark.parametrize("args", [
    ["--month", "2021-01", "--services", "yellow;DROP TABLE zones"],
    ["--month", "2021-01", "--services", "../../etc"],
    ["--month", "/etc/passwd"],
    ["--month", "2021-01/../../x"],
    ["--month", "2021-01", "--services", "yel\u200blow"],
    ["--month", "2021-01", "--services", "\uff59\uff45\uff4c\uff4c\uff4f\uff57"],  # fullwidth
])
def test_hostile_parameters_touch_nothing(env: Env, args: list[str]) -> None:
    before = sorted(p.name for p in env.tmp.iterdir())
    run = env.command("luigi", "--module", "pipeline", "IngestMonth", "--local-scheduler", *args)
    assert run.returncode == 40, run.stderr
    assert "Traceback" not in run.stderr
    assert sorted(p.name for p in env.tmp.iterdir()) == before


def test_secrets_stay_out_of_logs_and_manifests(env: Env, mirror: ReleaseMirror) -> None:
    base = mirror.base_url.replace("http://", "http://reader:s3cr3t-token@")
    env.configure(source={"base_url": base})
    ok = env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2021-01",
                     "--services", "green", "--local-scheduler")
    missing = env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2030-01",
                          "--services", "green", "--local-scheduler")
    assert (ok.returncode, missing.returncode) == (0, 30)
    for output in (ok.stdout, ok.stderr, missing.stdout, missing.stderr):
        assert "s3cr3t-token" not in output
    assert "is not published at http://127.0.0.1:" in missing.stderr
    for manifest in env.lake.rglob("_manifest.json"):
        assert "s3cr3t-token" not in manifest.read_text()


def test_luigid_listens_on_loopback_only(luigid: Luigid) -> None:
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) == luigid.port:  # 0A: LISTEN
                listening.append(address)
    assert listening and all(a in ("0100007F", "00000000000000000000000001000000")
                             for a in listening), listening


def test_postgres_stopped_during_a_load(env: Env, postgres_db: Database,
                                        postgres_cluster: Cluster, release: Release) -> None:
    big = date(2020, 7, 1)
    facts = samples.write_month(release.root / "green" / "green_tripdata_2020-07.csv.gz",
                                "green", big, 400_000)
    env.configure(postgres={"url": postgres_db.url}, pipeline={"sinks": "postgres"},
                  scheduler={"retry_delay": "1"})
    assert env.build(ParquetizeMonth(service="green", month=big)).scheduling_succeeded
    run = subprocess.Popen(
        [str(BIN / "luigi"), "--module", "pipeline", "IngestMonth", "--month", "2020-07",
         "--services", "green", "--local-scheduler"],
        cwd=env.tmp, env=env.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    copying = "SELECT tuples_processed FROM pg_stat_progress_copy"
    wait_until(lambda: (rows := postgres_db.query(copying)) and rows[0][0] >= 10_000, 60,
               "a COPY under way to interrupt", process=run, interval=0.01)
    postgres_cluster.restart("fast")
    _, errors = run.communicate(timeout=300)
    # The scheduler retried the load once the server was back: the month landed in this run.
    assert run.returncode == 0, errors[-2000:]
    assert "Traceback" not in errors and postgres_cluster.password not in errors
    assert postgres_db.query("SELECT count(*) FROM green_tripdata WHERE source_month = %s",
                             [big]) == [(facts.rows,)]
