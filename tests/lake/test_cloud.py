"""The cloud branch (sinks gcs and bigquery) against real emulators: fake-gcs-server and
bqemulator, started by tests/fixtures_cloud.py. Faults are real: the emulator is killed
and restarted, bytes are flipped on the wire or on the emulator's disk."""

from __future__ import annotations

import base64
import hashlib
import threading
from datetime import date

import google_crc32c
import luigi
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud import bigquery
from luigi.execution_summary import LuigiStatusCode

from pipeline import IngestMonth, LoadBigQuery, ParquetizeMonth, UploadMonth
from pipeline.core.datasets import SERVICES
from pipeline.core.text import one_line
from pipeline.lake import gcs as gcs_module
from pipeline.lake.root import lake_target
from pipeline.tasks import upload
from pipeline.tasks.load import bigquery_settings
from pipeline.tasks.sinks import month_completeness, parse_sinks
from pipeline.tasks.upload import SettingsError
from pipeline.warehouses import bigquery as bigquery_warehouse
from pipeline.warehouses.base import WarehouseError, asking_about_many_months
from pipeline.warehouses.bigquery import check_parquet
from tests.conftest import Env, Release
from tests.fixtures_cloud import PROJECT_ID, Cloud, CorruptingProxy
from tests.tasks.test_month_pipeline import Runs

JAN = date(2021, 1, 1)
PARQUET = "parquet/{s}/year=2021/month=01/{s}_tripdata_2021-01.parquet"
MANIFEST = "parquet/{s}/year=2021/month=01/_manifest.json"


def crc32c_of(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


class Requests:
    """Counts the HTTP requests this process's GCS client sends (a hook on its session)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __enter__(self) -> Requests:
        gcs_module.GCS.forget()
        self.session = gcs_module.client()._http
        self.session.hooks["response"].append(self._record)
        return self

    def _record(self, response, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.seen.append(f"{response.request.method} {response.request.path_url.split('?')[0]}")

    def __exit__(self, *exc: object) -> None:
        self.session.hooks["response"].remove(self._record)


class Failures:
    """The messages of the tasks that fail while the block runs (in-process workers)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __enter__(self) -> Failures:
        luigi.Task.event_handler(luigi.Event.FAILURE)(self._record)
        return self

    def _record(self, task: luigi.Task, exception: BaseException) -> None:
        self.messages.append(f"{type(exception).__name__}: {exception}")

    def __exit__(self, *exc: object) -> None:
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.FAILURE].discard(self._record)

    @property
    def text(self) -> str:
        return "\n".join(self.messages)


def test_a_month_reaches_gcs_and_bigquery_beside_duckdb(env: Env, cloud: Cloud,
                                                        release: Release) -> None:
    result = env.build(IngestMonth(month=JAN, services=("yellow", "green")), workers=2)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    for service in ("yellow", "green"):
        rows = release.of(service, "2021-01").rows
        local = ParquetizeMonth(service=service, month=JAN).output()
        blob = cloud.storage.bucket(cloud.bucket).get_blob(
            f"{cloud.prefix}/{PARQUET.format(s=service)}")
        assert blob.crc32c == crc32c_of(local.parquet.file.read_bytes())
        assert blob.metadata["sha256"] == local.read().parquet_sha256
        manifest = cloud.storage.bucket(cloud.bucket).blob(
            f"{cloud.prefix}/{MANIFEST.format(s=service)}").download_as_bytes()
        assert manifest == local.manifest.file.read_bytes()
        assert cloud.query(f"SELECT source_month, count(*) FROM "
                           f"`{cloud.table(f'{service}_tripdata')}` GROUP BY 1") == [(JAN, rows)]
    assert cloud.query(f"SELECT count(*) FROM `{cloud.table('zones')}`") == [(265,)]
    table = cloud.bq.client().get_table(cloud.table("yellow_tripdata"))
    assert table.time_partitioning.type_ == "MONTH"
    assert table.time_partitioning.field == "tpep_pickup_datetime"
    assert [(f.name, f.field_type) for f in table.schema][:3] == [
        ("VendorID", "INT64"), ("tpep_pickup_datetime", "TIMESTAMP"),
        ("tpep_dropoff_datetime", "TIMESTAMP")]
    assert table.schema[-1].name == "source_month"
    # Out-of-month pickups stay with the month of their file.
    outside = cloud.query(
        f"SELECT count(*) FROM `{cloud.table('yellow_tripdata')}` WHERE "
        "tpep_pickup_datetime < TIMESTAMP '2021-01-01' OR "
        "tpep_pickup_datetime >= TIMESTAMP '2021-02-01'")
    assert outside == [(release.of("yellow", "2021-01").rows_outside_month,)]
    # Nothing left behind: staging tables are dropped.
    tables = {t.table_id for t in cloud.bq.client().list_tables(f"{PROJECT_ID}.{cloud.dataset}")}
    assert tables == {"yellow_tripdata", "green_tripdata", "zones", "pipeline_loads"}

    # A re-run runs nothing, uploads nothing, and answers from one listing of the lake.
    with Runs() as runs, Requests() as sent:
        again = env.build(IngestMonth(month=JAN, services=("yellow", "green")))
    assert again.status == LuigiStatusCode.SUCCESS
    assert runs.started == []
    assert sent.seen == [f"GET /storage/v1/b/{cloud.bucket}/o"]

    # Loading a month again replaces it: no duplicates.
    LoadBigQuery(service="yellow", month=JAN).run()
    assert cloud.query(f"SELECT count(*) FROM `{cloud.table('yellow_tripdata')}`") == [
        (release.of("yellow", "2021-01").rows,)]
    # What `taxi-pipeline status` reports for the two sinks.
    rows = release.of("yellow", "2021-01").rows
    assert upload.rows_by_month(SERVICES["yellow"]) == {JAN: rows}
    assert bigquery_warehouse.rows_by_month(SERVICES["yellow"], bigquery_settings()) == {JAN: rows}
    # The command line agrees that nothing is left to do.
    done = env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2021-01",
                       "--services", "yellow,green", "--workers", "2", "--local-scheduler")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "was not granted run permission" not in done.stderr
    assert "ran successfully" not in done.stderr


