"""The lake side of a month: download the source file, convert it to Parquet with its
manifest; fetch a month again when its source re-published it; and the zone lookup every
warehouse load needs.

A month's raw file has a source record beside it (``*.source.json``: the ETag,
Last-Modified and length the source gave with it). The record is removed before a raw
file is replaced and written after, so a record present always describes the raw file
beside it. The manifest copies it; ``ParquetizeMonth`` is complete only while its manifest
was made from the raw file that is there (same length, same record), so once the raw file
is replaced (``RefetchMonth``) the conversion runs again, and with the new manifest every
sink's load (whose completeness compares its load log with the manifest).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import luigi
import pyarrow.parquet as pq

from pipeline import config
from pipeline.convert.normalize import normalize
from pipeline.convert.parquetize import parquetize
from pipeline.convert.result import ParquetStats
from pipeline.core.datasets import ZONES, Service
from pipeline.core.manifest import Manifest, SourceIdentity, run_figures
from pipeline.core.months import month_key
from pipeline.core.text import redact
from pipeline.core.version import __version__
from pipeline.lake.keys import (
    PARQUET_PREFIX,
    RAW_PREFIX,
    manifest_key,
    parquet_key,
    raw_key,
    source_record_key,
    zones_key,
)
from pipeline.lake.targets import LakeError, LakeTarget, ObjectInfo, file_digests
from pipeline.source.download import (
    NOT_PUBLISHED,
    BodyCheck,
    DownloadReport,
    GzipCsvCheck,
    ParquetCheck,
    PlainCsvCheck,
    RetryPolicy,
    SourceError,
    download,
)
from pipeline.source.probe import probe
from pipeline.tasks import prepared
from pipeline.tasks.base import MonthTask, PipelineTask, megabytes
from pipeline.tasks.month_report import check_quality
from pipeline.tasks.storage import lake

# Luigi's own logger: its lines reach the console of every run.
log = logging.getLogger("luigi-interface")


def retry_policy() -> RetryPolicy:
    s = config.source()
    return RetryPolicy(timeout=s.timeout, attempts=s.retries, backoff=s.backoff,
                       backoff_max=s.backoff_max)


def probe_policy() -> RetryPolicy:
    """A question to the source (HEAD) is cheap and asked of many months at once (status,
    catch-up, refresh): at most 10 s each and two attempts, so a source that does not
    answer stops a job in seconds, not in minutes."""
    s = config.source()
    return RetryPolicy(timeout=min(10.0, s.timeout), attempts=min(2, s.retries),
                       backoff=s.backoff, backoff_max=min(10.0, s.backoff_max))


def header_check(columns_of: Callable[[list[str]], list[str]]) -> Callable[[bytes], None]:
    """Turn a header-to-columns function into a check of a raw header line."""

    def check(line: bytes) -> None:
        try:
            names = line.decode("utf-8").split(",")
        except UnicodeDecodeError:
            raise SourceError("the header line is not UTF-8 text") from None
        columns_of([name.strip().strip('"') for name in names])

    return check


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
        s, key = config.source(), month_key(self.month)
        if self.source_format == "parquet":
            return self.dataset.parquet_url(s.parquet_base_url, key)
        return self.dataset.source_url(s.base_url, key)

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
        size = self.output().size()
        if size is None:
            return None
        record = read_text(self.source_record)
        try:
            identity = SourceIdentity.from_json(record) if record is not None else None
        except (ValueError, TypeError, AttributeError):
            return None
        return identity if identity is not None and identity.length == size else None

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
        return probe(self.url, label=self.label, policy=probe_policy(),
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
                    policy=retry_policy(),
                    progress=lambda done, total: shown_on.report_progress(
                        done, total, f"downloaded {megabytes(done)} of {megabytes(total)}"),
                    missing=NOT_PUBLISHED[self.source_format],
                    # A Parquet file's footer cannot see spliced bytes; a gzip's CRC-32 can.
                    resume_unverified=self.source_format != "parquet",
                )
                published = staged.publish(
                    if_generation=generation(seen), progress=shown_on.publish_progress,
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
                staged.publish(if_generation=0)
            if prepare:
                prepare.keep(published)
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


def generation(seen: ObjectInfo | None) -> int:
    """The precondition of a write that replaces what was seen: that version, or absent."""
    return (seen.generation or 0) if seen else 0


def read_text(target: LakeTarget) -> str | None:
    """A small lake file's text, or None when it is missing or unreadable."""
    if not target.exists():  # answered by a listing when many months are checked
        return None
    try:
        with target.open("rb") as f:
            return f.read().decode()
    except (OSError, UnicodeDecodeError, LakeError):
        return None


