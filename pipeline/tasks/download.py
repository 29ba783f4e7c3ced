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

A CSV month is also converted while it downloads (``[pipeline] convert_while_downloading``,
on by default): the gzip check inflates the month anyway, and hands the text to a
conversion (``ParquetizeStream``), so the gzip is inflated once and the month converts at
the network's pace. Once the raw file is committed, the Parquet is committed at the month's
own Parquet key (the old manifest removed first, so nothing claims the month complete while
the Parquet changes), and the source record, written last, says so
(``ConvertedParquet``); ``ParquetizeMonth`` then checks the month's quality and writes only
its manifest. The download's outcome never depends on the conversion: a month it refuses
is downloaded and committed all the same, with no such section and no new Parquet, and its
``ParquetizeMonth`` converts the raw file and fails there with its one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from datetime import UTC, date, datetime

import luigi

from pipeline import config
from pipeline.convert.parquetize import ParquetizeStream
from pipeline.core.errors import PipelineError
from pipeline.core.manifest import ConvertedParquet, ParquetStats, SourceIdentity
from pipeline.core.months import month_key
from pipeline.core.service import Service
from pipeline.core.version import __version__
from pipeline.lake.keys import RAW_PREFIX, parquet_key, raw_key, source_record_key
from pipeline.lake.month_facts import LakeFacts, month_facts, month_files
from pipeline.lake.month_targets import (
    ManifestTarget,
    RecordedVersion,
    generation,
    read_text,
    recorded_source,
)
from pipeline.lake.targets import LakeTarget, ObjectInfo, Staged
from pipeline.source.checks import BodyCheck, GzipCsvCheck, ParquetCheck
from pipeline.source.download import DownloadReport, download
from pipeline.source.errors import NOT_PUBLISHED
from pipeline.source.month_source import month_source
from pipeline.source.policies import download_policy, probe_policy
from pipeline.source.probe import probe
from pipeline.tasks.base import MonthTask, megabytes
from pipeline.tasks.quality_gate import check_quality
from pipeline.tasks.storage import lake

log = logging.getLogger("luigi-interface")


