"""The manifest: what a month's Parquet file is, written beside it after it is complete.

It is the evidence behind ``complete()``, behind ``status`` and behind the warehouses'
row-count reconciliation. ``describes()`` checks it against the file without reading
the data: size, footer row count and schema fingerprint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.core.datasets import schema_fingerprint

FORMAT = 1


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
    # coordinates), dropped by the Parquet normalisation.
    dropped_columns: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        fields = json.loads(text)
        fields["dropped_columns"] = tuple(fields.get("dropped_columns", ()))
        return cls(**fields)

    def describes(self, parquet: Path, expected_fingerprint: str) -> bool:
        """True when ``parquet`` is the file this manifest was written for."""
        try:
            size = parquet.stat().st_size
        except OSError:
            return False
        return self.describes_file(size, lambda: pq.read_metadata(parquet), expected_fingerprint)

    def describes_file(self, size: int | None, footer: Callable[[], pq.FileMetaData],
                       expected_fingerprint: str) -> bool:
        """True when a file of ``size`` bytes whose footer ``footer()`` reads is the one this
        manifest was written for (wherever the file is stored)."""
        if self.schema_fingerprint != expected_fingerprint or self.format != FORMAT:
            return False
        if size != self.parquet_bytes:
            return False
        try:
            meta = footer()
        except (OSError, ValueError):
            return False
        return (
            meta.num_rows == self.rows
            and meta.num_row_groups == self.row_groups
            and schema_fingerprint(meta.schema.to_arrow_schema()) == self.schema_fingerprint
        )


def read_manifest(path: Path) -> Manifest | None:
    """The manifest at ``path``, or None when it is missing or unreadable."""
    try:
        return Manifest.from_json(path.read_text())
    except (OSError, ValueError, TypeError):
        return None