def source_version(identity: SourceIdentity) -> str:
    """One string naming a version of a source file: its ETag, else its Last-Modified,
    else its length."""
    return identity.etag or identity.last_modified or f"{identity.length} bytes"


class RecordedVersion(luigi.Target):
    """Exists when the raw file's source record describes it and names ``version``."""

    def __init__(self, download_month: DownloadMonth, version: str) -> None:
        self.download_month, self.version = download_month, version

    def __str__(self) -> str:  # named in luigi's messages about a missing output
        return f"{self.download_month.label}'s source record naming version {self.version}"

    def exists(self) -> bool:
        record = self.download_month.recorded_source()
        return record is not None and source_version(record) == self.version


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
        return RecordedVersion(self.download_month(), self.version)

    def run(self) -> None:
        report = self.download_month().fetch(shown_on=self)
        self.report(f"fetched {megabytes(report.bytes)} again (ETag {report.etag})", 100)


class ManifestTarget(luigi.Target):
    """Exists when the manifest is there and describes the Parquet file beside it (its size,
    and the footer's rows, row groups and schema). Both are lake targets: a local file or a
    bucket's object alike."""

    def __init__(self, manifest: LakeTarget, parquet: LakeTarget, service: Service) -> None:
        self.manifest, self.parquet, self.service = manifest, parquet, service

    @property
    def path(self) -> str:
        return self.manifest.path

    def __str__(self) -> str:  # named in luigi's messages about a missing output
        return f"{self.manifest.path} describing {self.parquet.path}"

    def exists(self) -> bool:
        return self.valid() is not None

    def text(self) -> str | None:
        """The manifest as stored, or None when it is missing or unreadable."""
        return read_text(self.manifest)

    def read(self) -> Manifest | None:
        text = self.text()
        try:
            return Manifest.from_json(text) if text is not None else None
        except (ValueError, TypeError):
            return None

    def valid(self) -> Manifest | None:
        """The manifest, when it describes the Parquet file beside it; else None."""
        manifest = self.read()
        if manifest is None or not manifest.describes_file(
                self.parquet.size(), self._footer, self.service.fingerprint):
            return None
        return manifest

    def _footer(self) -> pq.FileMetaData:
        with self.parquet.open("rb") as f:
            return pq.read_metadata(f)