class DownloadMonth(MonthTask):
    """The month's source file exactly as published: the mirror's CSV.gz at
    ``raw/{service}/{service}_tripdata_{YYYY-MM}.csv.gz`` or TLC's Parquet at
    ``raw/{service}/{service}_tripdata_{YYYY-MM}.parquet``, as ``[source] kind`` decides for
    the month, with its source record (``.source.json``) beside it. Complete once the file
    is there (it is only ever renamed into place after its bytes checked out: length, gzip
    stream or Parquet magic and footer). Its columns and values are the conversion's to
    check, so refusing them never costs another download. A CSV month is also converted
    while it downloads, from the text its gzip check inflates: that Parquet is committed at
    the month's Parquet key and the source record says it was made from this raw file
    (see the module's docstring).
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

    def facts(self, *, check_parquet: bool = False) -> LakeFacts:
        """What the lake holds of the month (``pipeline.lake.month_facts``)."""
        return month_facts(lake(), self.dataset, self.month, self.source_format,
                           check_parquet=check_parquet)

    def complete(self) -> bool:
        """The raw file is there and is the one its source record describes (its length),
        when it has one: a raw file replaced by another (another month's) is fetched again.
        A raw file without a record (fetched before records, or a run stopped between the
        two) is taken as it is (``LakeFacts.raw_complete``)."""
        return self.facts().raw_complete

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
        with self._converting() as converting:
            with target.staging() as staged:
                report = download(
                    self.url,
                    staged.path,
                    new_check=converting.new_check if converting else self._check_kind(),
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
                    sha256=converting.raw_sha256 if converting else None)
            converted = converting.commit(committed, shown_on) if converting else None
        identity = SourceIdentity(report.etag, report.last_modified, report.bytes)
        # Written last: from here on the record vouches for the raw file and, with its
        # section, for the Parquet converted from it.
        section = {ConvertedParquet.SECTION: converted.to_dict()} if converted else {}
        with record.staging() as staged:
            staged.path.write_text(identity.to_json(
                url=report.url, fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
                verified_by=report.verified_by,
                # What the download did, copied into the manifest's run figures.
                download={"seconds": round(time.monotonic() - started, 3),
                          "fetched": report.fetched, "attempts": report.attempts,
                          "resumed": report.resumed}, **section))
            staged.commit(if_generation=0)
        return report

    def _check_kind(self) -> type[BodyCheck]:
        return ParquetCheck if self.source_format == "parquet" else GzipCsvCheck

    def _converting(self) -> contextlib.AbstractContextManager[
            ConvertWhileDownloading | None]:
        """A CSV month is converted while it downloads unless ``[pipeline]
        convert_while_downloading`` is off."""
        if self.source_format == "csv" and config.pipeline().convert_while_downloading:
            return ConvertWhileDownloading(self.dataset, self.month)
        return contextlib.nullcontext()


class _ConvertingCheck:
    """The download's check of a CSV.gz month (``GzipCsvCheck``) that also hands the text
    it inflates to a conversion and hashes the bytes it sees (the raw file's sha256, which
    the conversion's figures name)."""

    def __init__(self, stream: ParquetizeStream) -> None:
        self.stream = stream
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.started = time.monotonic()
        self._gzip = GzipCsvCheck(text=stream.add)

    def feed(self, data: bytes) -> None:
        self.sha256.update(data)
        self.size += len(data)
        self._gzip.feed(data)

    def finish(self) -> None:
        self._gzip.finish()


class ConvertWhileDownloading:
    """``with ConvertWhileDownloading(service, month) as converting:``, then
    ``download(..., new_check=converting.new_check)``, commit the raw file, and
    ``converting.commit(raw, shown_on)``. The Parquet is written in the staging of the
    month's Parquet key; the block's end stops a conversion still running and removes what
    was not committed."""

    def __init__(self, service: Service, month: date) -> None:
        self.service, self.month = service, month
        self.files = month_files(lake(), service, month, "csv")
        self._stack = contextlib.ExitStack()
        self._staged: Staged | None = None
        self._check: _ConvertingCheck | None = None
        self._seen: ObjectInfo | None = None

    def __enter__(self) -> ConvertWhileDownloading:
        # What a Parquet committed meanwhile by another run would change: then ours is not.
        self._seen = self.files.parquet.stat()
        self._staged = self._stack.enter_context(self.files.parquet.staging())
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()
        self._stack.close()

    @property
    def raw_sha256(self) -> str:
        """The sha256 of the bytes the current check has seen: the raw file's, once the
        download is done."""
        assert self._check is not None
        return self._check.sha256.hexdigest()

    def new_check(self) -> BodyCheck:
        """A check for the file from its first byte (the download starts over with a new
        one when the source re-published the file meanwhile)."""
        assert self._staged is not None, "use ConvertWhileDownloading as a context manager"
        self._stop()
        self._check = _ConvertingCheck(
            ParquetizeStream(self.service, self.month, self._staged.path))
        return self._check

    def commit(self, raw: ObjectInfo, shown_on: MonthTask) -> ConvertedParquet | None:
        """Once the raw file ``raw`` is committed: the finished conversion committed at the
        month's Parquet key, and what the source record says of it; None (and one log
        line) when it did not succeed, and then the lake's Parquet is as it was."""
        check, staged = self._check, self._staged
        assert check is not None and staged is not None
        self._check = None
        label = f"{self.service.name} {month_key(self.month)}"
        try:
            stats = check.stream.finish(check.size, check.sha256.hexdigest())
            seconds = time.monotonic() - check.started
            if stats.source_bytes != raw.size:
                raise PipelineError(f"converted {stats.source_bytes:,} bytes, the raw file "
                                    f"has {raw.size:,}")
            # Refused by a blocking check: then ParquetizeMonth fails the month with it.
            check_quality(label, stats.quality, stats.rows, warn=False)
            if not self._in_the_lake(stats):
                self.files.manifest.remove()  # nothing claims the month complete meanwhile
                staged.commit(if_generation=generation(self._seen),
                              sha256=stats.parquet_sha256, progress=shown_on.store_progress)
        except Exception as e:  # the download stands; ParquetizeMonth converts the raw file
            # A refusal of the data is ParquetizeMonth's to report; anything else is news.
            level = logging.INFO if isinstance(e, PipelineError) else logging.WARNING
            log.log(level, "%s: no conversion while downloading (%s: %s); ParquetizeMonth "
                    "converts the raw file", label, type(e).__name__,
                    " ".join(str(e).split())[:200])
            return None
        return _converted(self.service, self.month, stats, seconds)

    def _in_the_lake(self, stats: ParquetStats) -> bool:
        """The lake holds this very conversion, described by its manifest (the same raw
        file fetched again): it stays as it is, and so does the month's completeness."""
        manifest = ManifestTarget(self.files.manifest, self.files.parquet,
                                  self.service).valid()
        return manifest is not None and (manifest.source_sha256, manifest.parquet_sha256) == (
            stats.source_sha256, stats.parquet_sha256)

    def _stop(self) -> None:
        if self._check is not None:
            self._check.stream.abort()
            self._check = None


def _converted(service: Service, month: date, stats: ParquetStats, seconds: float
               ) -> ConvertedParquet:
    # A CSV month has no columns to drop or to report as new.
    assert not stats.dropped_columns and not stats.new_columns
    return ConvertedParquet(key=parquet_key(service, month), stats=stats,
                            convert_seconds=round(seconds, 3),
                            schema_fingerprint=service.fingerprint, pipeline_version=__version__)


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
