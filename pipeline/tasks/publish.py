"""Publish a month's Parquet and its manifest to the cloud lake (``[gcs] bucket``/``prefix``),
checksum-verified, through the lake's storage interface (``pipeline.lake.keys.lake_target``)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

import luigi

from pipeline import config
from pipeline.core.datasets import Service
from pipeline.core.errors import PipelineError, SettingsError
from pipeline.core.manifest import Manifest
from pipeline.lake.keys import MANIFEST_NAME, lake_target, manifest_key, parquet_key
from pipeline.lake.targets import LakeTarget, file_digests
from pipeline.tasks.base import MonthTask, megabytes
from pipeline.tasks.lake_month import ManifestTarget, ParquetizeMonth

PARQUET_PREFIX = "parquet/"
_MANIFEST_URL = re.compile(rf"/year=(\d{{4}})/month=(\d{{2}})/{re.escape(MANIFEST_NAME)}$")


def check_settings() -> None:
    cloud_root()


def cloud_root() -> str:
    """``gs://{bucket}/{prefix}``: where the lake's keys are published."""
    settings = config.gcs()
    bucket, prefix = settings.bucket.strip(), settings.prefix.strip("/")
    if not bucket:
        raise SettingsError("sink 'gcs' needs [gcs] bucket (the bucket the months are "
                            "published to, created once: see README, Google Cloud)")
    return f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"


def cloud_url(key: str) -> str:
    """``gs://{bucket}/{prefix}/{key}`` for a lake key."""
    return f"{cloud_root()}/{key}"


class PublishedTarget(luigi.Target):
    """Exists when the Parquet object has the manifest's size and sha256, and the manifest
    object is the local manifest. Both come from one listing of the Parquet prefix when
    many months are checked."""

    def __init__(self, parquet: LakeTarget, manifest: LakeTarget, local: ManifestTarget) -> None:
        self.parquet, self.manifest, self.local = parquet, manifest, local

    def exists(self) -> bool:
        # The cloud first: when nothing is published, one listing answers for every month.
        published = self.manifest.info()
        if published is None:
            return False
        try:
            text = self.local.path.read_bytes()
            manifest = Manifest.from_json(text.decode())
        except (OSError, ValueError, TypeError):
            return False
        parquet = self.parquet.info()
        return (
            published.sha256 == hashlib.sha256(text).hexdigest()
            and parquet is not None
            and parquet.size == manifest.parquet_bytes
            and parquet.sha256 == manifest.parquet_sha256
        )


def publish(parquet: Path, manifest_file: Path, manifest: Manifest, parquet_target: LakeTarget,
            manifest_target: LakeTarget,
            progress: Callable[[int, int | None], None] | None = None) -> bool:
    """Publish the month's Parquet then its manifest; False when the Parquet was already
    there (an earlier run stopped before its manifest) and was kept."""
    # The old manifest goes first: from here on nothing claims the month is published.
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
    manifest_target.put(manifest_file, if_generation=0)
    return uploaded


class UploadMonth(MonthTask):
    """The month's Parquet and ``_manifest.json`` in the cloud lake, at
    ``gs://{bucket}/{prefix}/parquet/{service}/year={YYYY}/month={MM}/``; the manifest is
    uploaded only after the Parquet object was verified (crc32c against the local bytes,
    sha256 against the manifest). Complete when the Parquet object has the manifest's size
    and sha256 and the manifest object is the local manifest.
    """

    def requires(self) -> ParquetizeMonth:
        return ParquetizeMonth(service=self.service, month=self.month)

    def urls(self, root: str | None = None) -> tuple[str, str]:
        root = root or cloud_root()
        return (f"{root}/{parquet_key(self.dataset, self.month)}",
                f"{root}/{manifest_key(self.dataset, self.month)}")

    def output(self) -> PublishedTarget:
        root = cloud_root()
        parquet, manifest = self.urls(root)
        listed = f"{root}/{PARQUET_PREFIX}"
        return PublishedTarget(lake_target(parquet, listed=listed),
                               lake_target(manifest, listed=listed), self.requires().output())

    def run(self) -> None:
        local = self.input()
        manifest = local.read()
        if manifest is None:
            raise PipelineError(f"{self.label}: the local manifest {local.path} is unreadable")
        parquet_url, manifest_url = self.urls()
        self.report(f"uploading {megabytes(manifest.parquet_bytes)} of Parquet", 0)
        # Fresh targets: what run() decides on must not come from a cached listing.
        uploaded = publish(local.parquet, local.path, manifest, lake_target(parquet_url),
                           lake_target(manifest_url), progress=self._progress)
        self.report(f"{'uploaded' if uploaded else 'kept'} {megabytes(manifest.parquet_bytes)} "
                    f"at {parquet_url}", 100)

    def _progress(self, done: int, total: int | None) -> None:
        self.report_progress(done, total, f"uploaded {megabytes(done)} of {megabytes(total)}")
        # For listeners in the worker's process (tests stop the emulator mid-upload).
        self.trigger_event(luigi.Event.PROGRESS, self, done, total)


def rows_by_month(service: Service) -> dict[date, int]:
    """Rows of each month published for ``service`` (one listing; rows from the manifests)."""
    folder = cloud_url(f"{PARQUET_PREFIX}{service.name}/")
    months = [date(int(m[1]), int(m[2]), 1) for url in lake_target(folder).fs.listdir(folder)
              if (m := _MANIFEST_URL.search(url))]
    rows = {}
    for month in months:
        task = UploadMonth(service=service.name, month=month)
        if task.complete() and (manifest := task.requires().output().read()):
            rows[month] = manifest.rows
    return rows
