"""The manifest: what a month's Parquet file is, written beside it after it is complete.

It is the evidence behind ``complete()``, behind ``status`` and behind the warehouses'
row-count reconciliation. ``describes()`` checks it against the file without reading
the data: size, footer row count and schema fingerprint. It also says what the source
file was when it was fetched (``SourceIdentity``: ETag, Last-Modified, length), so that a
month the source re-publishes later is noticed, and which source columns the registry did
not know (``new_columns``: kept in the raw file only).

``ParquetStats`` is what a conversion made of a month, the figures a manifest copies; a
CSV month converted while it downloaded has them in its source record instead, until its
manifest is written (``ConvertedParquet``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.core.service import schema_fingerprint

FORMAT = 1


@dataclass(frozen=True)
class SourceIdentity:
    """What the source said a file was when it served it: its ``ETag``, its
    ``Last-Modified`` (as sent) and its length in bytes; None for what it did not say."""

    etag: str | None = None
    last_modified: str | None = None
    length: int | None = None

    def change_from(self, earlier: SourceIdentity) -> str | None:
        """How the source's file differs from ``earlier`` (a reason), or None when it does
        not, as far as both say: the ETag when both have one, else Last-Modified, else the
        length."""
        for what, now, then in (("ETag", self.etag, earlier.etag),
                                ("Last-Modified", self.last_modified, earlier.last_modified),
                                ("length", self.length, earlier.length)):
            if now is not None and then is not None:
                return None if now == then else f"{what} {then} -> {now}"
        return None

    @property
    def known(self) -> bool:
        return self.etag is not None or self.last_modified is not None

    def to_json(self, **extra: object) -> str:
        return json.dumps(asdict(self) | extra, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SourceIdentity:
        fields = json.loads(text)
        length = fields.get("length")
        return cls(etag=fields.get("etag"), last_modified=fields.get("last_modified"),
                   length=int(length) if length is not None else None)


def read_source_identity(path: Path) -> SourceIdentity | None:
    """The source record at ``path`` (written beside a raw file), or None when it is
    missing or unreadable."""
    try:
        return SourceIdentity.from_json(path.read_text())
    except (OSError, ValueError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class NewColumn:
    """A source column the registry does not know: kept in the raw file, not in the Parquet."""

    name: str
    type: str  # its Arrow type in the source file
    non_null: int  # rows holding a value

    def describe(self) -> str:
        return f"{self.name} ({self.type}, {self.non_null:,} non-null)"


@dataclass(frozen=True)
class ParquetStats:
    """What either converter (CSV.gz in ``pipeline.convert.parquetize``, TLC Parquet in
    ``pipeline.convert.normalize``) made of a month."""

    rows: int
    rows_outside_month: int
    row_groups: int
    source_bytes: int
    source_sha256: str
    parquet_bytes: int
    parquet_sha256: str
    # Source columns dropped (2009-2010 coordinates, writer artefacts) and source columns
    # the registry does not know, kept in the raw file only (TLC Parquet months).
    dropped_columns: tuple[str, ...] = ()
    new_columns: tuple[NewColumn, ...] = ()
    # Rows per data-quality check, counted by the month writer (pipeline.convert.quality).
    quality: dict[str, int | None] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> ParquetStats:
        return cls(**fields | {
            "dropped_columns": tuple(fields.get("dropped_columns", ())),
            "new_columns": tuple(NewColumn(**c) for c in fields.get("new_columns", ()))})


@dataclass(frozen=True)
class ConvertedParquet:
    """A month's Parquet converted while its raw file downloaded: the section
    (``SECTION``) of the raw file's source record saying that the Parquet at ``key`` was
    made from this raw file, what it holds (``stats``), how long the conversion took, and
    by which pipeline version and schema. The record is written after both files, so a
    record present describes them as committed; ``describes_file`` tells whether the
    Parquet at the key is still that file."""

    SECTION = "converted_while_downloading"

    key: str
    stats: ParquetStats
    convert_seconds: float
    schema_fingerprint: str
    pipeline_version: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, text: str | None) -> ConvertedParquet | None:
        """The section of the source record ``text``; None when it has none (or an
        unreadable one: nothing is taken on its word then)."""
        try:
            section = json.loads(text)[cls.SECTION] if text is not None else None
            if section is None:
                return None
            return cls(key=str(section["key"]), stats=ParquetStats.from_dict(section["stats"]),
                       convert_seconds=float(section["convert_seconds"]),
                       schema_fingerprint=str(section["schema_fingerprint"]),
                       pipeline_version=str(section["pipeline_version"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def describes_file(self, size: int | None, footer: Callable[[], pq.FileMetaData],
                       expected_fingerprint: str) -> bool:
        """True when a file of ``size`` bytes whose footer ``footer()`` reads is the Parquet
        this section describes, with the schema ``expected_fingerprint``."""
        return self.schema_fingerprint == expected_fingerprint and _parquet_matches(
            size, footer, self.stats.parquet_bytes, self.stats.rows, self.stats.row_groups,
            expected_fingerprint)


@dataclass(frozen=True)
class Manifest:
    service: str
    month: str
    source_url: str
    source_bytes: int
    source_sha256: str
    rows: int
    rows_outside_month: int
    schema_fingerprint: str
    parquet_bytes: int
    parquet_sha256: str
    row_groups: int
    pipeline_version: str
    created_at: str
    format: int = FORMAT
    # Legacy source columns with no place in the canonical schema (2009-2010 yellow's
    # coordinates) and writer artefacts (``__index_level_0__``), dropped by the Parquet
    # normalisation.
    dropped_columns: tuple[str, ...] = ()
    # Source columns the registry does not know, kept in the raw file only.
    new_columns: tuple[NewColumn, ...] = ()
    # The source file as fetched (its length is ``source_bytes``); None when the source
    # did not say, or the raw file was fetched before the pipeline recorded it.
    source_etag: str | None = None
    source_last_modified: str | None = None
    # What proved the raw file's bytes are the source's (its ETag's MD5 or multipart
    # digest), or why nothing could; None in manifests written before it was recorded.
    source_check: str | None = None

    # What the run that wrote the month did (``run_figures``): seconds per stage, rows,
    # bytes, rows per second. Empty in manifests written before it was recorded.
    run: dict[str, Any] = field(default_factory=dict)
    # Rows per data-quality check (pipeline.convert.quality); None where a check does not
    # apply. Empty in manifests written before the checks existed.
    quality: dict[str, int | None] = field(default_factory=dict)

    @property
    def source_identity(self) -> SourceIdentity:
        return SourceIdentity(self.source_etag, self.source_last_modified, self.source_bytes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        fields = json.loads(text)
        fields["dropped_columns"] = tuple(fields.get("dropped_columns", ()))
        fields["new_columns"] = tuple(NewColumn(**c) for c in fields.get("new_columns", ()))
        return cls(**fields)

    def made_from(self, raw_bytes: int, source: SourceIdentity | None) -> bool:
        """True when this manifest was made from a raw file of ``raw_bytes`` bytes whose
        source record (None when there is none) is ``source``: a raw file replaced since
        (a month re-published upstream and fetched again) no longer matches."""
        if raw_bytes != self.source_bytes:
            return False
        return source is None or (source.etag, source.last_modified) == (
            self.source_etag, self.source_last_modified)

    def describes_file(self, size: int | None, footer: Callable[[], pq.FileMetaData],
                       expected_fingerprint: str) -> bool:
        """True when a file of ``size`` bytes whose footer ``footer()`` reads is the one this
        manifest was written for (wherever the file is stored)."""
        if self.schema_fingerprint != expected_fingerprint or self.format != FORMAT:
            return False
        return _parquet_matches(size, footer, self.parquet_bytes, self.rows, self.row_groups,
                                self.schema_fingerprint)


def _parquet_matches(size: int | None, footer: Callable[[], pq.FileMetaData],
                     parquet_bytes: int, rows: int, row_groups: int, fingerprint: str) -> bool:
    """A Parquet file of ``size`` bytes whose footer ``footer()`` reads has the size, rows,
    row groups and schema fingerprint given (the footer is read only when the size is)."""
    if size != parquet_bytes:
        return False
    try:
        meta = footer()
    except (OSError, ValueError):
        return False
    return (meta.num_rows == rows and meta.num_row_groups == row_groups
            and schema_fingerprint(meta.schema.to_arrow_schema()) == fingerprint)


def run_figures(rows: int, source_bytes: int, parquet_bytes: int,
                seconds: dict[str, float | None]) -> dict[str, Any]:
    """The manifest's ``run`` section: ``seconds`` per stage (``download``, ``convert``;
    None for a stage not measured, e.g. a raw file fetched by an older version), rows,
    bytes read and written, and the conversion's rows per second."""
    convert = seconds.get("convert")
    return {
        "seconds": {stage: None if s is None else round(s, 3) for stage, s in seconds.items()},
        "rows": rows,
        "bytes": {"source": source_bytes, "parquet": parquet_bytes},
        "rows_per_second": round(rows / convert) if convert else None,
    }