def test_a_plan_asks_bigquery_about_every_month_of_a_table_in_one_query(
        env: Env, cloud: Cloud) -> None:
    """Inside ``asking_about_many_months`` (a job's plan): the same answers as asked one by
    one, from one query per table; outside it each question is asked as it comes."""
    dec = date(2020, 12, 1)
    for month in (dec, JAN):
        result = env.build(IngestMonth(month=month, services=("yellow",)))
        assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    settings, months = bigquery_settings(), (dec, JAN, date(2021, 2, 1))
    cloud.query(f"DELETE FROM `{cloud.table('yellow_tripdata')}` WHERE source_month = "
                "DATE '2021-01-01' AND VendorID = 1")  # a mismatch behind the log's back
    one_by_one = {m: bigquery_warehouse.loaded("yellow_tripdata", m, settings) for m in months}
    assert one_by_one[dec] is not None and one_by_one[dec][0] == one_by_one[dec][2]
    assert one_by_one[JAN] is not None and one_by_one[JAN][0] > one_by_one[JAN][2]
    assert one_by_one[date(2021, 2, 1)] is None
    queries: list[str] = []

    def count(response, *args, **kwargs):  # type: ignore[no-untyped-def]
        if response.request.method == "POST":  # a query job (its results: GETs)
            queries.append(response.request.path_url)

    hooks = bigquery_warehouse.client(settings)._http.hooks["response"]
    hooks.append(count)
    try:
        with asking_about_many_months():
            at_once = {m: bigquery_warehouse.loaded("yellow_tripdata", m, settings)
                       for m in months}
        assert at_once == one_by_one
        assert len(queries) == 1, queries
        assert bigquery_warehouse.loaded("yellow_tripdata", dec, settings) == one_by_one[dec]
        assert len(queries) == 2, queries
    finally:
        hooks.remove(count)


