"""The gcs sink: a copy of a local lake's Parquet months and manifests in a bucket
(``[gcs] bucket``/``prefix``, laid out as the lake is), checksum-verified, for BigQuery.

A lake rooted in a bucket needs no copy: BigQuery loads from the lake's own objects. Which
object a BigQuery load reads, and which task puts it there, is decided here
(``bucket_lake``, ``bucket_month``), not in the load tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import luigi

from pipeline import config
from pipeline.core.checksums import file_digests
from pipeline.core.datasets import SERVICES
from pipeline.core.errors import PipelineError, SettingsError
from pipeline.core.manifest import Manifest
from pipeline.core.service import Service
from pipeline.lake.keys import PARQUET_PREFIX, manifest_key, parquet_key
from pipeline.lake.month_facts import LakeFacts
from pipeline.lake.root import Lake
from pipeline.lake.targets import LakeTarget, check_pending_reads
from pipeline.tasks.base import MonthTask, megabytes
from pipeline.tasks.completeness import SinkHolds, complete_in, lake_facts
from pipeline.tasks.parquetize import ParquetizeMonth
from pipeline.tasks.storage import gcs_settings, lake

COPY_SETTING = "[gcs] bucket"


def copy_lake() -> Lake:
    """``gs://{bucket}/{prefix}``: where the gcs sink copies a local lake's months."""
    settings = config.gcs()
    bucket, prefix = settings.bucket.strip(), settings.prefix.strip("/")
    if not bucket:
        if lake().in_bucket:
            raise SettingsError(
                f"sink 'gcs' copies a local lake to [gcs] bucket, which is empty; this lake is "
                f"already in {lake().url_root} (BigQuery loads from it): leave gcs out of "
                "[pipeline] sinks")
        raise SettingsError("sink 'gcs' needs [gcs] bucket (the bucket the months are "
                            "uploaded to, created once: see README, Google Cloud)")
    root = f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"
    return Lake(root, scratch=lake().scratch, settings=gcs_settings(), setting=COPY_SETTING)


def check_settings() -> None:
    """The gcs sink: a bucket to copy to that is not the lake itself."""
    copy, own = copy_lake().url_root, lake().url_root
    if copy == own or copy.startswith(own + "/") or own.startswith(copy + "/"):
        raise SettingsError(f"sink 'gcs' would copy the lake {own} onto {copy}, inside itself: "
                            "name another [gcs] bucket or prefix, or leave gcs out of sinks")


def bucket_lake() -> Lake:
    """Where BigQuery reads months from: the lake itself when it is a bucket, else the gcs
    sink's copy."""
    return lake() if lake().in_bucket else copy_lake()


def check_bucket_source() -> None:
    """The bigquery sink's source: nothing to set up for a bucket lake; the gcs sink's
    settings for a local one."""
    if not lake().in_bucket:
        check_settings()


def bucket_month(service: str, month: date) -> luigi.Task:
    """The task whose output is the month's Parquet object in ``bucket_lake()``."""
    if lake().in_bucket:
        return ParquetizeMonth(service=service, month=month)
    return UploadMonth(service=service, month=month)


def bucket_parquet_url(service: str, month: date) -> str:
    return bucket_lake().url(parquet_key(SERVICES[service], month))


def uploaded(copy: Lake, facts: LakeFacts) -> bool:
    """The gcs sink's fact of a month: the copy's manifest object is the lake's manifest
    (the sha256 of its bytes, ``facts``) and its Parquet object has the manifest's size and
    sha256. Both come from one listing of the copy's Parquet prefix when many months are
    checked. No task is built: the jobs ask it too (``pipeline.tasks.sinks``)."""
    service = SERVICES[facts.service]
    stored = copy.target(manifest_key(service, facts.month), listed=PARQUET_PREFIX).info()
    manifest = facts.manifest
    if stored is None or manifest is None or stored.sha256 != facts.manifest_sha256:
        return False
    parquet = copy.target(parquet_key(service, facts.month), listed=PARQUET_PREFIX).info()
    return (parquet is not None and parquet.size == manifest.parquet_bytes
            and parquet.sha256 == manifest.parquet_sha256)


class UploadedTarget(luigi.Target):
    """Exists when the gcs sink holds the month (``uploaded``): the Parquet object has the
    manifest's size and sha256, and the manifest object is the lake's manifest."""

    def __init__(self, copy: Lake, service: Service, month: date) -> None:
        self.copy, self.service, self.month = copy, service, month
        self.parquet = copy.target(parquet_key(service, month), listed=PARQUET_PREFIX)
        self.manifest = copy.target(manifest_key(service, month), listed=PARQUET_PREFIX)

    def __str__(self) -> str:  # named in luigi's messages about a missing output
        return f"the copy {self.parquet.path} and its manifest"

    def exists(self) -> bool:
        # The copy first: when nothing is uploaded, one listing answers for every month,
        # and the lake is not read.
        return self.manifest.exists() and uploaded(
            self.copy, lake_facts(self.service, self.month, check_parquet=False))


