"""Google Cloud Storage as a lake, on google-cloud-storage (not ``luigi.contrib.gcs``, which
uses the old discovery client and writes non-atomically).

A ``GCSTarget`` is a ``pipeline.lake.targets.LakeTarget``. Writes are resumable uploads with
an explicit chunk size and timeout (``GCSSettings``, given by the caller: this module reads
no configuration), conditioned on the object's generation (no blind overwrite), and verified:
the stored object's crc32c must equal that of the bytes read, and their sha256 the one the
object is uploaded with (its ``sha256`` metadata), or the object is removed and the write
fails. (A crash between the upload and that check can leave an unverified object: the
pipeline writes a manifest after the check, and verifies an object it finds without one
before keeping it.) Local files an upload needs (``open("w")``, ``staging()``) and files a
read needs (``local_file()``) live in the caller's scratch directory and are removed after.

Bulk completeness: a target made with ``listed=<prefix URL>`` answers ``stat()``/``info()``
from one listing of that prefix, kept per process for ``LISTING_TTL_SECONDS`` and updated by
this process's own writes, so checking a backfill of many months costs one request, not one
per object. A fork starts with an empty cache (luigi runs tasks in forked workers), and
``pipeline.lake.targets.forget_cached_listings()`` empties it.

Credentials: Application Default Credentials, or none when ``STORAGE_EMULATOR_HOST`` names
an emulator. Nothing here logs a credential; error messages leave out resumable session ids.

Why one module of some 480 lines: the target, its listing cache and the verified resumable
upload share one client, its retries and the generation preconditions; split, each part
would reach into the others' state.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import google.auth.exceptions
import luigi.format
import luigi.target
import requests
from google.api_core import exceptions as api
from google.api_core.retry import Retry
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from pipeline.core.checksums import Digests, HashingReader, HashingWriter, file_digests
from pipeline.core.text import Progress, one_line
from pipeline.lake.gcs_names import (  # noqa: F401 (their home before; still importable here)
    _BUCKET,
    CHUNK_QUANTUM,
    SCHEME,
    GCSSettings,
    is_bucket_name,
)
from pipeline.lake.scratch import Scratch
from pipeline.lake.targets import (
    AtomicWrite,
    ChecksumMismatch,
    LakeConflict,
    LakeError,
    LakeTarget,
    ObjectInfo,
    Staged,
    check_expected,
    register_listing_cache,
)

SHA256_KEY = "sha256"
LISTING_TTL_SECONDS = 5.0
# A resumable session can be lost (an emulator restart; a session older than a week on
# GCS): the upload then starts over with a new one, this many times in all.
SESSION_ATTEMPTS = 3
# Transient errors (connection refused or reset, 429, 5xx) inside one session are retried
# by the client, resuming from the last byte the server holds, for at most this long.
RETRY_SECONDS = 60.0
LIST_FIELDS = "items(name,size,crc32c,metadata,generation),nextPageToken"


class GCSError(LakeError):
    """GCS refused or failed a request. The message is one line and names the bucket."""


def split_url(url: str) -> tuple[str, str]:
    """``gs://bucket/key`` -> (bucket, key); refuses anything else."""
    if not url.startswith(SCHEME) or "/" not in url[len(SCHEME):]:
        raise ValueError(f"not a gs://bucket/key URL: {url!r}")
    bucket, _, key = url[len(SCHEME):].partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError(f"not a GCS bucket name: {bucket!r}")
    return bucket, key


def _info(blob: storage.Blob) -> ObjectInfo:
    return ObjectInfo(int(blob.size or 0), blob.crc32c, (blob.metadata or {}).get(SHA256_KEY),
                      blob.generation)


_client: tuple[tuple[int, str | None], storage.Client] | None = None