def test_checking_many_months_lists_the_lake_once(env: Env, cloud: Cloud) -> None:
    done = [("yellow", date(2020, 12, 1)), ("yellow", JAN), ("green", JAN)]
    assert env.build(*(UploadMonth(service=s, month=m) for s, m in done)).status == \
        LuigiStatusCode.SUCCESS
    months = [date(2019 + i // 12, i % 12 + 1, 1) for i in range(36)]
    tasks = [UploadMonth(service=s, month=m) for s in SERVICES for m in months]
    with Requests() as sent:
        complete = {(t.service, t.month) for t in tasks if t.complete()}
    assert complete == {(s, m) for s, m in done}
    assert sent.seen == [f"GET /storage/v1/b/{cloud.bucket}/o"]


def test_a_rerun_after_a_lost_manifest_uploads_only_the_manifest(env: Env, cloud: Cloud) -> None:
    task = UploadMonth(service="yellow", month=JAN)
    assert env.build(task).status == LuigiStatusCode.SUCCESS
    cloud.storage.bucket(cloud.bucket).blob(f"{cloud.prefix}/{MANIFEST.format(s='yellow')}"
                                            ).delete()
    gcs_module.GCS.forget()
    assert not task.complete()
    key = f"{cloud.prefix}/{PARQUET.format(s='yellow')}"
    parquet = cloud.storage.bucket(cloud.bucket).get_blob(key)
    with Requests() as sent:
        assert env.build(task).status == LuigiStatusCode.SUCCESS
    # One upload session (the manifest's); the Parquet object is the one already there.
    assert sent.seen.count(f"POST /upload/storage/v1/b/{cloud.bucket}/o") == 1
    assert cloud.storage.bucket(cloud.bucket).get_blob(key).generation == parquet.generation
    assert task.complete()


def test_an_object_damaged_in_transit_fails_the_upload_and_is_removed(
        env: Env, cloud: Cloud, corrupting_proxy: CorruptingProxy,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", corrupting_proxy.url)
    env.configure(scheduler={"retry_count": "1"})
    result = env.build(UploadMonth(service="yellow", month=JAN))
    assert result.status == LuigiStatusCode.FAILED
    assert corrupting_proxy.flipped >= 1
    assert not cloud.object_file(PARQUET.format(s="yellow")).exists()
    assert not cloud.object_file(MANIFEST.format(s="yellow")).exists()


def test_a_local_file_that_differs_from_its_manifest_is_not_published(env: Env,
                                                                     cloud: Cloud) -> None:
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    parquet = ParquetizeMonth(service="yellow", month=JAN).output().parquet.file
    # One byte inside the data pages: size and footer unchanged, the sha256 not.
    data = bytearray(parquet.read_bytes())
    data[len(data) // 3] ^= 0xFF
    parquet.write_bytes(bytes(data))
    assert ParquetizeMonth(service="yellow", month=JAN).complete()
    env.configure(scheduler={"retry_count": "1"})
    result = env.build(UploadMonth(service="yellow", month=JAN))
    assert result.status == LuigiStatusCode.FAILED
    assert not cloud.object_file(PARQUET.format(s="yellow")).exists()
    assert not UploadMonth(service="yellow", month=JAN).complete()


def test_a_parquet_damaged_in_the_lake_after_its_upload_is_converted_again(
        env: Env, cloud: Cloud) -> None:
    # The gcs sink's month is complete only while the lake's month is whole, as every
    # sink's is: the task and the jobs' plain answer (month_completeness) read the same facts.
    env.configure(pipeline={"sinks": "gcs"})
    assert env.build(UploadMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    assert month_completeness(("gcs",))("yellow", JAN)
    assert IngestMonth(month=JAN, services=("yellow",)).complete()
    local = ParquetizeMonth(service="yellow", month=JAN).output()
    kept = local.parquet.file.read_bytes()
    local.parquet.file.write_bytes(kept[:-100])
    assert not month_completeness(("gcs",))("yellow", JAN)
    assert not IngestMonth(month=JAN, services=("yellow",)).complete()
    assert not UploadMonth(service="yellow", month=JAN).complete()
    # What `status` counts in the copy does not depend on the lake's own file.
    assert upload.rows_by_month(SERVICES["yellow"]) == {JAN: local.read().rows}

    assert env.build(IngestMonth(month=JAN, services=("yellow",))).status == \
        LuigiStatusCode.SUCCESS
    manifest = local.valid()
    assert manifest is not None
    blob = cloud.storage.bucket(cloud.bucket).get_blob(
        f"{cloud.prefix}/{PARQUET.format(s='yellow')}")
    assert blob.metadata["sha256"] == manifest.parquet_sha256
    gcs_module.GCS.forget()
    assert month_completeness(("gcs",))("yellow", JAN)
    assert UploadMonth(service="yellow", month=JAN).complete()


def test_an_upload_survives_an_emulator_restart(env: Env, cloud: Cloud) -> None:
    # Small chunks, so the emulator can be killed with most of the file still to send.
    env.configure(gcs={"chunk_mib": "0.25"})
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    local = ParquetizeMonth(service="yellow", month=JAN).output()
    size = local.parquet.file.stat().st_size
    assert size > 2 * 256 * 1024  # the kill below leaves two chunks or more to send
    killed = threading.Event()

    def kill_midway(task: luigi.Task, done: int, total: int | None) -> None:
        if not killed.is_set() and done >= 256 * 1024:
            killed.set()
            cloud.gcs.stop()
            threading.Timer(0.3, cloud.gcs.start).start()

    UploadMonth.event_handler(luigi.Event.PROGRESS)(kill_midway)
    try:
        result = env.build(UploadMonth(service="yellow", month=JAN))
    finally:
        UploadMonth._event_callbacks[UploadMonth][luigi.Event.PROGRESS].discard(kill_midway)
    assert killed.is_set()
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    stored = cloud.object_file(PARQUET.format(s="yellow")).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == local.read().parquet_sha256
    gcs_module.GCS.forget()
    assert UploadMonth(service="yellow", month=JAN).complete()


def test_a_table_whose_schema_differs_is_refused(env: Env, cloud: Cloud) -> None:
    other = [bigquery.SchemaField("VendorID", "STRING"),
             bigquery.SchemaField("tpep_pickup_datetime", "TIMESTAMP")]
    cloud.bq.client().create_table(bigquery.Table(cloud.table("yellow_tripdata"), schema=other))
    env.configure(scheduler={"retry_count": "1"})
    with Failures() as failures:
        result = env.build(LoadBigQuery(service="yellow", month=JAN))
    assert result.status == LuigiStatusCode.FAILED
    assert failures.messages == [
        f"WarehouseError: BigQuery table test.{cloud.dataset}.yellow_tripdata has an "
        "incompatible schema (VendorID int64 is VendorID string); it was left as it is: "
        "migrate or drop it"]
    table = cloud.bq.client().get_table(cloud.table("yellow_tripdata"))
    assert [f.name for f in table.schema] == ["VendorID", "tpep_pickup_datetime"]
    assert cloud.query(f"SELECT count(*) FROM `{cloud.table('yellow_tripdata')}`") == [(0,)]


def test_a_parquet_object_whose_columns_differ_from_the_table_is_refused(env: Env,
                                                                         cloud: Cloud) -> None:
    assert env.build(LoadBigQuery(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    table = cloud.bq.client().get_table(cloud.table("yellow_tripdata"))
    swapped = pa.table({"tpep_pickup_datetime": pa.array([], pa.timestamp("us")),
                        "VendorID": pa.array([], pa.int64())})
    path = env.tmp / "swapped.parquet"
    pq.write_table(swapped, path)
    url = cloud.url("odd/swapped.parquet")
    lake_target(url).put(path)
    with pytest.raises(WarehouseError, match="VendorID INT64 is tpep_pickup_datetime TIMESTAMP"):
        check_parquet(bigquery_settings(), url, table)


def test_missing_bucket_and_dataset_are_named(env: Env, cloud: Cloud) -> None:
    env.configure(gcs={"bucket": "no-such-bucket"}, scheduler={"retry_count": "1"})
    with Failures() as failures:
        result = env.build(UploadMonth(service="yellow", month=JAN))
    assert result.status == LuigiStatusCode.FAILED
    assert failures.messages == [
        "GCSError: GCS bucket 'no-such-bucket' does not exist or these credentials cannot see "
        "it: create it once (see README, Google Cloud) or fix [gcs] bucket"]

    env.configure(gcs={"bucket": cloud.bucket}, bigquery={"dataset": "no_such_dataset"})
    with Failures() as failures:
        result = env.build(LoadBigQuery(service="yellow", month=JAN))
    assert result.status == LuigiStatusCode.FAILED
    assert failures.messages == [
        "WarehouseError: BigQuery dataset test.no_such_dataset does not exist or these "
        "credentials cannot see it: create it once (see README, Google Cloud) or fix "
        "[bigquery] dataset"]


@pytest.mark.parametrize(("settings", "message"), [
    ({"gcs": {"bucket": ""}}, r"sink 'gcs' needs \[gcs\] bucket"),
    ({"bigquery": {"dataset": ""}}, r"sink 'bigquery' needs \[bigquery\] project and dataset"),
    ({"bigquery": {"dataset": "a-b"}}, "is not a BigQuery dataset name"),
])
def test_settings_are_checked_before_anything_runs(env: Env, cloud: Cloud, settings: dict,
                                                   message: str) -> None:
    env.configure(**settings)
    with pytest.raises(SettingsError, match=message):
        parse_sinks("duckdb,gcs,bigquery")


def test_errors_never_carry_a_resumable_session_id() -> None:
    text = ("404 PUT http://127.0.0.1:1/upload/storage/v1/b/b/o?uploadType=resumable&"
            "upload_id=ABCsecret123&name=x: {\"error\": \"Not Found\"}\n  more")
    assert "ABCsecret123" not in one_line(text)
    assert "\n" not in one_line(text)
