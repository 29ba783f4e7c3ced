"""What a conversion gives: the month's Parquet described (``ParquetStats``, the same for
both converters) or a refusal (``ConversionError``, one line). ``ParquetStats`` is defined
beside the manifest (``pipeline.core.manifest``), which copies it, as a source record does
for a month converted while it downloaded."""

from __future__ import annotations

from pipeline.core.errors import PipelineError
from pipeline.core.manifest import ParquetStats as ParquetStats


class ConversionError(PipelineError):
    """The raw file cannot become this month's Parquet. The message is one line."""


def show_invisible(text: str) -> str:
    """``text`` with the characters a terminal does not show (a byte-order mark, zero-width
    spaces, control characters) written as escapes: ``\\ufeffVendorID``, not ``VendorID``
    twice in one header error."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode()
                   for c in text)
