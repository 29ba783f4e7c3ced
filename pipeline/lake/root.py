"""The lake as one object: a root URL (a local directory or ``gs://bucket/prefix``), the
scratch directory its tasks stage files in, and the one function that turns a key or a URL
into a target (``pipeline.lake.targets.LakeTarget``), so tasks never branch on storage.

A root is parsed once, strictly: a local path, or ``gs://`` with a bucket name; any other
scheme (``s3://``, ``http://``, ``file://``), a ``gs://`` URL without a bucket, or a path
that would be read as a URL (``gs:bucket``) is refused with one line naming the setting, so
a root is never silently taken for something else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import luigi.format

from pipeline.core.errors import SettingsError
from pipeline.core.service import Service
from pipeline.core.text import redact
from pipeline.lake.gcs_names import SCHEME, GCSSettings, is_bucket_name
from pipeline.lake.keys import (
    check_key,
    manifest_month,
    parquet_prefix,
    raw_month,
    raw_prefix,
)
from pipeline.lake.local import LocalLakeTarget
from pipeline.lake.scratch import Scratch
from pipeline.lake.targets import LakeTarget

# Anything that starts like a URL scheme ("s3:", "gs:", "C:" aside) is read as one.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
SUPPORTED = "a local directory or gs://bucket/prefix"


@dataclass(frozen=True)
class LakeRoot:
    """A parsed root: ``url`` is an absolute local path or ``gs://bucket[/prefix]``."""

    url: str
    bucket: str | None = None

    @property
    def in_bucket(self) -> bool:
        return self.bucket is not None


def parse_root(text: str, setting: str = "[lake] root") -> LakeRoot:
    """The root ``text`` names, or a SettingsError that says why it cannot be one."""
    text = text.strip()
    shown = redact(text)
    if not text:
        raise SettingsError(f"{setting} is empty: give {SUPPORTED}")
    scheme = _SCHEME.match(text)
    if scheme is None:
        return LakeRoot(str(Path(text).expanduser().absolute()))
    if scheme[1].lower() != "gs":
        raise SettingsError(
            f"{setting} {shown!r} is not {SUPPORTED}: scheme {scheme[1]!r} is not supported "
            "(a local directory whose name has a colon: write it as ./name)")
    if not text.startswith(SCHEME):
        raise SettingsError(f"{setting} {shown!r} is not {SUPPORTED}: write gs://bucket/prefix")
    bucket, _, prefix = text[len(SCHEME):].partition("/")
    if not bucket:
        raise SettingsError(f"{setting} {shown!r} names no bucket: write gs://bucket/prefix")
    if not is_bucket_name(bucket):
        raise SettingsError(f"{setting} {shown!r}: {bucket!r} is not a GCS bucket name "
                            "(3-63 lowercase letters, digits, dashes, dots, underscores)")
    parts = prefix.strip("/").split("/") if prefix.strip("/") else []
    if any(part in ("", ".", "..") for part in parts):
        raise SettingsError(f"{setting} {shown!r}: the prefix has an empty, '.' or '..' folder")
    return LakeRoot(SCHEME + "/".join([bucket, *parts]), bucket)


def lake_target(url: str | Path, format: luigi.format.Format | None = None, *,
                listed: str | None = None, settings: GCSSettings | None = None,
                scratch: Scratch | None = None, origin: str = "the setting that names it"
                ) -> LakeTarget:
    """The target of a URL: a local path, or ``gs://bucket/key`` in Google Cloud Storage.

    ``listed`` names a prefix URL whose one listing may answer ``stat()`` and ``info()``
    (bulk completeness checks); a local file is checked directly, which costs less.
    """
    text = str(url)
    if text.startswith(SCHEME):
        from pipeline.lake.gcs import GCSTarget  # the Google client loads only for a bucket

        return GCSTarget(text, format, listed=listed, settings=settings, scratch=scratch,
                         origin=origin)
    if _SCHEME.match(text):
        raise ValueError(f"not a local path or gs:// URL: {redact(text)!r}")
    return LocalLakeTarget(text, format)


class Lake:
    """A lake root and the scratch directory its tasks stage through.

    ``settings`` (GCS chunk and timeout) and ``scratch`` come from the caller: the task layer
    reads them from ``[gcs]`` and ``[lake]``.
    """

    def __init__(self, root: str | LakeRoot, *, scratch: Scratch | Path | str | None = None,
                 settings: GCSSettings | None = None, setting: str = "[lake] root") -> None:
        self.root = root if isinstance(root, LakeRoot) else parse_root(root, setting)
        self.scratch = scratch if isinstance(scratch, Scratch) else Scratch(scratch)
        self.settings = settings or GCSSettings()
        self.setting = setting

    def __repr__(self) -> str:
        return f"Lake({self.root.url!r})"

    @property
    def url_root(self) -> str:
        return self.root.url

    @property
    def in_bucket(self) -> bool:
        return self.root.in_bucket

    def url(self, key: str) -> str:
        """The URL (or absolute local path) of a key."""
        return f"{self.root.url}/{check_key(key)}"

    def target(self, key: str, format: luigi.format.Format | None = None, *,
               listed: str | None = None) -> LakeTarget:
        """The target of ``key``. ``listed``: a key prefix (``parquet/``) whose one listing
        may answer for this target (many months checked at once)."""
        return lake_target(self.url(key), format,
                           listed=self.url(listed) if listed else None,
                           settings=self.settings, scratch=self.scratch,
                           origin=self.setting)

    def keys(self, prefix: str) -> list[str]:
        """Every committed key under ``prefix`` (a folder key like ``raw/yellow/``), sorted."""
        folder = self.url(prefix).rstrip("/") if prefix else self.root.url
        fs = self.target(check_key(prefix.rstrip("/")) if prefix else "_").fs
        if not self.in_bucket and not Path(folder).is_dir():
            return []
        return [url.removeprefix(self.root.url + "/") for url in fs.listdir(folder)]

    def raw_months(self, service: Service) -> list[date]:
        """The months whose raw file the lake holds for ``service``, sorted."""
        return sorted({m for key in self.keys(raw_prefix(service))
                       if (m := raw_month(service, key))})

    def manifest_months(self, service: Service) -> list[date]:
        """The months with a manifest in the lake for ``service``, sorted (whether each
        describes its Parquet file is the month task's check)."""
        return sorted({m for key in self.keys(parquet_prefix(service))
                       if (m := manifest_month(service, key))})

