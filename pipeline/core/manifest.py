"""The manifest: what a month's Parquet file is, written beside it after it is complete.

It is the evidence behind ``complete()``, behind ``status`` and behind the warehouses'
row-count reconciliation. ``describes()`` checks it against the file without reading
the data: size, footer row count and schema fingerprint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
    # What the run that wrote the month did (``run_figures``): seconds per stage, rows,
    # bytes, rows per second. Empty in manifests written before it was recorded.
    run: dict[str, Any] = field(default_factory=dict)
    # Rows per data-quality check (pipeline.convert.quality); None where a check does not
    # apply. Empty in manifests written before the checks existed.
    quality: dict[str, int | None] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        fields = json.loads(text)
        fields["dropped_columns"] = tuple(fields.get("dropped_columns", ()))
        return cls(**fields)

    def describes(self, parquet: Path, expected_fingerprint: str) -> bool:
        """True when ``parquet`` is the file this manifest was written for."""
        if self.schema_fingerprint != expected_fingerprint or self.format != FORMAT:
            return False
        try:
            if parquet.stat().st_size != self.parquet_bytes:
                return False
            meta = pq.read_metadata(parquet)
        except (OSError, ValueError):
            return False
        return (
            meta.num_rows == self.rows
            and meta.num_row_groups == self.row_groups
            and schema_fingerprint(meta.schema.to_arrow_schema()) == self.schema_fingerprint
        )


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


def read_manifest(path: Path) -> Manifest | None:
    """The manifest at ``path``, or None when it is missing or unreadable."""
    try:
        return Manifest.from_json(path.read_text())
    except (OSError, ValueError, TypeError):
        return None
