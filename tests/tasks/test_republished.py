"""A month TLC re-publishes (new bytes, a new ETag) is found and replaced end to end
(issue 12): ``status --check-source`` marks it, ``refresh`` fetches exactly it again and
replaces the raw file, the Parquet and its manifest, then its rows in every sink (DuckDB,
PostgreSQL, the GCS bucket, BigQuery), leaving the unchanged month untouched; a second
refresh does nothing. Real servers throughout: a local TLC-like host, PostgreSQL,
fake-gcs-server and the BigQuery emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline.core.manifest import read_source_identity
from pipeline.demo import samples
from pipeline.tasks.download import DownloadMonth
from pipeline.tasks.parquetize import ParquetizeMonth
from tests import tlc_samples
from tests.conftest import Env
from tests.fixtures_cloud import Cloud
from tests.fixtures_postgres import Database
from tests.mirror import ReleaseMirror

ERA = next(e for e in tlc_samples.ERAS if e.key == "green-2026-06")
MAY, JUNE = date(2026, 5, 1), date(2026, 6, 1)
OLD_ROWS, NEW_ROWS = 1_000, 1_300


def name(month: date) -> str:
    return f"green_tripdata_{month:%Y-%m}.parquet"


@dataclass
class Upstream:
    server: ReleaseMirror
    root: Path

    def file(self, month: date) -> Path:
        return self.root / name(month)

    def gets(self, month: date) -> int:
        return len(self.server.requests_for(name(month), "GET"))


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    release, root = tmp_path / "release", tmp_path / "tlc"
    samples.write_zones(release / "misc" / "taxi_zone_lookup.csv")
    for month, seed in ((MAY, 5), (JUNE, 6)):
        tlc_samples.write_era_month(root / name(month), ERA, OLD_ROWS, seed=seed)
    with ReleaseMirror(release, tlc_root=root) as server:
        yield Upstream(server, root)


@pytest.fixture
def every_sink(env: Env, upstream: Upstream, cloud: Cloud, postgres_db: Database) -> Env:
    env.configure(
        source={"kind": "parquet", "parquet_base_url": upstream.server.parquet_base_url,
                "zones_url": upstream.server.zones_url},
        postgres={"url": postgres_db.url},
        pipeline={"services": "green", "sinks": "duckdb,postgres,gcs,bigquery"},
        scheduler={"retry_count": "1"})
    return env


def in_bigquery(cloud: Cloud, sql: str, table: str, month: date) -> str:
    """``sql`` for BigQuery: the table's full name, the month as a literal."""
    return sql.replace(table, f"`{cloud.table(table)}`").format(f"DATE '{month:%Y-%m-%d}'")


def rows_everywhere(env: Env, cloud: Cloud, pg: Database, month: date) -> dict[str, tuple]:
    """(rows, sum of total_amount in cents) of the month in each warehouse."""
    sql = ("SELECT count(*), CAST(round(sum(total_amount) * 100) AS BIGINT) FROM green_tripdata "
           "WHERE source_month = {}")
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        found = {"duckdb": con.execute(sql.format("?"), [month]).fetchone()}
    found["postgres"] = pg.query(sql.format("%s"), [month])[0]
    found["bigquery"] = cloud.query(in_bigquery(cloud, sql, "green_tripdata", month))[0]
    return {sink: tuple(int(v) for v in values) for sink, values in found.items()}


def load_logs(env: Env, cloud: Cloud, pg: Database, month: date) -> dict[str, list[tuple]]:
    """Each warehouse's load-log rows of the month (checksum, load time)."""
    sql = ("SELECT checksum, loaded_at FROM pipeline_loads WHERE table_name = 'green_tripdata' "
           "AND source_month = {}")
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        logs = {"duckdb": con.execute(sql.format("?"), [month]).fetchall()}
    logs["postgres"] = pg.query(sql.format("%s"), [month])
    logs["bigquery"] = cloud.query(in_bigquery(cloud, sql, "pipeline_loads", month))
    return logs


def expected(table_rows: int, source: Path) -> tuple[int, int]:
    total = pc.sum(pq.read_table(source).column("total_amount")).as_py()
    return table_rows, round(total * 100)


def status(env: Env) -> tuple[int, dict[str, dict]]:
    run = env.command("taxi-pipeline", "status", "--check-source", "--start", "2026-05",
                      "--end", "2026-06", "--format", "json")
    return run.returncode, {r["month"]: r for r in json.loads(run.stdout)}


