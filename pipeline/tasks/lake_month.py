"""The lake side of a month: download the source file, convert it to Parquet with its
manifest; and the zone lookup every warehouse load needs."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import luigi

from pipeline import config
from pipeline.convert.normalize import normalize
from pipeline.convert.parquetize import ParquetStats, parquetize
from pipeline.core.datasets import ZONES, Service
from pipeline.core.manifest import Manifest, read_manifest, run_figures
from pipeline.core.months import month_key
from pipeline.core.version import __version__
from pipeline.lake.keys import (
    atomic_path,
    local_path,
    manifest_key,
    parquet_key,
    raw_key,
    write_text_atomically,
    zones_key,
)
from pipeline.source.download import (
    GzipCsvCheck,
    ParquetCheck,
    PlainCsvCheck,
    RetryPolicy,
    SourceError,
    download,
    redact,
)
from pipeline.tasks.base import MonthTask, PipelineTask, megabytes
from pipeline.tasks.month_report import check_quality, download_seconds, record_download


def lake_file(key: str) -> Path:
    return local_path(config.lake().path(), key)


def retry_policy() -> RetryPolicy:
    s = config.source()
    return RetryPolicy(timeout=s.timeout, attempts=s.retries, backoff=s.backoff,
                       backoff_max=s.backoff_max)


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
    the month. Complete once it is there (it is only ever renamed into place after its
    length and its gzip stream and header, or its Parquet magic and footer, checked out).
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

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(lake_file(raw_key(self.dataset, self.month,
                                                   self.source_format)))

    def run(self) -> None:
        columns, check = self.dataset.source_plan, header_check(self.dataset.canonical_header)

        def new_check() -> GzipCsvCheck | ParquetCheck:
            if self.source_format == "parquet":
                return ParquetCheck(columns)
            return GzipCsvCheck(check)

        started = time.monotonic()
        report = download(
            self.url,
            Path(self.output().path),
            new_check=new_check,
            label=self.label,
            policy=retry_policy(),
            progress=lambda done, total: self.report_progress(
                done, total, f"downloaded {megabytes(done)} of {megabytes(total)}"),
        )
        record_download(Path(self.output().path), time.monotonic() - started, report)


class ManifestTarget(luigi.Target):
    """Exists when the manifest is there and describes the Parquet file beside it."""

    def __init__(self, manifest: Path, parquet: Path, service: Service) -> None:
        self.path, self.parquet, self.service = manifest, parquet, service

    def exists(self) -> bool:
        return self.valid() is not None

    def read(self) -> Manifest | None:
        return read_manifest(self.path)

    def valid(self) -> Manifest | None:
        """The manifest, when it describes the Parquet file beside it; else None."""
        manifest = self.read()
        if manifest is None or not manifest.describes(self.parquet, self.service.fingerprint):
            return None
        return manifest


class ParquetizeMonth(MonthTask):
    """The month as Parquet with the registry's schema, at
    ``parquet/{service}/year={YYYY}/month={MM}/{service}_tripdata_{YYYY-MM}.parquet``,
    and its ``_manifest.json``, written last. Complete when the manifest describes the
    file (size, rows, row groups, schema fingerprint), not merely when a path exists.
    """

    def requires(self) -> DownloadMonth:
        return DownloadMonth(service=self.service, month=self.month)

    def output(self) -> ManifestTarget:
        return ManifestTarget(
            lake_file(manifest_key(self.dataset, self.month)),
            lake_file(parquet_key(self.dataset, self.month)),
            self.dataset,
        )

    def run(self) -> None:
        target = self.output()
        raw = Path(self.input().path)
        # The old manifest goes first: from here on nothing claims the month is complete.
        target.path.unlink(missing_ok=True)
        started = time.monotonic()
        with atomic_path(target.parquet) as tmp:
            stats = self._convert(raw, tmp)
            converted = time.monotonic() - started
            # A blocking quality check fails the month here, before the file is renamed in.
            check_quality(self.label, stats.quality, stats.rows)
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
            dropped_columns=tuple(getattr(stats, "dropped_columns", ())),
            run=run_figures(stats.rows, stats.source_bytes, stats.parquet_bytes,
                            {"download": download_seconds(raw), "convert": converted}),
            quality=stats.quality,
        )
        write_text_atomically(target.path, manifest.to_json())
        self.report(
            f"{stats.rows:,} rows ({stats.rows_outside_month:,} outside the month), "
            f"{megabytes(stats.parquet_bytes)} of Parquet")

    def _convert(self, raw: Path, out: Path) -> ParquetStats:
        """CSV.gz through ``parquetize``, TLC Parquet through ``normalize``: one result."""
        if raw.suffix == ".parquet":
            return normalize(
                self.dataset, self.month, raw, out,
                progress=lambda done, total: self.report_progress(
                    done, total, f"normalised {done:,} of {total:,} rows"),
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

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(lake_file(zones_key()))

    def run(self) -> None:
        check = header_check(_zones_header)
        download(
            config.source().zones_url,
            Path(self.output().path),
            new_check=lambda: PlainCsvCheck(check),
            label="zones",
            policy=retry_policy(),
        )
