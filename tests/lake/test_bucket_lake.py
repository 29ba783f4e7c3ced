"""The lake in a bucket (``[lake] root = gs://bucket/prefix``) through real workers, against
fake-gcs-server, PostgreSQL and bqemulator: everything the lake holds is in the bucket, local
disk is only scratch (emptied after every task, also a failed one), and a root the pipeline
cannot use is refused before anything runs — never taken for a local directory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from luigi.execution_summary import LuigiStatusCode

from pipeline import DownloadMonth, IngestMonth, LoadPostgres, ParquetizeMonth
from pipeline.core.errors import SettingsError
from pipeline.lake.root import parse_root
from pipeline.tasks.sinks import parse_sinks
from tests.conftest import Env, Release
from tests.fixtures_cloud import PROJECT_ID, Cloud, CorruptingProxy, FakeGCS
from tests.fixtures_postgres import Database
from tests.lake.test_cloud import Failures, Requests
from tests.mirror import Fault, ReleaseMirror
from tests.tasks.test_month_pipeline import Runs

JAN = date(2021, 1, 1)
PREFIX = "lake"


class Bucket:
    """The test's bucket as the lake's root (``gs://{name}/lake``), seen from outside."""

    def __init__(self, name: str, gcs: FakeGCS) -> None:
        self.name, self.gcs = name, gcs

    @property
    def root(self) -> str:
        return f"gs://{self.name}/{PREFIX}"

    def client(self) -> storage.Client:
        return storage.Client(project=PROJECT_ID, credentials=AnonymousCredentials())

    def objects(self) -> list[str]:
        return sorted(b.name.removeprefix(f"{PREFIX}/")
                      for b in self.client().list_blobs(self.name, prefix=f"{PREFIX}/"))

    def read(self, key: str) -> bytes:
        return self.client().bucket(self.name).blob(f"{PREFIX}/{key}").download_as_bytes()

    def object_file(self, key: str) -> Path:
        return self.gcs.object_file(self.name, f"{PREFIX}/{key}")


@pytest.fixture
def bucket(env: Env, gcs_bucket: str, fake_gcs: FakeGCS) -> Bucket:
    b = Bucket(gcs_bucket, fake_gcs)
    env.configure(lake={"root": b.root, "scratch": str(env.tmp / "scratch")})
    return b


class UploadCorruptingProxy(CorruptingProxy):
    """Flips one byte in the body of every upload request (``PUT /upload/...``), wherever it
    starts on its connection (earlier requests on a kept-alive connection shift it)."""

    BODY_OFFSET = 100

    def _pump(self, src: socket.socket, dst: socket.socket, corrupt: bool) -> None:
        if not corrupt:
            return super()._pump(src, dst, corrupt)
        history, flip_at, searched = bytearray(), set[int](), 0
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                start = len(history)
                history += data
                while (i := history.find(b"PUT /upload/", searched)) >= 0:
                    end = history.find(b"\r\n\r\n", i)
                    if end < 0:
                        break
                    flip_at.add(end + 4 + self.BODY_OFFSET)
                    searched = end + 4
                out = bytearray(data)
                for position in sorted(p for p in flip_at if start <= p < start + len(data)):
                    out[position - start] ^= 0xFF
                    flip_at.discard(position)
                    self.flipped += 1
                dst.sendall(out)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        return None


@pytest.fixture
def corrupting_proxy_for_bucket(fake_gcs: FakeGCS) -> Iterator[CorruptingProxy]:
    proxy = UploadCorruptingProxy(fake_gcs.port)
    yield proxy
    proxy.close()


def scratch_files(env: Env) -> list[Path]:
    """Every file in scratch, at any depth."""
    scratch = env.tmp / "scratch"
    return sorted(p for p in scratch.rglob("*") if p.is_file()) if scratch.exists() else []


def month_keys(service: str) -> list[str]:
    stem = f"{service}_tripdata_2021-01"
    return [f"parquet/{service}/year=2021/month=01/_manifest.json",
            f"parquet/{service}/year=2021/month=01/{stem}.parquet",
            f"raw/{service}/{stem}.csv.gz", f"raw/{service}/{stem}.csv.gz.source.json"]


def test_a_month_lives_in_the_bucket_and_loads_from_it_without_a_shared_disk(
        env: Env, bucket: Bucket, release: Release, postgres_db: Database) -> None:
    env.configure(postgres={"url": postgres_db.url},
                  pipeline={"sinks": "duckdb,postgres"})
    result = env.build(IngestMonth(month=JAN, services=("yellow", "green")), workers=2)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    assert bucket.objects() == sorted([*month_keys("green"), *month_keys("yellow"),
                                    "raw/zones/taxi_zone_lookup.csv"])
    for service in ("yellow", "green"):
        facts = release.of(service, "2021-01")
        manifest = json.loads(bucket.read(month_keys(service)[0]))
        assert manifest["rows"] == facts.rows
        raw = bucket.read(month_keys(service)[2])
        assert raw == (release.root / service / f"{service}_tripdata_2021-01.csv.gz").read_bytes()
        assert manifest["source_bytes"] == len(raw)
        parquet = bucket.object_file(month_keys(service)[1])
        assert pq.read_metadata(parquet).num_rows == facts.rows
        with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
            assert con.execute(f"SELECT count(*) FROM {service}_tripdata").fetchall() == [
                (facts.rows,)]
        assert postgres_db.query(f"SELECT count(*) FROM {service}_tripdata") == [(facts.rows,)]
    # Nothing of the lake on local disk: no lake directory, scratch emptied by every task.
    assert not (env.tmp / "data").exists() and not (env.tmp / "gs:").exists()
    assert scratch_files(env) == []
    # A re-run finds everything complete from the bucket and runs nothing.
    with Runs() as runs:
        again = env.build(IngestMonth(month=JAN, services=("yellow", "green")))
    assert again.status == LuigiStatusCode.SUCCESS
    assert runs.started == []

    # `taxi-pipeline status` reads the months from the bucket.
    status = env.command("taxi-pipeline", "status", "--format", "json", "--no-source-check",
                         "--services", "yellow,green")
    assert status.returncode == 0, status.stderr[-2000:]
    records = {(r["service"], r["month"]): r for r in json.loads(status.stdout)}
    assert set(records) == {("yellow", "2021-01"), ("green", "2021-01")}
    for (service, _), record in records.items():
        assert record["raw_bytes"] == len(bucket.read(month_keys(service)[2]))
        assert record["parquet_rows"] == release.of(service, "2021-01").rows
        assert record["state"] == "complete"


def test_a_configured_gs_root_never_becomes_a_local_directory(env: Env, bucket: Bucket) -> None:
    """Before the lake could live in a bucket, `gs://...` silently became ./gs:/..."""
    run = env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2021-01",
                      "--services", "yellow", "--local-scheduler")
    assert run.returncode == 0, run.stderr[-2000:]
    assert not (env.tmp / "gs:").exists()
    assert [p.name for p in env.tmp.iterdir() if p.is_dir() and p.name != "scratch"] == []
    assert "raw/yellow/yellow_tripdata_2021-01.csv.gz" in bucket.objects()


