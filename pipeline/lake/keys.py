"""The lake: where each (service, month) lives, and how files get there atomically.

Every path in the pipeline comes from the key functions here, never from string
formatting in tasks. Keys are relative (``raw/yellow/yellow_tripdata_2021-01.csv.gz``)
and resolve under ``[lake] root``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.datasets import ZONES, Service
from pipeline.core.errors import PipelineError
from pipeline.core.months import month_key

if TYPE_CHECKING:
    from pipeline.lake.targets import LakeTarget

MANIFEST_NAME = "_manifest.json"


class LakeFull(PipelineError):
    """The lake's file system has no room for an output; nothing was published."""


RAW_SUFFIX = {"csv": ".csv.gz", "parquet": ".parquet"}


def raw_key(service: Service, month: date, source_format: str = "csv") -> str:
    """The month's download as published: ``.csv.gz`` from the mirror, ``.parquet`` from TLC."""
    return f"raw/{service.name}/{service.file_stem(month_key(month))}{RAW_SUFFIX[source_format]}"


def source_record_key(service: Service, month: date, source_format: str = "csv") -> str:
    """What the source said the raw file was when it was fetched (ETag, Last-Modified,
    length): ``raw/{service}/{file}.source.json``, written just after the raw file."""
    return f"{raw_key(service, month, source_format)}.source.json"


def parquet_dir_key(service: Service, month: date) -> str:
    return f"parquet/{service.name}/year={month:%Y}/month={month:%m}"


def parquet_key(service: Service, month: date) -> str:
    return f"{parquet_dir_key(service, month)}/{service.file_stem(month_key(month))}.parquet"


def manifest_key(service: Service, month: date) -> str:
    return f"{parquet_dir_key(service, month)}/{MANIFEST_NAME}"


def zones_key() -> str:
    return f"raw/zones/{ZONES.file_name}"


def local_path(root: Path, key: str) -> Path:
    """The file of ``key`` under the lake root; refuses anything that would leave it."""
    root = root.absolute()
    path = (root / key).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"lake key {key!r} points outside the lake root {root}")
    return path


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; publish it under ``final`` only on success.

    The temporary name starts with a dot and ends in ``.tmp`` so that nothing reading the
    lake mistakes it for output. It is fsynced before the rename, so a crash right after
    publication never leaves an empty file under the final name.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise LakeFull(f"no space left in the lake for {final} ({e.strerror})") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomically(final: Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text)


def lake_target(url: str | Path, *, listed: str | None = None) -> LakeTarget:
    """The target of a lake URL: a local path, or ``gs://bucket/key`` in Google Cloud Storage.

    Both have one interface (``pipeline.lake.targets``: exists, info, open for reading, atomic
    writes, remove, listing a prefix), so tasks never branch on the kind of storage.
    ``listed`` names a prefix URL whose one listing may answer ``exists()`` and ``info()``
    (bulk completeness checks); a local file is checked directly, which costs less.
    """
    text = str(url)
    if text.startswith("gs://"):
        # Imported here: google-cloud-storage is loaded only by runs that use it.
        from pipeline.lake.gcs import GCSTarget

        return GCSTarget(text, listed=listed)
    from pipeline.lake.targets import LocalLakeTarget

    return LocalLakeTarget(text)
