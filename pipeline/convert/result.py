"""What a conversion gives: the month's Parquet described (``ParquetStats``, the same for
both converters) or a refusal (``ConversionError``, one line)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.errors import PipelineError
from pipeline.core.manifest import NewColumn


class ConversionError(PipelineError):
    """The raw file cannot become this month's Parquet. The message is one line."""


@dataclass(frozen=True)
class ParquetStats:
    """What either converter (CSV.gz here, TLC Parquet in ``normalize``) made of a month."""

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