def test_a_republished_month_is_replaced_end_to_end_in_every_sink(
        every_sink: Env, upstream: Upstream, cloud: Cloud, postgres_db: Database) -> None:
    env = every_sink
    first = env.command("taxi-pipeline", "backfill", "--start", "2026-05", "--end", "2026-06",
                        "--local-scheduler")
    assert first.returncode == 0, first.stderr[-3000:]
    old_june = expected(OLD_ROWS, upstream.file(JUNE))
    may_manifest = ParquetizeMonth(service="green", month=MAY).output()
    may_before = (Path(may_manifest.path).read_bytes(), load_logs(env, cloud, postgres_db, MAY),
                  cloud.storage.bucket(cloud.bucket).get_blob(
                      f"{cloud.prefix}/parquet/green/year=2026/month=05/_manifest.json").generation)
    old_etag = ParquetizeMonth(service="green", month=JUNE).output().read().source_etag
    assert old_etag == upstream.server.etag(upstream.file(JUNE))
    code, records = status(env)
    assert code == 0 and {r["source"] for r in records.values()} == {"unchanged upstream"}

    # TLC re-writes June: other rows, new bytes, a new ETag.
    new = tlc_samples.era_month(ERA, NEW_ROWS, seed=66).source
    pq.write_table(new, env.tmp / "new.parquet", compression="zstd")
    upstream.server.republish(upstream.file(JUNE), (env.tmp / "new.parquet").read_bytes())
    new_etag = upstream.server.etag(upstream.file(JUNE))
    assert new_etag != old_etag

    code, records = status(env)
    assert code == 1
    assert records["2026-06"]["state"] == "re-published upstream"
    assert records["2026-06"]["detail"] == f"re-published upstream (ETag {old_etag} -> {new_etag})"
    assert records["2026-05"]["state"] == "complete"
    # Until the refresh, every sink keeps the month as first published.
    assert rows_everywhere(env, cloud, postgres_db, JUNE) == dict.fromkeys(
        ("duckdb", "postgres", "bigquery"), old_june)

    run = env.command("taxi-pipeline", "refresh", "--start", "2026-05", "--end", "2026-06",
                      "--local-scheduler")
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"refresh: green 2026-06 re-published upstream (ETag {old_etag} -> {new_etag})" \
        in run.stderr
    assert "refresh: 1 of the 2 months the lake holds were re-published upstream" in run.stderr
    # June fetched once more, end to end: raw file, its record, Parquet and manifest, sinks.
    assert (upstream.gets(MAY), upstream.gets(JUNE)) == (1, 2)
    raw = DownloadMonth(service="green", month=JUNE)
    assert Path(raw.output().path).read_bytes() == upstream.file(JUNE).read_bytes()
    assert read_source_identity(Path(raw.source_record.path)).etag == new_etag
    june = ParquetizeMonth(service="green", month=JUNE)
    manifest = june.output().valid()
    assert june.complete() and manifest.rows == NEW_ROWS and manifest.source_etag == new_etag
    assert pq.read_table(june.output().parquet.path).num_rows == NEW_ROWS
    assert rows_everywhere(env, cloud, postgres_db, JUNE) == dict.fromkeys(
        ("duckdb", "postgres", "bigquery"), expected(NEW_ROWS, upstream.file(JUNE)))
    published = cloud.storage.bucket(cloud.bucket).get_blob(
        f"{cloud.prefix}/parquet/green/year=2026/month=06/_manifest.json")
    assert json.loads(published.download_as_bytes())["source_etag"] == new_etag
    assert {log[0][0] for log in load_logs(env, cloud, postgres_db, JUNE).values()} == {
        manifest.parquet_sha256}
    # May untouched: its manifest, its load-log rows, its object in the bucket.
    assert (Path(may_manifest.path).read_bytes(), load_logs(env, cloud, postgres_db, MAY),
            cloud.storage.bucket(cloud.bucket).get_blob(
                f"{cloud.prefix}/parquet/green/year=2026/month=05/_manifest.json").generation
            ) == may_before

    # Idempotent: nothing is re-published any more, nothing runs.
    again = env.command("taxi-pipeline", "refresh", "--start", "2026-05", "--end", "2026-06",
                        "--local-scheduler")
    assert again.returncode == 0
    assert "refresh: 0 of the 2 months the lake holds were re-published upstream" in again.stderr
    assert (upstream.gets(MAY), upstream.gets(JUNE)) == (1, 2)
    code, records = status(env)
    assert code == 0 and [r["state"] for r in records.values()] == ["complete", "complete"]