@pytest.mark.parametrize(("root", "message"), [
    ("s3://my-bucket/nyc", "[lake] root 's3://my-bucket/nyc' is not a local directory or "
                           "gs://bucket/prefix: scheme 's3' is not supported"),
    ("http://example.org/lake", "scheme 'http' is not supported"),
    ("file:///tmp/lake", "scheme 'file' is not supported"),
    ("gs://", "[lake] root 'gs://' names no bucket: write gs://bucket/prefix"),
    ("gs:///nyc", "names no bucket"),
    ("gs:my-bucket/nyc", "is not a local directory or gs://bucket/prefix: write gs://bucket"),
    ("gs://My_Bucket!/nyc", "'My_Bucket!' is not a GCS bucket name"),
    ("gs://my-bucket/a/../b", "the prefix has an empty, '.' or '..' folder"),
])
def test_a_root_the_lake_cannot_use_is_refused_before_anything_runs(
        env: Env, root: str, message: str) -> None:
    for command in (["luigi", "--module", "pipeline", "IngestMonth", "--month", "2021-01",
                     "--local-scheduler", "--lake-root", root],
                    ["luigi", "--module", "pipeline", "DownloadMonth", "--service", "yellow",
                     "--month", "2021-01", "--local-scheduler", "--lake-root", root],
                    ["luigi", "--module", "pipeline", "Backfill", "--start", "2021-01",
                     "--end", "2021-02", "--local-scheduler", "--lake-root", root]):
        run = env.command(*command)
        assert run.returncode == 40, run.stderr[-2000:]
        assert "Traceback" not in run.stderr
        assert sum(message in line for line in run.stderr.splitlines()) == 1, run.stderr
    # Nothing was written anywhere: no lake, no directory named after the URL.
    assert sorted(p.name for p in env.tmp.iterdir()) == ["luigi.cfg"]


