"""A CSV month converted while it downloads, kept on the host for its ParquetizeMonth.

``DownloadMonth`` inflates a CSV.gz month as it arrives, to prove the gzip stream whole.
Instead of throwing that text away, it hands it to a conversion (``ParquetizeStream``), so
the gzip is inflated once, not once to check and once to convert, and at a source's pace
the month converts while the network sets the pace. The download's outcome never depends
on it: a month the conversion refuses is downloaded and committed all the same, and its
``ParquetizeMonth`` converts the raw file and fails there with the same one line, so a
failure still shows on its own step and re-runs alone.

What the download leaves is a *prepared* month in the host's scratch directory
(``{scratch}/prepared/``): ``{service}_tripdata_{YYYY-MM}.<token>.parquet`` and, written
last, ``{service}_tripdata_{YYYY-MM}.json`` (the conversion's figures, the raw file's size
and generation as committed, the pipeline version and schema fingerprint). It is kept only
once the raw file is committed. ``ParquetizeMonth`` takes it when the raw file in the lake
is still that one (size and generation: a re-fetch or any replacement changes the
generation), the version and schema are this pipeline's, and the Parquet file's size and
footer match the figures; otherwise it converts the raw file as before. Either way it
removes the month's prepared files. Each download on the host first removes the prepared
months nobody will take: those the lake has converted since (a ParquetizeMonth that ran on
another host, which hosts sharing a bucket lake do), and any older than a day (a run that
stopped between the two steps).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.convert.parquetize import ParquetizeStream
from pipeline.convert.result import ParquetStats
from pipeline.core.datasets import SERVICES, Service, schema_fingerprint
from pipeline.core.errors import PipelineError
from pipeline.core.manifest import Manifest
from pipeline.core.months import month_key
from pipeline.core.version import __version__
from pipeline.lake.keys import manifest_key
from pipeline.lake.targets import LakeError, LakeTarget, ObjectInfo
from pipeline.source.checks import BodyCheck, GzipCsvCheck
from pipeline.tasks.storage import lake

log = logging.getLogger("luigi-interface")

FOLDER = "prepared"
# Prepared months older than this are nobody's: removed by the next download on the host.
MAX_AGE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Prepared:
    """A month's Parquet converted while its raw file downloaded, and what it holds."""

    parquet: Path
    stats: ParquetStats
    convert_seconds: float

    def move_to(self, path: Path) -> None:
        """Move the Parquet file to ``path`` (a rename on one file system, else a copy)."""
        try:
            os.replace(self.parquet, path)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            shutil.copyfile(self.parquet, path)
            self.parquet.unlink()


def folder() -> Path:
    return lake().scratch.directory / FOLDER


def _stem(service: Service, month: date) -> str:
    return service.file_stem(month_key(month))


class _ConvertingCheck:
    """The download's check of a CSV.gz month (``GzipCsvCheck``) that also converts the
    text it inflates and hashes the bytes it sees (the raw file's sha256)."""

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


class PrepareWhileDownloading:
    """``with PrepareWhileDownloading(service, month) as prepare:``, then
    ``download(..., new_check=prepare.new_check)``, commit the raw file, and
    ``prepare.keep(committed)``. The block's end stops any conversion still running and
    removes what was not kept."""

    def __init__(self, service: Service, month: date) -> None:
        self.service, self.month = service, month
        self._stack = contextlib.ExitStack()
        self._out: Path | None = None
        self._check: _ConvertingCheck | None = None

    def __enter__(self) -> PrepareWhileDownloading:
        sweep()
        self._out = self._stack.enter_context(
            lake().scratch.file(f"{_stem(self.service, self.month)}.parquet"))
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
        assert self._out is not None, "use PrepareWhileDownloading as a context manager"
        self._stop()
        self._check = _ConvertingCheck(ParquetizeStream(self.service, self.month, self._out))
        return self._check

    def keep(self, raw: ObjectInfo) -> Prepared | None:
        """Once the raw file ``raw`` is committed: the finished conversion, kept for the
        month's ParquetizeMonth; None (and one log line) when it did not succeed."""
        check, out = self._check, self._out
        assert check is not None and out is not None
        self._check = None
        label = f"{self.service.name} {month_key(self.month)}"
        try:
            stats = check.stream.finish(check.size, check.sha256.hexdigest())
            seconds = time.monotonic() - check.started
            return _store(self.service, self.month, out, raw, stats, seconds)
        except Exception as e:  # the download stands; ParquetizeMonth converts the raw file
            # A refusal of the data is ParquetizeMonth's to report; anything else is news.
            level = logging.INFO if isinstance(e, PipelineError) else logging.WARNING
            log.log(level, "%s: no conversion while downloading (%s: %s); ParquetizeMonth "
                    "converts the raw file", label, type(e).__name__,
                    " ".join(str(e).split())[:200])
            return None

    def _stop(self) -> None:
        if self._check is not None:
            self._check.stream.abort()
            self._check = None


