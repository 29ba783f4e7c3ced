"""A refresh killed at any moment (issue 12): ``taxi-pipeline refresh`` of a re-published
month is SIGKILLed while a chosen stage runs (the re-fetch, the conversion, a load); every
place then holds the old month or the new one, never a mix or a damaged file that
``complete()`` accepts, and the next refresh finishes the month exactly."""

from __future__ import annotations

import random
import signal
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline.core.manifest import read_source_identity
from pipeline.demo import samples
from pipeline.tasks.download import DownloadMonth
from pipeline.tasks.flows import IngestMonth
from pipeline.tasks.load import LoadDuckDB, LoadPostgres
from pipeline.tasks.parquetize import ParquetizeMonth
from tests import tlc_samples
from tests.conftest import BIN, Env
from tests.fixtures_postgres import Database
from tests.mirror import Fault, ReleaseMirror
from tests.reliability.test_kill_trials import kill_in_stage

ERA = next(e for e in tlc_samples.ERAS if e.key == "green-2026-06")
JUNE = date(2026, 6, 1)
NAME = "green_tripdata_2026-06.parquet"
OLD_ROWS, NEW_ROWS = 20_000, 26_000
STAGES = ("RefetchMonth", "ParquetizeMonth", "LoadDuckDB", "LoadPostgres")


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """The month as first published and as re-published (other rows, new bytes)."""
    root = tmp_path_factory.mktemp("versions")
    for rows, seed in ((OLD_ROWS, 1), (NEW_ROWS, 2)):
        tlc_samples.write_era_month(root / f"{rows}.parquet", ERA, rows, seed=seed)
    return (root / f"{OLD_ROWS}.parquet").read_bytes(), (root / f"{NEW_ROWS}.parquet").read_bytes()


@pytest.fixture
def upstream(tmp_path: Path, versions: tuple[bytes, bytes]) -> Iterator[ReleaseMirror]:
    samples.write_zones(tmp_path / "release" / "misc" / "taxi_zone_lookup.csv")
    (tmp_path / "tlc").mkdir()
    (tmp_path / "tlc" / NAME).write_bytes(versions[0])
    with ReleaseMirror(tmp_path / "release", tlc_root=tmp_path / "tlc") as server:
        yield server


def counts(env: Env, pg: Database) -> dict[str, int]:
    sql = "SELECT count(*) FROM green_tripdata WHERE source_month = {}"
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        found = {"duckdb": con.execute(sql.format("?"), [JUNE]).fetchone()[0]}
    found["postgres"] = pg.query(sql.format("%s"), [JUNE])[0][0]
    return found


def check_after_kill(env: Env, pg: Database, versions: tuple[bytes, bytes],
                     etags: dict[bytes, str]) -> None:
    download = DownloadMonth(service="green", month=JUNE)
    raw = Path(download.output().path).read_bytes()
    assert raw in versions, "the raw file is neither version"
    record = read_source_identity(Path(download.source_record.path))
    if record is not None and record.length == len(raw):
        assert record.etag == etags[raw], "the source record names the other version"
    parquet = ParquetizeMonth(service="green", month=JUNE)
    if parquet.complete():
        manifest = parquet.output().valid()
        rows = OLD_ROWS if raw == versions[0] else NEW_ROWS
        assert manifest.rows == rows and manifest.source_etag == etags[raw]
        assert pq.read_metadata(parquet.output().parquet.path).num_rows == rows
    for sink, rows in counts(env, pg).items():
        assert rows in (OLD_ROWS, NEW_ROWS), f"{sink} holds {rows} rows: a mix"
    for sink, load in (("duckdb", LoadDuckDB(service="green", month=JUNE)),
                       ("postgres", LoadPostgres(service="green", month=JUNE))):
        if load.complete():
            manifest = parquet.output().read()
            assert manifest is not None and counts(env, pg)[sink] == manifest.rows


# One trial per stage by default; `make reliability` runs more, at other moments.
SEEDS = [*range(len(STAGES)),
         *(pytest.param(seed, marks=pytest.mark.slow) for seed in range(len(STAGES), 16))]


@pytest.mark.kill_trial
@pytest.mark.parametrize("seed", SEEDS)
def test_a_refresh_killed_in_any_stage_leaves_one_version_and_finishes(
        seed: int, env: Env, upstream: ReleaseMirror, postgres_db: Database,
        versions: tuple[bytes, bytes], record_property: object) -> None:
    env.configure(source={"kind": "parquet", "parquet_base_url": upstream.parquet_base_url,
                          "zones_url": upstream.zones_url},
                  postgres={"url": postgres_db.url},
                  pipeline={"services": "green", "sinks": "duckdb,postgres"})
    assert env.build(IngestMonth(month=JUNE)).status == LuigiStatusCode.SUCCESS
    file = upstream.tlc_root / NAME
    old_etag = upstream.etag(file)
    upstream.republish(file, versions[1])
    etags = {versions[0]: old_etag, versions[1]: upstream.etag(file)}
    stage = STAGES[seed % len(STAGES)]
    if stage == "RefetchMonth":
        # The refresh's HEAD takes the first, the download the second: slowed, it can be hit.
        upstream.inject(NAME, Fault("throttle", rate=300_000), Fault("throttle", rate=300_000))
    rng = random.Random(seed)
    log = env.tmp / "refresh.log"
    command = [str(BIN / "taxi-pipeline"), "refresh", "--start", "2026-06", "--end", "2026-06",
               "--local-scheduler", "--workers", "2", "--verbose"]  # luigi's "running" lines
    with open(log, "wb") as err:
        run = subprocess.Popen(command, cwd=env.tmp, env=env.env(), stdout=subprocess.DEVNULL,
                               stderr=err, start_new_session=True)
        running = kill_in_stage(run, log, stage, rng)
    assert run.returncode == -signal.SIGKILL
    record_property("kill_stage", "+".join(running) or "between tasks")  # type: ignore[operator]
    check_after_kill(env, postgres_db, versions, etags)

    again = env.command("taxi-pipeline", *command[1:])
    assert again.returncode == 0, again.stderr[-3000:]
    assert counts(env, postgres_db) == {"duckdb": NEW_ROWS, "postgres": NEW_ROWS}
    assert Path(DownloadMonth(service="green", month=JUNE).output().path).read_bytes() == \
        versions[1]
    status = env.command("taxi-pipeline", "status", "--check-source", "--start", "2026-06",
                         "--end", "2026-06")
    assert status.returncode == 0, status.stdout