def test_root_urls_are_normalised(tmp_path: Path) -> None:
    assert parse_root("gs://my-bucket").url == "gs://my-bucket"
    assert parse_root(" gs://my-bucket/nyc/tlc/ ").url == "gs://my-bucket/nyc/tlc"
    assert parse_root("gs://my-bucket/nyc").bucket == "my-bucket"
    local = parse_root("data/lake")
    assert not local.in_bucket and local.url == str(Path("data/lake").absolute())
    assert parse_root("./odd:name").url.endswith("/odd:name")
    with pytest.raises(SettingsError, match=r"\[lake\] root is empty"):
        parse_root("  ")


def test_bigquery_loads_from_the_lakes_own_objects(env: Env, cloud: Cloud,
                                                   release: Release) -> None:
    env.configure(lake={"root": f"gs://{cloud.bucket}/{PREFIX}",
                        "scratch": str(env.tmp / "scratch")},
                  gcs={"bucket": ""}, pipeline={"sinks": "bigquery"})
    result = env.build(IngestMonth(month=JAN, services=("yellow",)))
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    rows = release.of("yellow", "2021-01").rows
    assert cloud.query(f"SELECT source_month, count(*) FROM "
                       f"`{cloud.table('yellow_tripdata')}` GROUP BY 1") == [(JAN, rows)]
    # No copy was made: the only objects are the lake's.
    names = [b.name for b in cloud.storage.list_blobs(cloud.bucket)]
    assert names and all(name.startswith(f"{PREFIX}/") for name in names)
    assert scratch_files(env) == []


def test_the_gcs_sink_is_refused_where_it_would_copy_nothing_or_onto_itself(
        env: Env, bucket: Bucket) -> None:
    env.configure(gcs={"bucket": ""})
    with pytest.raises(SettingsError, match="this lake is already in gs://"):
        parse_sinks("gcs")
    env.configure(gcs={"bucket": bucket.name, "prefix": PREFIX})
    with pytest.raises(SettingsError, match="inside itself"):
        parse_sinks("gcs")
    env.configure(gcs={"bucket": bucket.name, "prefix": "copy"})
    assert parse_sinks("gcs") == ("gcs",)


@pytest.mark.fault_case
def test_a_failed_download_leaves_nothing_in_the_bucket_or_in_scratch(
        env: Env, bucket: Bucket, mirror: ReleaseMirror) -> None:
    env.configure(source={"retries": "1"}, scheduler={"retry_count": "1"})
    mirror.inject("yellow_tripdata_2021-01.csv.gz", Fault("truncate", at=150_000))
    result = env.build(DownloadMonth(service="yellow", month=JAN))
    assert result.status == LuigiStatusCode.FAILED
    assert bucket.objects() == []
    assert scratch_files(env) == []


