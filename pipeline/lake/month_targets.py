"""The targets of a month's lake files that say more than "a file is there": the
manifest that describes the Parquet beside it (``ManifestTarget``), and the raw file's
source record naming a version (``RecordedVersion``); and the small reads they share.

A month's raw file has a source record beside it (``*.source.json``: the ETag,
Last-Modified and length the source gave with it). The record is removed before a raw file
is replaced and written after, so a record present always describes the raw file beside it.
"""

from __future__ import annotations

import luigi
import pyarrow.parquet as pq

from pipeline.core.manifest import Manifest, SourceIdentity
from pipeline.core.service import Service
from pipeline.lake.targets import LakeError, LakeTarget, ObjectInfo


def generation(seen: ObjectInfo | None) -> int:
    """The precondition of a write that replaces what was seen: that version, or absent."""
    return (seen.generation or 0) if seen else 0


def read_text(target: LakeTarget) -> str | None:
    """A small lake file's text, or None when it is missing or unreadable."""
    if not target.exists():  # answered by a listing when many months are checked
        return None
    try:
        with target.open("rb") as f:
            return f.read().decode()
    except (OSError, UnicodeDecodeError, LakeError):
        return None


def source_version(identity: SourceIdentity) -> str:
    """One string naming a version of a source file: its ETag, else its Last-Modified,
    else its length."""
    return identity.etag or identity.last_modified or f"{identity.length} bytes"


def recorded_source(raw: LakeTarget, record: LakeTarget) -> SourceIdentity | None:
    """The raw file's source record, when there is one that describes it (its length)."""
    size = raw.size()
    if size is None:
        return None
    text = read_text(record)
    try:
        identity = SourceIdentity.from_json(text) if text is not None else None
    except (ValueError, TypeError, AttributeError):
        return None
    return identity if identity is not None and identity.length == size else None


class RecordedVersion(luigi.Target):
    """Exists when the raw file's source record describes it and names ``version``."""

    def __init__(self, raw: LakeTarget, record: LakeTarget, version: str, label: str) -> None:
        self.raw, self.record, self.version, self.label = raw, record, version, label

    def __str__(self) -> str:  # named in luigi's messages about a missing output
        return f"{self.label}'s source record naming version {self.version}"

    def exists(self) -> bool:
        identity = recorded_source(self.raw, self.record)
        return identity is not None and source_version(identity) == self.version


class ManifestTarget(luigi.Target):
    """Exists when the manifest is there and describes the Parquet file beside it (its size,
    and the footer's rows, row groups and schema). Both are lake targets: a local file or a
    bucket's object alike."""

    def __init__(self, manifest: LakeTarget, parquet: LakeTarget, service: Service) -> None:
        self.manifest, self.parquet, self.service = manifest, parquet, service

    @property
    def path(self) -> str:
        return self.manifest.path

    def __str__(self) -> str:  # named in luigi's messages about a missing output
        return f"{self.manifest.path} describing {self.parquet.path}"

    def exists(self) -> bool:
        return self.valid() is not None

    def text(self) -> str | None:
        """The manifest as stored, or None when it is missing or unreadable."""
        return read_text(self.manifest)

    def read(self) -> Manifest | None:
        text = self.text()
        try:
            return Manifest.from_json(text) if text is not None else None
        except (ValueError, TypeError):
            return None

    def valid(self) -> Manifest | None:
        """The manifest, when it describes the Parquet file beside it; else None."""
        manifest = self.read()
        if manifest is None or not manifest.describes_file(
                self.parquet.size(), self._footer, self.service.fingerprint):
            return None
        return manifest

    def _footer(self) -> pq.FileMetaData:
        with self.parquet.open("rb") as f:
            return pq.read_metadata(f)
