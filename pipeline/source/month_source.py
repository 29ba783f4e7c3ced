"""Where one month of a service is published, and what the source says of it now, without
luigi's task graph: the URL (the mirror's CSV.gz or TLC's Parquet, as the month's source
format says), the label a failure names, and an HTTP ``HEAD`` for its identity.

The settings (base URLs, the month's format, the retry policy) are passed in, read by the
caller at its edge; ``DownloadMonth.url``/``published`` spell the same rule from
``[source]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pipeline.core.manifest import SourceIdentity
from pipeline.core.months import month_key
from pipeline.core.service import Service
from pipeline.source.download import NOT_PUBLISHED, RetryPolicy
from pipeline.source.probe import probe


@dataclass(frozen=True)
class MonthSource:
    """One month's file at the source."""

    url: str
    label: str  # "yellow 2021-01": how a failure names the month
    source_format: str  # "csv" or "parquet"

    def published(self, policy: RetryPolicy) -> SourceIdentity:
        """What the source says the file is now (an HTTP HEAD); NotPublished when it has no
        such file, SourceError (one line) when it cannot tell."""
        return probe(self.url, label=self.label, policy=policy,
                     missing=NOT_PUBLISHED[self.source_format])


def month_source(service: Service, month: date, source_format: str, *, base_url: str,
                 parquet_base_url: str) -> MonthSource:
    """The month's file: ``{parquet_base_url}/{file}.parquet`` for a Parquet month, else
    ``{base_url}/{service}/{file}.csv.gz``."""
    key = month_key(month)
    url = (service.parquet_url(parquet_base_url, key) if source_format == "parquet"
           else service.source_url(base_url, key))
    return MonthSource(url, f"{service.name} {key}", source_format)
