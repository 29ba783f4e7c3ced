"""A month's source file in the lake: ``DownloadMonth`` fetches it, ``RefetchMonth``
fetches it again when the source re-published it.

A month's raw file has a source record beside it (``*.source.json``: the ETag,
Last-Modified and length the source gave with it). The record is removed before a raw
file is replaced and written after, so a record present always describes the raw file
beside it (``pipeline.lake.month_targets``). The manifest copies it; ``ParquetizeMonth`` is
complete only while its manifest was made from the raw file that is there (same length,
same record), so once the raw file is replaced (``RefetchMonth``) the conversion runs
again, and with the new manifest every sink's load (whose completeness compares its load
log with the manifest).
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import UTC, datetime

import luigi

from pipeline import config
from pipeline.core.manifest import SourceIdentity
from pipeline.lake.keys import RAW_PREFIX, raw_key, source_record_key
from pipeline.lake.month_targets import (
    RecordedVersion,
    generation,
    read_text,
    recorded_source,
)
from pipeline.lake.targets import LakeTarget
from pipeline.source.checks import BodyCheck, GzipCsvCheck, ParquetCheck
from pipeline.source.download import DownloadReport, download
from pipeline.source.errors import NOT_PUBLISHED
from pipeline.source.month_source import month_source
from pipeline.source.policies import download_policy, probe_policy
from pipeline.source.probe import probe
from pipeline.tasks import prepared
from pipeline.tasks.base import MonthTask, megabytes
from pipeline.tasks.storage import lake


class DownloadMonth(MonthTask):
    """The month's source file exactly as published: the mirror's CSV.gz at
    ``raw/{service}/{service}_tripdata_{YYYY-MM}.csv.gz`` or TLC's Parquet at
    ``raw/{service}/{service}_tripdata_{YYYY-MM}.parquet``, as ``[source] kind`` decides for
    the month, with its source record (``.source.json``) beside it. Complete once the file
    is there (it is only ever renamed into place after its bytes checked out: length, gzip
    stream or Parquet magic and footer). Its columns and values are the conversion's to
    check, so refusing them never costs another download. A CSV month is also converted
    while it downloads, from the text its gzip check inflates, and that Parquet is kept in
    scratch for ``ParquetizeMonth`` (``pipeline.tasks.prepared``).
    """

    @property
    def source_format(self) -> str:
        return config.source().format_of(self.month)

    @property
    def url(self) -> str:
        s = config.source()
        return month_source(self.dataset, self.month, self.source_format,
                            base_url=s.base_url, parquet_base_url=s.parquet_base_url).url

    def output(self) -> LakeTarget:
        return lake().target(raw_key(self.dataset, self.month, self.source_format),
                             listed=RAW_PREFIX)

    @property
    def source_record(self) -> LakeTarget:
        """Where the source record of the raw file is (see the module's docstring)."""
        return lake().target(source_record_key(self.dataset, self.month, self.source_format),
                             listed=RAW_PREFIX)

    def recorded_source(self) -> SourceIdentity | None:
        """The raw file's source record, when there is one that describes it."""
        return recorded_source(self.output(), self.source_record)

    def complete(self) -> bool:
        """The raw file is there and is the one its source record describes (its length),
        when it has one: a raw file replaced by another (another month's) is fetched again.
        A raw file without a record (fetched before records, or a run stopped between the
        two) is taken as it is."""
        size = self.output().size()
        if size is None:
            return False
        return self.matches_record(size)

    def matches_record(self, size: int) -> bool:
        """False only when a readable source record gives another length than ``size``."""
        text = read_text(self.source_record)
        try:
            recorded = SourceIdentity.from_json(text) if text is not None else None
        except (ValueError, TypeError, AttributeError):
            return True
        return recorded is None or recorded.length is None or recorded.length == size

    def download_seconds(self) -> float | None:
        """How long the raw file's download took, as its source record says (None for a
        raw file fetched before the pipeline recorded it)."""
        text = read_text(self.source_record)
        try:
            return float(json.loads(text)["download"]["seconds"]) if text else None
        except (ValueError, KeyError, TypeError):
            return None

    def verified_by(self) -> str | None:
        """What proved the raw file's bytes, as its source record says (None: not said)."""
        text = read_text(self.source_record)
        try:
            return str(json.loads(text)["verified_by"]) if text else None
        except (ValueError, KeyError, TypeError):
            return None

    def published(self) -> SourceIdentity:
        """What the source says the month's file is now (an HTTP HEAD); NotPublished when
        it has no such file."""
        return probe(self.url, label=self.label, policy=probe_policy(config.source()),
                     missing=NOT_PUBLISHED[self.source_format])

    def run(self) -> None:
        self.fetch(shown_on=self)

    def fetch(self, shown_on: MonthTask) -> DownloadReport:
        """Download the month over its raw file (atomically), then write its record;
        progress is shown on the task ``shown_on``."""
        # The record goes first: it comes back only beside the file it describes.
        record = self.source_record
        record.remove()
        target = self.output()
        seen = target.stat()
        started = time.monotonic()
        with self._preparing() as prepare:
            with target.staging() as staged:
                report = download(
                    self.url,
                    staged.path,
                    new_check=prepare.new_check if prepare else self._check_kind(),
                    label=self.label,
                    policy=download_policy(config.source()),
                    progress=lambda done, total: shown_on.report_progress(
                        done, total, f"downloaded {megabytes(done)} of {megabytes(total)}"),
                    missing=NOT_PUBLISHED[self.source_format],
                    # A Parquet file's footer cannot see spliced bytes; a gzip's CRC-32 can.
                    resume_unverified=self.source_format != "parquet",
                )
                committed = staged.commit(
                    if_generation=generation(seen), progress=shown_on.store_progress,
                    # Known already: a bucket lake's upload need not read the file twice.
                    sha256=prepare.raw_sha256 if prepare else None)
            identity = SourceIdentity(report.etag, report.last_modified, report.bytes)
            with record.staging() as staged:
                staged.path.write_text(identity.to_json(
                    url=report.url, fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    verified_by=report.verified_by,
                    # What the download did, copied into the manifest's run figures.
                    download={"seconds": round(time.monotonic() - started, 3),
                              "fetched": report.fetched, "attempts": report.attempts,
                              "resumed": report.resumed}))
                staged.commit(if_generation=0)
            if prepare:
                prepare.keep(committed)
        return report

    def _check_kind(self) -> type[BodyCheck]:
        return ParquetCheck if self.source_format == "parquet" else GzipCsvCheck

    def _preparing(self) -> contextlib.AbstractContextManager[
            prepared.PrepareWhileDownloading | None]:
        """A CSV month is converted while it downloads (``pipeline.tasks.prepared``) unless
        ``[pipeline] convert_while_downloading`` is off."""
        if self.source_format == "csv" and config.pipeline().convert_while_downloading:
            return prepared.PrepareWhileDownloading(self.dataset, self.month)
        return contextlib.nullcontext()


class RefetchMonth(MonthTask):
    """The month's source file fetched again because the source re-published it: the new
    file replaces the raw file (atomically) and its source record. Complete when the
    record names ``version`` (the new file's ETag, as a HEAD request gave it) and describes
    the raw file. ``ParquetizeMonth`` then no longer matches the raw file and runs again;
    with its new manifest, ``IngestMonth`` reloads every sink (``taxi-pipeline refresh``
    runs the three in turn: a sink looks complete until the manifest changes).
    """

    version: str = luigi.Parameter(
        description="the re-published file's ETag (else Last-Modified, else its length)")

    def download_month(self) -> DownloadMonth:
        return DownloadMonth(service=self.service, month=self.month)

    def output(self) -> RecordedVersion:
        download_month = self.download_month()
        return RecordedVersion(download_month.output(), download_month.source_record,
                               self.version, self.label)

    def run(self) -> None:
        report = self.download_month().fetch(shown_on=self)
        self.report(f"fetched {megabytes(report.bytes)} again (ETag {report.etag})", 100)
