"""A month as Parquet in the lake, with its manifest: ``ParquetizeMonth``.

A CSV month converted while it downloaded (``pipeline.tasks.download``) has its Parquet at
the month's key already, and its source record says so: while that Parquet is still the
file converted, from the raw file there, by this pipeline version
(``LakeFacts.parquet_to_take``), ``ParquetizeMonth`` checks its quality and writes only the
manifest. Otherwise it converts the raw file. Hosts sharing a bucket lake take it alike.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from pipeline import config
from pipeline.convert.normalize import normalize
from pipeline.convert.parquetize import parquetize
from pipeline.convert.result import ParquetStats
from pipeline.core.checksums import file_digests
from pipeline.core.manifest import ConvertedParquet, Manifest, run_figures
from pipeline.core.months import month_key
from pipeline.core.text import redact
from pipeline.core.version import __version__
from pipeline.lake.keys import PARQUET_PREFIX, manifest_key, parquet_key
from pipeline.lake.month_facts import LakeFacts
from pipeline.lake.month_targets import ManifestTarget, generation
from pipeline.lake.targets import LakeError
from pipeline.tasks.base import MonthTask, megabytes
from pipeline.tasks.download import DownloadMonth
from pipeline.tasks.quality_gate import check_quality
from pipeline.tasks.storage import lake

# Luigi's own logger: its lines reach the console of every run.
log = logging.getLogger("luigi-interface")


class ParquetizeMonth(MonthTask):
    """The month as Parquet with the registry's schema, at
    ``parquet/{service}/year={YYYY}/month={MM}/{service}_tripdata_{YYYY-MM}.parquet``,
    and its ``_manifest.json``, written last. Complete when the manifest describes the
    file (size, rows, row groups, schema fingerprint), not merely when a path exists. The
    Parquet its download converted is taken when its source record says it was made from
    the raw file there now and it is still that file; otherwise the raw file is converted.
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

    def facts(self) -> LakeFacts:
        """What the lake holds of the month, the Parquet file's footer read."""
        return self.requires().facts(check_parquet=True)

    def complete(self) -> bool:
        """The manifest describes the Parquet file, and was made from the raw file that is
        there (its length and source record; a raw file deleted to save room contradicts
        nothing): ``LakeFacts.parquet_complete``."""
        return self.facts().parquet_complete

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
        # The file at the key is the one in doubt: converted anew, never taken.
        self._make(take=False)
        manifest = target.read()
        if manifest is None:
            raise LakeError(f"{self.label}: the conversion again left no manifest at "
                            f"{target.path}")
        return manifest

    def run(self) -> None:
        self._make(take=True)

    def _make(self, *, take: bool) -> None:
        """Write the month's Parquet and then its manifest; ``take``: the Parquet converted
        while downloading is taken when it is still that file."""
        target = self.output()
        facts = self.facts()
        recorded = facts.raw_record
        previous = facts.manifest
        seen = target.parquet.stat()
        # The old manifest goes first: from here on nothing claims the month is complete.
        target.manifest.remove()
        if take and (taken := facts.parquet_to_take) is not None:
            stats, converted = self._take(taken)
        else:
            with target.parquet.staging() as staged:
                stats, converted = self._convert_raw(staged.path)
                # A blocking quality check fails the month here, before the file is committed.
                check_quality(self.label, stats.quality, stats.rows)
                staged.commit(if_generation=generation(seen), sha256=stats.parquet_sha256,
                              progress=self.store_progress)
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
            staged.commit(if_generation=0)
        self.report(
            f"{stats.rows:,} rows ({stats.rows_outside_month:,} outside the month), "
            f"{megabytes(stats.parquet_bytes)} of Parquet")

    def _take(self, taken: ConvertedParquet) -> tuple[ParquetStats, float]:
        """The Parquet its download converted, as it is at the month's key, and the seconds
        that conversion took; its quality is checked as a conversion's here would be."""
        check_quality(self.label, taken.stats.quality, taken.stats.rows)
        log.info("%s: took the Parquet converted while downloading (%s s)", self.label,
                 taken.convert_seconds)
        return taken.stats, taken.convert_seconds

    def _convert_raw(self, out: Path) -> tuple[ParquetStats, float]:
        """The month's Parquet converted from its raw file at ``out``, and the seconds the
        conversion took."""
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
