"""What a conversion gives: the month's Parquet described (``ParquetStats``, the same for
both converters) or a refusal (``ConversionError``, one line)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.errors import PipelineError
from pipeline.core.manifest import NewColumn


class ConversionError(PipelineError):
    """The raw file cannot become this month's Parquet. The message is one line."""


def show_invisible(text: str) -> str:
    """``text`` with the characters a terminal does not show (a byte-order mark, zero-width
    spaces, control characters) written as escapes: ``\\ufeffVendorID``, not ``VendorID``
    twice in one header error."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode()
                   for c in text)


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
    # Rows per data-quality check, counted by the month writer (pipeline.convert.quality).
    quality: dict[str, int | None] = field(default_factory=dict)
