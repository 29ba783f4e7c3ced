"""A month that is not whole never looks complete (issue 26, Builds 2 and 3): a lake month
damaged after its load (Parquet truncated, replaced by another month's, changed in place;
a raw file swapped) is named by ``status`` with a command that repairs it, and that command
repairs it: real jobs (``taxi-pipeline`` commands) against the test mirror and DuckDB,
asserting exit codes, the state words, the lake's bytes and the exact rows after."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipeline.core.checksums import file_sha256
from tests.conftest import Env, Release, configured_env, release_mirror
from tests.mirror import ReleaseMirror

KEY = "2021-01"
STEM = f"yellow_tripdata_{KEY}"


def ingest(env: Env, *more: str) -> subprocess.CompletedProcess[str]:
    return env.command("taxi-pipeline", "ingest", "--month", KEY, "--services", "yellow",
                       "--local-scheduler", *more)


def backfill(env: Env) -> subprocess.CompletedProcess[str]:
    return env.command("taxi-pipeline", "backfill", "--start", KEY, "--end", KEY,
                       "--services", "yellow", "--local-scheduler")


def status(env: Env, *more: str) -> tuple[int, str, str]:
    """``status``'s exit code, what exactly it found (its ``detail``: the state's word
    alone when complete) and its stderr."""
    run = env.command("taxi-pipeline", "status", "--start", KEY, "--end", KEY, "--services",
                      "yellow", "--no-source-check", "--format", "json", *more)
    assert run.returncode in (0, 1), run.stderr[-2000:]
    (record,) = json.loads(run.stdout)
    assert (record["state"] == "complete") == (run.returncode == 0), record
    return run.returncode, record["detail"], run.stderr


def parquet(env: Env, key: str = KEY) -> Path:
    y, m = key.split("-")
    return env.lake / "parquet" / "yellow" / f"year={y}" / f"month={m}" / \
        f"yellow_tripdata_{key}.parquet"


def raw(env: Env, key: str = KEY) -> Path:
    return env.lake / "raw" / "yellow" / f"yellow_tripdata_{key}.csv.gz"


def manifest(env: Env) -> dict:
    return json.loads((parquet(env).parent / "_manifest.json").read_text())


def rows_loaded(env: Env) -> int:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM yellow_tripdata WHERE source_month = ?",
                           [f"{KEY}-01"]).fetchone()[0]


def whole(env: Env, release: Release) -> None:
    """The month as a complete run leaves it: every check of it holds."""
    assert file_sha256(parquet(env))[1] == manifest(env)["parquet_sha256"]
    assert raw(env).read_bytes() == (release.root / "yellow" / f"{STEM}.csv.gz").read_bytes()
    assert pq.read_metadata(parquet(env)).num_rows == release.of("yellow", KEY).rows
    assert rows_loaded(env) == release.of("yellow", KEY).rows
    code, state, _ = status(env, "--verify")
    assert (code, state) == (0, "complete")


# One mirror for the module: the lake loaded once below names it in its source records.
mirror = release_mirror(scope="module")


@pytest.fixture(scope="module")
def loaded_once(tmp_path_factory: pytest.TempPathFactory, mirror: ReleaseMirror,
                release: Release) -> Iterator[Env]:
    """Both months backfilled and whole, once for the module: each test damages a copy."""
    with configured_env(tmp_path_factory.mktemp("loaded"), mirror) as env:
        first = env.command("taxi-pipeline", "backfill", "--start", "2020-12", "--end", KEY,
                            "--services", "yellow", "--local-scheduler")
        assert first.returncode == 0, first.stderr[-3000:]
        whole(env, release)
        yield env


@pytest.fixture
def loaded(env: Env, loaded_once: Env) -> Env:
    """This test's own copy of the loaded lake and warehouse (bytes and times as they were
    left), so that every test starts from the same state whatever ran before it."""
    shutil.copytree(loaded_once.lake, env.lake)
    shutil.copy2(loaded_once.duckdb_path, env.duckdb_path)
    assert env.lake_files() == loaded_once.lake_files()
    return env


def flip_in_footer(path: Path) -> None:
    """Change one byte of the writer's name in the footer: same size, same rows and schema,
    a file every reader takes; only its sha256 differs."""
    data = bytearray(path.read_bytes())
    at = data.rindex(b"parquet-cpp-arrow")
    data[at] = ord("P")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("job", [ingest, backfill])
@pytest.mark.parametrize("damage", ["truncated", "replaced"])
def test_a_damaged_parquet_is_named_by_status_and_repaired_by_the_job(
        loaded: Env, release: Release, job, damage: str) -> None:
    target = parquet(loaded)
    if damage == "truncated":
        with open(target, "r+b") as f:
            f.truncate(target.stat().st_size // 2)
    else:
        shutil.copyfile(parquet(loaded, "2020-12"), target)
    code, state, _ = status(loaded)
    assert code == 1
    assert state.startswith("parquet missing (run ingest: it converts the month again)")
    run = job(loaded)
    assert run.returncode == 0, run.stderr[-3000:]
    whole(loaded, release)


def test_a_raw_file_swapped_for_another_months_is_fetched_again(
        loaded: Env, release: Release, mirror) -> None:
    shutil.copyfile(raw(loaded, "2020-12"), raw(loaded))
    code, state, _ = status(loaded)
    assert code == 1
    assert "raw file is not the one its source record describes (run ingest: it downloads " \
           "the month again)" in state
    gets = len(mirror.requests_for(f"{STEM}.csv.gz", "GET"))
    run = ingest(loaded)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(mirror.requests_for(f"{STEM}.csv.gz", "GET")) == gets + 1
    whole(loaded, release)


def test_a_parquet_changed_in_place_is_never_loaded_but_converted_again(
        loaded: Env, release: Release) -> None:
    flip_in_footer(parquet(loaded))
    # The cheap check cannot see it (size, footer, rows hold); --verify reads it and does.
    assert status(loaded)[:2] == (0, "complete")
    code, state, said = status(loaded, "--verify")
    assert code == 1
    assert state.startswith("parquet differs from its manifest's sha256 (remove ")
    assert "status --verify: read " in said and "in full" in said
    # The load must read it: a new warehouse.
    loaded.duckdb_path.unlink()
    run = ingest(loaded)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "is not the file the manifest describes; converting the month again" in run.stderr
    whole(loaded, release)


def test_the_advice_of_status_verify_repairs_a_changed_parquet(
        loaded: Env, release: Release) -> None:
    flip_in_footer(parquet(loaded))
    _, state, _ = status(loaded, "--verify")
    to_remove = Path(state.split("(remove ", 1)[1].split(" and run ingest", 1)[0])
    to_remove.unlink()
    run = ingest(loaded)
    assert run.returncode == 0, run.stderr[-3000:]
    whole(loaded, release)


def test_a_parquet_and_raw_file_both_changed_fail_naming_both_and_what_to_do(
        loaded: Env, release: Release) -> None:
    flip_in_footer(parquet(loaded))
    data = bytearray(raw(loaded).read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, same record: only its sha256 tells
    raw(loaded).write_bytes(bytes(data))
    loaded.duckdb_path.unlink()
    failed = ingest(loaded)
    assert failed.returncode == 30, failed.stderr[-3000:]
    line = next(x for x in failed.stderr.splitlines() if "is not the one the manifest" in x)
    assert str(parquet(loaded)) in line and str(raw(loaded)) in line
    assert f"remove {raw(loaded)} and run `taxi-pipeline ingest --month {KEY} --services " \
           "yellow`" in line
    assert not loaded.duckdb_path.exists() or _no_rows(loaded)
    raw(loaded).unlink()  # what the line says to do
    run = ingest(loaded)
    assert run.returncode == 0, run.stderr[-3000:]
    whole(loaded, release)


def _no_rows(env: Env) -> bool:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        tables = {t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
        return "yellow_tripdata" not in tables or con.execute(
            "SELECT count(*) FROM yellow_tripdata").fetchone()[0] == 0


def test_status_verify_finds_a_changed_raw_file_and_its_advice_fetches_it_again(
        loaded: Env, release: Release) -> None:
    data = bytearray(raw(loaded).read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, same record: only its sha256 tells
    raw(loaded).write_bytes(bytes(data))
    assert status(loaded)[:2] == (0, "complete")  # the cheap check reads no whole file
    code, state, _ = status(loaded, "--verify")
    assert code == 1
    assert state.startswith(f"raw file differs from the one the parquet was made from "
                            f"(remove {raw(loaded)} and run `luigi ")
    command = state.split("`")[1].split()
    raw(loaded).unlink()
    run = loaded.command(*command)
    assert run.returncode == 0, run.stderr[-3000:]
    whole(loaded, release)