def client() -> storage.Client:
    """The process's client (made again after a fork, or when the emulator host changes)."""
    global _client
    key = (os.getpid(), os.environ.get("STORAGE_EMULATOR_HOST"))
    if _client is None or _client[0] != key:
        try:
            _client = (key, storage.Client())
        except google.auth.exceptions.DefaultCredentialsError:
            raise GCSError(
                "no Google credentials: run `gcloud auth application-default login` or set "
                "GOOGLE_APPLICATION_CREDENTIALS (see README, Google Cloud)") from None
    return _client[1]


def _retry() -> Retry:
    return DEFAULT_RETRY.with_timeout(RETRY_SECONDS)


def missing_bucket(bucket: str, origin: str) -> GCSError:
    return GCSError(f"GCS bucket {bucket!r} does not exist or these credentials cannot see it: "
                    f"create it once (see README, Google Cloud) or fix {origin}")


@dataclass
class _Listing:
    taken: float
    objects: dict[str, ObjectInfo]


@dataclass
class ListingCache:
    """The per-process listings of prefixes (bulk completeness checks)."""

    listings: dict[tuple[str, str], _Listing] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    list_calls: int = 0

    def forget(self) -> None:
        with self.lock:
            self.listings.clear()

    def fresh(self, bucket: str, prefix: str) -> dict[str, ObjectInfo] | None:
        with self.lock:
            cached = self.listings.get((bucket, prefix))
            if cached and time.monotonic() - cached.taken < LISTING_TTL_SECONDS:
                return cached.objects
        return None

    def keep(self, bucket: str, prefix: str, taken: float,
             objects: dict[str, ObjectInfo]) -> None:
        with self.lock:
            self.listings[(bucket, prefix)] = _Listing(taken, objects)

    def remember(self, bucket: str, key: str, info: ObjectInfo | None) -> None:
        """Keep cached listings that cover ``key`` true to this process's own writes."""
        with self.lock:
            for (list_bucket, prefix), listing in self.listings.items():
                if list_bucket == bucket and key.startswith(prefix):
                    if info is None:
                        listing.objects.pop(key, None)
                    else:
                        listing.objects[key] = info


LISTINGS = ListingCache()
register_listing_cache(LISTINGS.forget)
os.register_at_fork(after_in_child=LISTINGS.forget)