@pytest.mark.fault_case
@pytest.mark.parametrize("convert_while_downloading", ["false", "true"])
def test_an_upload_damaged_in_transit_publishes_nothing_and_empties_scratch(
        env: Env, bucket: Bucket, corrupting_proxy_for_bucket: CorruptingProxy,
        monkeypatch: pytest.MonkeyPatch, convert_while_downloading: str) -> None:
    """Off, ParquetizeMonth converts and uploads the Parquet; on, the download uploaded it
    and ParquetizeMonth uploads only the manifest: either upload damaged, no manifest."""
    env.configure(pipeline={"convert_while_downloading": convert_while_downloading})
    assert env.build(DownloadMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", corrupting_proxy_for_bucket.url)
    env.configure(scheduler={"retry_count": "1"})
    with Failures() as failures:
        result = env.build(ParquetizeMonth(service="yellow", month=JAN))
    assert result.status == LuigiStatusCode.FAILED
    assert corrupting_proxy_for_bucket.flipped >= 1
    assert "ChecksumMismatch" in failures.text
    # The raw file is untouched; no manifest (nor a Parquet object, unless the download's).
    downloaded = ["parquet/yellow/year=2021/month=01/yellow_tripdata_2021-01.parquet"] \
        if convert_while_downloading == "true" else []
    assert bucket.objects() == [*downloaded, "raw/yellow/yellow_tripdata_2021-01.csv.gz",
                                "raw/yellow/yellow_tripdata_2021-01.csv.gz.source.json"]
    assert not ParquetizeMonth(service="yellow", month=JAN).complete()
    assert scratch_files(env) == []


@pytest.mark.fault_case
def test_a_month_damaged_in_the_bucket_is_not_loaded(env: Env, bucket: Bucket,
                                                     postgres_db: Database,
                                                     release: Release) -> None:
    env.configure(postgres={"url": postgres_db.url}, pipeline={"sinks": "postgres"},
                  scheduler={"retry_count": "1"})
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    damaged = bucket.object_file(month_keys("yellow")[1])
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, same footer: only checksums can tell
    damaged.write_bytes(bytes(data))
    # The damaged file is never loaded: the month is converted again from its raw file
    # (issue 26), then loaded, all in the one run.
    assert env.build(LoadPostgres(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    manifest = ParquetizeMonth(service="yellow", month=JAN).output().read()
    assert manifest is not None
    assert hashlib.sha256(bucket.object_file(month_keys("yellow")[1]).read_bytes()
                          ).hexdigest() == manifest.parquet_sha256
    assert postgres_db.query("SELECT count(*) FROM yellow_tripdata") == \
        [(release.of("yellow", "2021-01").rows,)]
    assert scratch_files(env) == []


def test_checking_a_backfill_of_a_bucket_lake_costs_one_listing_per_folder(
        env: Env, bucket: Bucket) -> None:
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    months = [date(2019 + i // 12, i % 12 + 1, 1) for i in range(36)]
    tasks = [task(service=s, month=m) for task in (DownloadMonth, ParquetizeMonth)
             for s in ("yellow", "green", "fhv") for m in months]
    with Requests() as sent:
        complete = {t.task_id for t in tasks if t.complete()}
    assert complete == {DownloadMonth(service="yellow", month=JAN).task_id,
                        ParquetizeMonth(service="yellow", month=JAN).task_id}
    # One listing of raw/ and one of parquet/ answer for all 216 tasks; only the one
    # complete month costs more (its manifest, source record and Parquet footer are read).
    listing = f"GET /storage/v1/b/{bucket.name}/o"
    assert sent.seen.count(listing) == 2, sent.seen
    others = [r for r in sent.seen if r != listing]
    assert others and all("yellow" in r and ("2021-01" in r or "month%3D01" in r)
                          for r in others), others