def _store(service: Service, month: date, out: Path, raw: ObjectInfo, stats: ParquetStats,
           seconds: float) -> Prepared:
    # A CSV month has no columns to drop or to report as new: the record keeps neither.
    assert not stats.dropped_columns and not stats.new_columns
    directory = folder()
    directory.mkdir(parents=True, exist_ok=True)
    stem = _stem(service, month)
    discard(service, month)  # an earlier download's, of a file the lake holds no more
    parquet = directory / f"{stem}.{uuid.uuid4().hex[:12]}.parquet"
    os.replace(out, parquet)
    record = {"service": service.name, "month": month_key(month),
              "pipeline_version": __version__, "schema_fingerprint": service.fingerprint,
              "parquet": parquet.name, "raw": {"size": raw.size, "generation": raw.generation},
              "convert_seconds": round(seconds, 3), "stats": asdict(stats)}
    tmp = directory / f".{stem}.{uuid.uuid4().hex[:12]}.json.tmp"
    try:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, directory / f"{stem}.json")  # last: the month is prepared from here
    finally:
        tmp.unlink(missing_ok=True)
    return Prepared(parquet, stats, seconds)


def take(service: Service, month: date, raw: LakeTarget) -> Prepared | None:
    """The month's prepared Parquet when it was made from the raw file ``raw`` holds now,
    by this pipeline version and schema, and is whole; else None."""
    directory, stem = folder(), _stem(service, month)
    try:
        record = json.loads((directory / f"{stem}.json").read_text())
        stats = ParquetStats(**record["stats"] | {"dropped_columns": (), "new_columns": ()})
        parquet = directory / Path(record["parquet"]).name
        if (record["pipeline_version"] != __version__
                or record["schema_fingerprint"] != service.fingerprint):
            return None
        now = raw.stat()
        if now is None or (now.size, now.generation) != (record["raw"]["size"],
                                                         record["raw"]["generation"]):
            return None
        if parquet.stat().st_size != stats.parquet_bytes:
            return None
        footer = pq.read_metadata(parquet)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if (footer.num_rows, footer.num_row_groups) != (stats.rows, stats.row_groups) or \
            schema_fingerprint(footer.schema.to_arrow_schema()) != service.fingerprint:
        return None
    return Prepared(parquet, stats, float(record["convert_seconds"]))


def discard(service: Service, month: date) -> list[Path]:
    """Remove the month's prepared files, whoever made them; the paths removed."""
    removed = list(_files(service, month))
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _files(service: Service, month: date) -> Iterator[Path]:
    directory, stem = folder(), _stem(service, month)
    if directory.is_dir():
        yield from directory.glob(f"{stem}.*")
        yield from directory.glob(f".{stem}.*")


def sweep(max_age: float = MAX_AGE_SECONDS) -> list[Path]:
    """Remove the prepared months nobody will take: those whose raw file the lake has
    converted already (on another host, when hosts share a bucket lake), and every file
    older than ``max_age`` seconds (a write that died included); the paths removed."""
    directory, removed = folder(), []
    if not directory.is_dir():
        return removed
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            service = SERVICES[record["service"]]
            month = date.fromisoformat(f"{record['month']}-01")
            source_sha256 = record["stats"]["source_sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # removed by age below
        if _converted(service, month, source_sha256):
            removed += discard(service, month)
    cutoff = time.time() - max_age
    for path in directory.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
    return sorted(removed)


def _converted(service: Service, month: date, source_sha256: str) -> bool:
    """The lake's manifest of the month was made from the raw file of ``source_sha256``."""
    try:
        with lake().target(manifest_key(service, month)).open("rb") as f:
            manifest = Manifest.from_json(f.read().decode())
    except (OSError, ValueError, TypeError, LakeError):
        return False
    return manifest.source_sha256 == source_sha256