class GCSFileSystem(luigi.target.FileSystem):
    """Object operations on ``gs://`` URLs with one set of settings; luigi's file-system
    interface (exists, remove, listdir, isdir, mkdir, copy, move, rename_dont_move)."""

    def __init__(self, settings: GCSSettings | None = None) -> None:
        self.settings = settings or GCSSettings()

    @property
    def list_calls(self) -> int:
        return LISTINGS.list_calls

    def forget(self) -> None:
        LISTINGS.forget()

    # -- reading state ---------------------------------------------------------------------
    def info(self, url: str, listed: str | None = None) -> ObjectInfo | None:
        bucket, key = split_url(url)
        if listed:
            list_bucket, prefix = split_url(listed)
            if list_bucket == bucket and key.startswith(prefix):
                return self._listing(bucket, prefix).get(key)
        try:
            blob = client().bucket(bucket).get_blob(key, timeout=self.settings.timeouts,
                                                    retry=_retry())
        except api.Forbidden as e:
            raise GCSError(f"GCS refused to read {url}: {one_line(e)}") from None
        return _info(blob) if blob else None

    def exists(self, path: str) -> bool:
        return self.info(path) is not None

    def _listing(self, bucket: str, prefix: str) -> dict[str, ObjectInfo]:
        cached = LISTINGS.fresh(bucket, prefix)
        if cached is not None:
            return cached
        taken = time.monotonic()
        objects = dict(self._list(bucket, prefix))
        LISTINGS.keep(bucket, prefix, taken, objects)
        return objects

    def _list(self, bucket: str, prefix: str) -> Iterator[tuple[str, ObjectInfo]]:
        LISTINGS.list_calls += 1
        try:
            for blob in client().list_blobs(bucket, prefix=prefix, fields=LIST_FIELDS,
                                            timeout=self.settings.timeouts, retry=_retry()):
                yield blob.name, _info(blob)
        except api.NotFound:
            # A missing bucket holds nothing; a write to it fails naming it. (Raising here
            # would fail luigi's completeness check with a traceback instead of one line.)
            return

    def listdir(self, path: str) -> list[str]:
        """Every object under ``path`` taken as a folder, recursively, as gs:// URLs."""
        bucket, key = split_url(path.rstrip("/") + "/")
        return sorted(f"{SCHEME}{bucket}/{name}" for name, _ in self._list(bucket, key))

    def isdir(self, path: str) -> bool:
        bucket, key = split_url(path.rstrip("/") + "/")
        blobs = client().list_blobs(bucket, prefix=key, max_results=1,
                                    timeout=self.settings.timeouts)
        return any(True for _ in blobs)

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        """Folders are implied by object names in GCS."""

    # -- writing ----------------------------------------------------------------------------
    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True,
               if_generation: int | None = None) -> None:
        bucket, key = split_url(path)
        if if_generation is not None:
            # Checked here too: fake-gcs-server ignores the precondition on deletes.
            current = self.info(path)
            if current is None:
                return
            if current.generation != if_generation:
                raise LakeConflict(f"{path} changed since it was read: not removed")
        try:
            client().bucket(bucket).delete_blob(key, if_generation_match=if_generation,
                                                timeout=self.settings.timeouts, retry=_retry())
        except api.NotFound:
            pass
        except api.PreconditionFailed:
            raise LakeConflict(f"{path} changed since it was read: not removed") from None
        LISTINGS.remember(bucket, key, None)

    def copy(self, path: str, dest: str, *, if_absent: bool = False) -> ObjectInfo:
        """A server-side copy of the object (its checksums and metadata included); with
        ``if_absent``, only when ``dest`` does not exist (``FileAlreadyExists``)."""
        bucket, key = split_url(path)
        dest_bucket, dest_key = split_url(dest)
        source = self.info(path)
        if source is None:
            raise FileNotFoundError(f"no object {path}")
        if if_absent and self.info(dest) is not None:
            raise luigi.target.FileAlreadyExists(f"{dest} exists: not overwritten")
        try:
            copied = client().bucket(bucket).copy_blob(
                client().bucket(bucket).blob(key), client().bucket(dest_bucket), dest_key,
                if_generation_match=0 if if_absent else None,
                if_source_generation_match=source.generation,
                timeout=self.settings.timeouts, retry=_retry())
        except api.PreconditionFailed:
            if if_absent:
                raise luigi.target.FileAlreadyExists(f"{dest} exists: not overwritten") from None
            raise LakeConflict(f"{path} changed while it was copied") from None
        except api.NotFound:
            raise FileNotFoundError(f"no object {path} or no bucket {dest_bucket!r}") from None
        info = _info(copied)
        if (info.size, info.crc32c) != (source.size, source.crc32c):
            self.remove(dest, if_generation=info.generation)
            raise ChecksumMismatch(f"the copy of {path} at {dest} differs from it; removed")
        LISTINGS.remember(dest_bucket, dest_key, info)
        return info

    def move(self, path: str, dest: str, raise_if_exists: bool = False) -> None:
        """Copy, then remove the source version that was copied."""
        if raise_if_exists and self.info(dest) is not None:
            raise luigi.target.FileAlreadyExists(f"{dest} exists: not overwritten")
        source = self.info(path)
        if source is None:
            raise FileNotFoundError(f"no object {path}")
        self.copy(path, dest, if_absent=raise_if_exists)
        self.remove(path, if_generation=source.generation)

    def rename_dont_move(self, path: str, dest: str) -> None:
        """``move`` that never replaces ``dest`` (``FileAlreadyExists``)."""
        self.move(path, dest, raise_if_exists=True)


_filesystems: dict[GCSSettings, GCSFileSystem] = {}