def upload_month(parquet: Path, manifest_file: Path, manifest: Manifest, parquet_target: LakeTarget,
            manifest_target: LakeTarget,
            progress: Callable[[int, int | None], None] | None = None) -> bool:
    """Upload the month's Parquet then its manifest; False when the Parquet was already
    there (an earlier run stopped before its manifest) and was kept."""
    # The old manifest goes first: from here on nothing claims the month is uploaded.
    old = manifest_target.info()
    if old is not None:
        manifest_target.remove(if_generation=old.generation)
    existing = parquet_target.info()
    # An object without its manifest may be one whose check a crash cut short: it is kept
    # only when it is this file (crc32c of the local bytes), else replaced.
    uploaded = not (existing and existing.size == manifest.parquet_bytes
                    and existing.sha256 == manifest.parquet_sha256
                    and existing.crc32c == file_digests(parquet).crc32c)
    if uploaded:
        parquet_target.put(parquet, sha256=manifest.parquet_sha256, progress=progress,
                           if_generation=existing.generation if existing else 0)
    # The manifest goes up only for the file it describes (a local lake's file is hashed
    # alongside the upload's read: pipeline.lake.targets.verified_read).
    check_pending_reads()
    manifest_target.put(manifest_file, if_generation=0)
    return uploaded


class UploadMonth(MonthTask):
    """The month's Parquet and ``_manifest.json`` copied to the gcs sink's bucket, at
    ``gs://{bucket}/{prefix}/parquet/{service}/year={YYYY}/month={MM}/``; the manifest is
    uploaded only after the Parquet object was verified (crc32c against the bytes read,
    sha256 against the manifest). Complete when the Parquet object has the manifest's size
    and sha256, the manifest object is the lake's manifest, and the lake's month is whole.
    """

    def requires(self) -> ParquetizeMonth:
        return ParquetizeMonth(service=self.service, month=self.month)

    def targets(self, listed: bool = True) -> tuple[LakeTarget, LakeTarget]:
        copy, prefix = copy_lake(), PARQUET_PREFIX if listed else None
        return (copy.target(parquet_key(self.dataset, self.month), listed=prefix),
                copy.target(manifest_key(self.dataset, self.month), listed=prefix))

    def output(self) -> UploadedTarget:
        return UploadedTarget(copy_lake(), self.dataset, self.month)

    @classmethod
    def holding(cls) -> SinkHolds:
        """The gcs sink's fact of a month (``uploaded``), in the configured copy (its
        settings read once here)."""
        copy = copy_lake()
        return lambda facts: uploaded(copy, facts)

    @classmethod
    def holds(cls, facts: LakeFacts) -> bool:
        """The gcs sink's fact of the month (``holding``)."""
        return cls.holding()(facts)

    def complete(self) -> bool:
        """The copy holds the month (``uploaded``) and the lake's month is whole
        (``complete_in``, as for every sink: a Parquet file damaged in the lake after its
        upload is converted again and its copy checked, not hidden behind the copy)."""
        if not self.output().manifest.exists():
            return False  # one listing of the copy answers for every month not uploaded
        return complete_in(lake_facts(self.dataset, self.month), self.holds)

    def run(self) -> None:
        local = self.input()
        manifest = local.read()
        if manifest is None:
            raise PipelineError(f"{self.label}: the lake's manifest {local.path} is unreadable")
        # Fresh targets: what run() decides on must not come from a cached listing.
        parquet_target, manifest_target = self.targets(listed=False)
        self.report(f"uploading {megabytes(manifest.parquet_bytes)} of Parquet", 0)
        with local.parquet.local_file(sha256=manifest.parquet_sha256) as parquet, \
                local.manifest.local_file() as manifest_file:
            uploaded = upload_month(parquet, manifest_file, manifest, parquet_target,
                               manifest_target, progress=self._progress)
        self.report(f"{'uploaded' if uploaded else 'kept'} {megabytes(manifest.parquet_bytes)} "
                    f"at {parquet_target.path}", 100)

    def _progress(self, done: int, total: int | None) -> None:
        self.report_progress(done, total, f"uploaded {megabytes(done)} of {megabytes(total)}")
        # For listeners in the worker's process (tests stop the emulator mid-upload).
        self.trigger_event(luigi.Event.PROGRESS, self, done, total)


def rows_by_month(service: Service) -> dict[date, int]:
    """Rows of each month the gcs sink's copy holds for ``service`` (one listing; rows from
    the manifests)."""
    rows = {}
    copy = copy_lake()
    for month in copy.manifest_months(service):
        facts = lake_facts(service, month, check_parquet=False)
        if uploaded(copy, facts) and facts.manifest is not None:
            rows[month] = facts.manifest.rows
    return rows
