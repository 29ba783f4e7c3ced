"""What the lake holds of one month of one service, read without luigi's task graph: the
raw file's size and its source record, the manifest, whether the manifest describes the
Parquet file beside it and whether it was made from the raw file there.

One plain function of a ``Lake`` and the month's source format (both passed in: nothing
here reads a setting), so ``status``, ``catch-up``, ``refresh``, progress and the coverage
page ask the lake a question without building a task. The judgements are the same
lower-level ones the month tasks make (``Manifest.describes_file``, ``Manifest.made_from``,
``SourceIdentity.from_json``): ``LakeFacts.parquet_complete`` is ``ParquetizeMonth``'s
completeness, ``LakeFacts.raw_complete`` is ``DownloadMonth``'s (both tasks ask here).

A CSV month converted while it downloaded has its Parquet at the month's key before its
manifest: the raw file's source record says so (``ConvertedParquet``), and
``LakeFacts.parquet_to_take`` is that Parquet while it is still the file converted, by this
pipeline version: ``ParquetizeMonth`` then writes only the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cache

import pyarrow.parquet as pq

from pipeline.core.checksums import bytes_sha256
from pipeline.core.manifest import ConvertedParquet, Manifest, SourceIdentity
from pipeline.core.service import Service
from pipeline.core.version import __version__
from pipeline.lake.keys import (
    PARQUET_PREFIX,
    RAW_PREFIX,
    manifest_key,
    parquet_key,
    raw_key,
    source_record_key,
)
from pipeline.lake.month_targets import read_text
from pipeline.lake.root import Lake
from pipeline.lake.targets import LakeTarget


@dataclass(frozen=True)
class MonthFiles:
    """The month's four lake files (targets: a local file or a bucket's object alike)."""

    raw: LakeTarget
    source_record: LakeTarget
    manifest: LakeTarget
    parquet: LakeTarget


def month_files(the_lake: Lake, service: Service, month: date, source_format: str
                ) -> MonthFiles:
    """Where the month's files are; ``listed``: one listing of each prefix answers for
    every month when many are checked at once (as the tasks' outputs do)."""
    return MonthFiles(
        raw=the_lake.target(raw_key(service, month, source_format), listed=RAW_PREFIX),
        source_record=the_lake.target(source_record_key(service, month, source_format),
                                      listed=RAW_PREFIX),
        manifest=the_lake.target(manifest_key(service, month), listed=PARQUET_PREFIX),
        parquet=the_lake.target(parquet_key(service, month), listed=PARQUET_PREFIX),
    )


@dataclass(frozen=True)
class LakeFacts:
    """What the lake says of a month, as values (nothing here is text to parse)."""

    service: str
    month: date
    raw_bytes: int | None  # the raw file's size; None: no raw file
    # The raw file's source record when one describes it (the same length), else None.
    raw_record: SourceIdentity | None
    # False only when a readable source record gives another length than the raw file's.
    raw_matches_record: bool
    manifest: Manifest | None  # the manifest as stored (readable), whatever it describes
    # Whether the manifest describes the Parquet file beside it (size, footer's rows, row
    # groups and schema); None when not asked (``check_parquet=False``) or no manifest.
    parquet_described: bool | None
    # The sha256 of the manifest's bytes as stored (the gcs sink's copy must be these
    # bytes); None without a manifest file.
    manifest_sha256: str | None = None
    # The raw file's source record's section saying the Parquet at the month's key was
    # converted from this raw file while it downloaded (None: it was not, or no record
    # describes the raw file).
    converted_while_downloading: ConvertedParquet | None = None
    # Whether that Parquet is still at the key as converted (size, footer's rows, row groups
    # and schema); None when not asked (``check_parquet=False``) or there is no section.
    converted_described: bool | None = None

    @property
    def valid_manifest(self) -> Manifest | None:
        """The manifest, when it describes the Parquet file beside it."""
        return self.manifest if self.parquet_described else None

    @property
    def absent(self) -> bool:
        """The lake does not hold the month: no manifest describing a Parquet file, no raw
        file."""
        return self.valid_manifest is None and self.raw_bytes is None

    @property
    def made_from_raw(self) -> bool:
        """The manifest was made from the raw file there (its length and source record); a
        raw file deleted to save room contradicts nothing."""
        if self.manifest is None:
            return False
        if self.raw_bytes is None:
            return True
        return self.manifest.made_from(self.raw_bytes, self.raw_record)

    @property
    def parquet_complete(self) -> bool:
        """``ParquetizeMonth``'s completeness: a valid manifest made from the raw file."""
        return self.valid_manifest is not None and self.made_from_raw

    @property
    def raw_complete(self) -> bool:
        """``DownloadMonth``'s completeness: the raw file is there and is the one its
        source record describes (when it has one)."""
        return self.raw_bytes is not None and self.raw_matches_record

    @property
    def parquet_to_take(self) -> ConvertedParquet | None:
        """The Parquet converted while the raw file downloaded, when ``ParquetizeMonth``
        can take it as it is (writing only its manifest): it is still at the key as
        converted, from the raw file there, by this pipeline version."""
        section = self.converted_while_downloading
        if section is None or not self.converted_described:
            return None
        return section if section.pipeline_version == __version__ else None

    @property
    def recorded_source(self) -> SourceIdentity | None:
        """What the lake recorded of the month's source: the manifest's record, else (a
        conversion that did not finish) the raw file's; None when it holds neither."""
        return self.manifest.source_identity if self.manifest else self.raw_record


def month_facts(the_lake: Lake, service: Service, month: date, source_format: str, *,
                check_parquet: bool = True) -> LakeFacts:
    """The month's lake facts. ``check_parquet``: also read the Parquet file's footer to
    tell whether the manifest describes it (``status``, completeness); without it only the
    small files and the raw file's size are read (what the source recorded, rows)."""
    files = month_files(the_lake, service, month, source_format)
    raw_bytes = files.raw.size()
    record_text = read_text(files.source_record) if raw_bytes is not None else None
    recorded = _identity(record_text)
    manifest_text = read_text(files.manifest)
    manifest = _manifest(manifest_text)
    describes = recorded is not None and recorded.length == raw_bytes
    converted = ConvertedParquet.from_record(record_text) if describes else None
    if converted is not None and (converted.key != parquet_key(service, month)
                                  or converted.stats.source_bytes != raw_bytes):
        converted = None  # a record copied from another month, or a raw file's not there
    described = converted_described = None
    if check_parquet and (manifest is not None or converted is not None):
        size, footer = files.parquet.size(), _read_once(files.parquet)
        if manifest is not None:
            described = manifest.describes_file(size, footer, service.fingerprint)
        if converted is not None:
            converted_described = converted.describes_file(size, footer, service.fingerprint)
    return LakeFacts(
        service=service.name, month=month, raw_bytes=raw_bytes,
        raw_record=recorded if describes else None,
        # An unreadable record, or one without a length, contradicts nothing.
        raw_matches_record=(recorded is None or recorded.length is None
                            or recorded.length == raw_bytes),
        manifest=manifest, parquet_described=described,
        manifest_sha256=bytes_sha256(manifest_text.encode()) if manifest_text is not None else None,
        converted_while_downloading=converted, converted_described=converted_described)


def read_manifest(the_lake: Lake, service: Service, month: date) -> Manifest | None:
    """The month's manifest as stored (readable), whatever it describes; None without one."""
    return _manifest(read_text(the_lake.target(manifest_key(service, month),
                                               listed=PARQUET_PREFIX)))


def _identity(text: str | None) -> SourceIdentity | None:
    try:
        return SourceIdentity.from_json(text) if text is not None else None
    except (ValueError, TypeError, AttributeError):
        return None


def _manifest(text: str | None) -> Manifest | None:
    try:
        return Manifest.from_json(text) if text is not None else None
    except (ValueError, TypeError):
        return None


def _read_once(parquet: LakeTarget) -> Callable[[], pq.FileMetaData]:
    """The Parquet file's footer, read at most once for both judgements."""
    @cache
    def footer() -> pq.FileMetaData:
        with parquet.open("rb") as f:
            return pq.read_metadata(f)
    return footer