def filesystem(settings: GCSSettings | None = None) -> GCSFileSystem:
    settings = settings or GCSSettings()
    if settings not in _filesystems:
        _filesystems[settings] = GCSFileSystem(settings)
    return _filesystems[settings]


# The default-settings file system (tests and benchmarks count its listings).
GCS = filesystem()


class _Upload(AtomicWrite):
    """``open("w")``: written to a file in scratch, uploaded on a clean close."""

    def __init__(self, target: GCSTarget) -> None:
        self._target = target
        super().__init__(target.path)

    def generate_tmp_path(self, path: str) -> str:
        scratch = self._target.scratch.ready()
        return str(scratch / f"{os.getpid()}-{os.urandom(6).hex()}-upload.tmp")

    def commit(self, tmp: Path) -> None:
        self._target.put(tmp)


class GCSTarget(LakeTarget):
    """One object, ``gs://bucket/key``. See the module docstring for the guarantees."""

    def __init__(self, url: str, format: luigi.format.Format | None = None, *,
                 listed: str | None = None, settings: GCSSettings | None = None,
                 scratch: Scratch | None = None, origin: str = "the setting that names it"
                 ) -> None:
        super().__init__(url, format)
        self.origin = origin  # the setting a message about a missing bucket names
        self.bucket, self.key = split_url(url)
        self.listed = listed
        self.settings = settings or GCSSettings()
        self.scratch = scratch or Scratch()
        self._fs = filesystem(self.settings)

    @property
    def fs(self) -> GCSFileSystem:
        return self._fs

    def stat(self) -> ObjectInfo | None:
        found = self.info()
        return found and ObjectInfo(found.size, None, None, found.generation)

    def info(self) -> ObjectInfo | None:
        return self.fs.info(self.path, self.listed)

    def _blob(self, **kwargs: object) -> storage.Blob:
        return client().bucket(self.bucket).blob(self.key, **kwargs)

    def _writer(self) -> AtomicWrite:
        return _Upload(self)

    def _reader(self) -> BinaryIO:
        current = self.fs.info(self.path)
        if current is None:
            raise FileNotFoundError(f"no object {self.path}")
        # Pinned to the generation just seen: a replaced object fails the read, never mixes.
        return self._blob().open("rb", if_generation_match=current.generation,
                                 timeout=self.settings.timeouts, retry=_retry())

    @contextlib.contextmanager
    def staging(self) -> Iterator[Staged]:
        with self.scratch.file(self.key) as path:
            yield Staged(path, lambda local, generation, sha256, progress: self.put(
                local, if_generation=generation, sha256=sha256, progress=progress))

    @contextlib.contextmanager
    def local_file(self, *, sha256: str | None = None, progress: Progress | None = None
                   ) -> Iterator[Path]:
        """The object downloaded into scratch, pinned to one generation; its crc32c (and
        ``sha256`` when given) checked against the bytes received."""
        current = self.fs.info(self.path)
        if current is None:
            raise FileNotFoundError(f"no object {self.path}")
        with self.scratch.file(self.key) as path:
            with open(path, "wb") as f:
                writer = HashingWriter(f, progress, current.size)
                try:
                    self._blob().download_to_file(
                        writer, if_generation_match=current.generation, checksum=None,
                        timeout=self.settings.timeouts, retry=_retry())
                except api.PreconditionFailed:
                    raise LakeConflict(f"{self.path} was replaced while it was read") from None
                except api.NotFound:
                    raise FileNotFoundError(f"no object {self.path}") from None
                except (api.GoogleAPICallError, requests.RequestException) as e:
                    raise GCSError(f"download of {self.path} failed: {one_line(e)}") from None
            got = writer.digests()
            if (got.size, got.crc32c) != (current.size, current.crc32c):
                raise ChecksumMismatch(
                    f"{self.path}: the {got.size} bytes received (crc32c {got.crc32c}) are not "
                    f"the object's {current.size} (crc32c {current.crc32c})")
            if sha256 is not None and got.sha256 != sha256:
                raise ChecksumMismatch(f"{self.path}: sha256 {got.sha256[:16]}… is not the "
                                       f"expected {sha256[:16]}…")
            yield path

    def remove(self, if_generation: int | None = None) -> None:
        self.fs.remove(self.path, if_generation=if_generation)

    def put(self, local: Path, *, if_generation: int | None = None, sha256: str | None = None,
            progress: Progress | None = None) -> ObjectInfo:
        size = local.stat().st_size
        if sha256 is None:
            # Sent with the upload as the object's metadata, so computed first; callers with
            # large files pass it (the manifest has it).
            sha256 = file_digests(local).sha256
        if if_generation is not None:
            # Checked before any byte is sent, and again by GCS when the upload completes
            # (fake-gcs-server only does the first: it ignores preconditions on resumable
            # uploads, so a lost race is caught by GCS alone).
            current = self.fs.info(self.path)
            if (current.generation if current else 0) != if_generation:
                raise self._conflict(if_generation)
        for attempt in range(1, SESSION_ATTEMPTS + 1):
            try:
                blob, digests = self._upload(local, size, if_generation, sha256, progress)
                break
            except api.PreconditionFailed:
                if attempt > 1 and self._is_copy_of(local):
                    # An earlier attempt did finish: its response was lost, not its object.
                    blob = self._blob()
                    blob.reload(timeout=self.settings.timeouts, retry=_retry())
                    digests = file_digests(local)
                    break
                raise self._conflict(if_generation) from None
            except api.NotFound:
                if not client().bucket(self.bucket).exists(timeout=self.settings.timeouts):
                    raise missing_bucket(self.bucket, self.origin) from None
                if attempt == SESSION_ATTEMPTS:
                    raise GCSError(f"upload of {self.path} lost its session "
                                   f"{SESSION_ATTEMPTS} times; giving up") from None
            except (api.ServerError, api.TooManyRequests, api.RequestTimeout,
                    requests.RequestException, ConnectionError) as e:
                # Still failing after the client's own retries: start over, a few times.
                if attempt == SESSION_ATTEMPTS:
                    raise GCSError(f"upload of {self.path} failed: {one_line(e)}") from None
            except api.GoogleAPICallError as e:
                raise GCSError(f"GCS refused the upload of {self.path}: {one_line(e)}") from None
        try:
            if blob.crc32c != digests.crc32c or int(blob.size or 0) != digests.size:
                raise ChecksumMismatch(
                    f"{self.path}: the stored object (crc32c {blob.crc32c}, {blob.size} bytes) "
                    f"differs from the {digests.size} bytes sent (crc32c {digests.crc32c}); "
                    "it was removed")
            check_expected(digests, sha256, str(local))
        except ChecksumMismatch:
            self.remove(if_generation=blob.generation)
            raise
        info = _info(blob)
        LISTINGS.remember(self.bucket, self.key, info)
        return info

    def _upload(self, local: Path, size: int, if_generation: int | None, sha256: str,
                progress: Progress | None) -> tuple[storage.Blob, Digests]:
        blob = self._blob(chunk_size=self.settings.chunk_bytes)
        blob.metadata = {SHA256_KEY: sha256}
        with open(local, "rb") as f, HashingReader(f, progress, size) as reader:
            # size=None keeps every upload resumable (the client sends files up to 8 MiB
            # in one request when it knows their size, and such a request is not resumed).
            blob.upload_from_file(reader, size=None, if_generation_match=if_generation,
                                  checksum=None, timeout=self.settings.timeouts,
                                  retry=_retry())
            return blob, reader.digests()

    def _conflict(self, if_generation: int | None) -> LakeConflict:
        expected = "absent" if if_generation == 0 else f"at generation {if_generation}"
        return LakeConflict(f"{self.path} is not {expected} as the write required: "
                            "not overwritten")

    def _is_copy_of(self, local: Path) -> bool:
        current = self.fs.info(self.path)
        return current is not None and current.crc32c == file_digests(local).crc32c
