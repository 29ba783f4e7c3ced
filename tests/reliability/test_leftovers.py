"""A killed run's temporary files do not stay (issue 26, Build 7's leftovers): a real
SIGKILL of the task process while it writes (the mirror throttled so the kill lands mid-
download, checked: the temporary was growing and is left partial), then the next run of the
month removes what the killed one left in the lake and in scratch, and lands the month
exactly."""

from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb
import pytest

from pipeline.lake.local import hidden_tmp, sweep_leftovers
from pipeline.lake.scratch import Scratch
from tests.conftest import Env, Release
from tests.mirror import Fault, ReleaseMirror
from tests.reliability.test_kill import kill_when, start_ingest, temporaries

pytestmark = pytest.mark.kill_trial

NAME = "yellow_tripdata_2021-01.csv.gz"


def every_temporary(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".*.tmp")) if root.exists() else []


def growing(directory: Path, seen: dict[Path, int]) -> bool:
    """True once a temporary in ``directory`` has grown since the last look: a write is in
    progress right now."""
    for path in temporaries(directory, 50_000):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        if path in seen and seen[path] < size:
            return True
        seen[path] = size
    return False


def test_the_next_run_removes_what_a_killed_download_left(env: Env, mirror: ReleaseMirror,
                                                          release: Release) -> None:
    scratch = env.tmp / "scratch"
    env.configure(lake={"scratch": str(scratch)})
    whole = (release.root / "yellow" / NAME).read_bytes()
    # About 8 s for the month: the kill lands while the download writes.
    mirror.inject(NAME, Fault("throttle", rate=100_000))
    run = start_ingest(env, "2021-01")
    raw_dir = env.lake / "raw" / "yellow"
    seen: dict[Path, int] = {}
    kill_when(run, lambda: growing(raw_dir, seen))
    left = every_temporary(env.lake)
    downloads = [p for p in left if p.parent == raw_dir]
    assert downloads, "the kill left no temporary: it did not land mid-write"
    assert all(0 < p.stat().st_size < len(whole) for p in downloads)  # cut short
    # The conversion while downloading stages its Parquet beside the month's key: left too.
    month_dir = env.lake / "parquet" / "yellow" / "year=2021" / "month=01"
    assert all(p.parent == month_dir for p in left if p not in downloads)
    assert not (raw_dir / NAME).exists()
    staged_before = Scratch(scratch).staged()

    again = env.command("taxi-pipeline", "ingest", "--month", "2021-01", "--services",
                        "yellow", "--local-scheduler")
    assert again.returncode == 0, again.stderr[-3000:]
    assert every_temporary(env.lake) == []
    assert Scratch(scratch).staged() == []
    assert not any(p.exists() for p in staged_before)
    assert (raw_dir / NAME).read_bytes() == whole
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM yellow_tripdata").fetchone()[0] == \
            release.of("yellow", "2021-01").rows


def test_a_running_write_is_left_alone_and_a_stale_one_is_not(tmp_path: Path) -> None:
    final = tmp_path / "month.parquet"
    mine = hidden_tmp(final)  # this process runs: its write is in progress
    mine.write_bytes(b"x")
    dead = final.with_name(mine.name.replace(f"-{os.getpid()}-", "-999999999-"))
    dead.write_bytes(b"x")
    elsewhere = final.with_name(f".{final.name}.otherhost-12-0123456789ab.tmp")
    elsewhere.write_bytes(b"x")
    stale = final.with_name(f".{final.name}.0123456789ab.tmp")  # an older version's name
    stale.write_bytes(b"x")
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    assert sorted(sweep_leftovers(tmp_path)) == sorted([dead, stale])
    assert mine.exists() and elsewhere.exists()  # another host's, written to recently