class ParquetizeMonth(MonthTask):
    """The month as Parquet with the registry's schema, at
    ``parquet/{service}/year={YYYY}/month={MM}/{service}_tripdata_{YYYY-MM}.parquet``,
    and its ``_manifest.json``, written last. Complete when the manifest describes the
    file (size, rows, row groups, schema fingerprint), not merely when a path exists. The
    Parquet its download converted is taken when it was made from the raw file there now;
    otherwise the raw file is converted.
    """

    def requires(self) -> DownloadMonth:
        return DownloadMonth(service=self.service, month=self.month)

    def output(self) -> ManifestTarget:
        the_lake = lake()
        return ManifestTarget(
            the_lake.target(manifest_key(self.dataset, self.month), listed=PARQUET_PREFIX),
            the_lake.target(parquet_key(self.dataset, self.month), listed=PARQUET_PREFIX),
            self.dataset,
        )

    def complete(self) -> bool:
        """The manifest describes the Parquet file, and was made from the raw file that is
        there (its length and source record; a raw file deleted to save room contradicts
        nothing)."""
        manifest = self.output().valid()
        return manifest is not None and self.made_from_raw(manifest)

    def made_from_raw(self, manifest: Manifest) -> bool:
        download_month = self.requires()
        size = download_month.output().size()
        if size is None:
            return True
        return manifest.made_from(size, download_month.recorded_source())

    def rebuild(self, why: str) -> Manifest:
        """Convert the month again from its raw file, because its Parquet is not the file
        its manifest describes (``why``), and return the new manifest. When the raw file is
        gone, or is not the one the manifest was made from either (its sha256), the month
        fails naming both files and what to do; its manifest, false, is removed first, so
        nothing claims the month is complete."""
        target, raw = self.output(), self.requires().output()
        previous = target.read()
        again = (f"`taxi-pipeline ingest --month {month_key(self.month)} --services "
                 f"{self.service}`")
        if not raw.exists():
            target.manifest.remove()
            raise LakeError(f"{self.label}: {why}; its raw file {raw.path} is gone too: run "
                            f"{again} again to download and convert the month")
        if previous is not None:
            with raw.local_file() as path:
                raw_sha256 = file_digests(path).sha256
            if raw_sha256 != previous.source_sha256:
                target.manifest.remove()
                raise LakeError(
                    f"{self.label}: {why}; and its raw file {raw.path} is not the one the "
                    f"manifest was made from either (sha256 {raw_sha256[:16]}…, manifest "
                    f"{previous.source_sha256[:16]}…): remove {raw.path} and run {again} to "
                    "download the month again")
        self.run()
        manifest = target.read()
        if manifest is None:
            raise LakeError(f"{self.label}: the conversion again left no manifest at "
                            f"{target.path}")
        return manifest

    def run(self) -> None:
        target = self.output()
        recorded = self.requires().recorded_source()
        previous = target.read()
        seen = target.parquet.stat()
        # The old manifest goes first: from here on nothing claims the month is complete.
        target.manifest.remove()
        try:
            with target.parquet.staging() as staged:
                stats, converted = self._make(staged.path)
                # A blocking quality check fails the month here, before the file is published.
                check_quality(self.label, stats.quality, stats.rows)
                staged.publish(if_generation=generation(seen), sha256=stats.parquet_sha256,
                               progress=self.publish_progress)
        finally:
            prepared.discard(self.dataset, self.month)
        identity = recorded
        if recorded is None and previous and previous.source_sha256 == stats.source_sha256:
            identity = previous.source_identity  # the same bytes: the record was lost
        if stats.new_columns:
            log.warning("%s: columns the registry does not know, kept in the raw file only: "
                        "%s", self.label, ", ".join(c.describe() for c in stats.new_columns))
        manifest = Manifest(
            service=self.service,
            month=month_key(self.month),
            source_url=redact(self.requires().url),
            source_bytes=stats.source_bytes,
            source_sha256=stats.source_sha256,
            rows=stats.rows,
            rows_outside_month=stats.rows_outside_month,
            schema_fingerprint=self.dataset.fingerprint,
            parquet_bytes=stats.parquet_bytes,
            parquet_sha256=stats.parquet_sha256,
            row_groups=stats.row_groups,
            pipeline_version=__version__,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            dropped_columns=stats.dropped_columns,
            new_columns=stats.new_columns,
            source_etag=identity.etag if identity else None,
            source_last_modified=identity.last_modified if identity else None,
            source_check=self.requires().verified_by(),
            run=run_figures(stats.rows, stats.source_bytes, stats.parquet_bytes,
                            {"download": self.requires().download_seconds(),
                             "convert": converted}),
            quality=stats.quality,
        )
        # Last: only now does the month count as complete.
        with target.manifest.staging() as staged:
            staged.path.write_text(manifest.to_json())
            staged.publish(if_generation=0)
        self.report(
            f"{stats.rows:,} rows ({stats.rows_outside_month:,} outside the month), "
            f"{megabytes(stats.parquet_bytes)} of Parquet")

    def _make(self, out: Path) -> tuple[ParquetStats, float]:
        """The month's Parquet at ``out`` and the seconds its conversion took: the one its
        download converted when it is of the raw file there now, else a conversion of it."""
        ready = prepared.take(self.dataset, self.month, self.input())
        if ready is not None:
            try:
                ready.move_to(out)
            except FileNotFoundError:
                pass  # taken meanwhile by another run of this month on the host
            else:
                log.info("%s: took the Parquet converted while downloading", self.label)
                return ready.stats, ready.convert_seconds
        started = time.monotonic()
        with self.input().local_file() as raw:
            stats = self._convert(raw, out)
        return stats, time.monotonic() - started

    def _convert(self, raw: Path, out: Path) -> ParquetStats:
        """CSV.gz through ``parquetize``, TLC Parquet through ``normalize``: one result."""
        if raw.suffix == ".parquet":
            return normalize(
                self.dataset, self.month, raw, out,
                progress=lambda done, total: self.report_progress(
                    done, total, f"normalised {done:,} of {total:,} rows"),
                new_columns=config.source().new_columns,
            )
        return parquetize(
            self.dataset, self.month, raw, out,
            progress=lambda done, total: self.report_progress(
                done, total, f"converted {megabytes(done)} of {megabytes(total)} (gzip)"),
        )


def _zones_header(names: list[str]) -> list[str]:
    expected = ZONES.schema.names
    if [n.casefold() for n in names] != [n.casefold() for n in expected]:
        raise SourceError(f"zones header is {names}, expected {expected}")
    return expected


class Zones(PipelineTask):
    """The taxi zone lookup (265 zones) as published, at ``raw/zones/taxi_zone_lookup.csv``."""

    def output(self) -> LakeTarget:
        return lake().target(zones_key(), listed=RAW_PREFIX)

    def run(self) -> None:
        check = header_check(_zones_header)
        target = self.output()
        seen = target.stat()
        with target.staging() as staged:
            download(
                config.source().zones_url,
                staged.path,
                new_check=lambda: PlainCsvCheck(check),
                label="zones",
                policy=retry_policy(),
            )
            staged.publish(if_generation=generation(seen))
