"""Google Cloud Storage as a lake, on google-cloud-storage (not ``luigi.contrib.gcs``, which
uses the old discovery client and writes non-atomically).

A ``GCSTarget`` has the interface of ``pipeline.lake.targets``. Writes are resumable uploads with
an explicit chunk size and timeout, conditioned on the object's generation (no blind
overwrite), and verified: the stored object's crc32c must equal that of the bytes read, and
their sha256 the one the object is uploaded with (its ``sha256`` metadata), or the object is
removed and the write fails. (A crash between the upload and that check can leave an
unverified object: ``pipeline.tasks.publish`` publishes a manifest after the check and verifies
an object it finds without one before keeping it.)

Bulk completeness: a target made with ``listed=<prefix URL>`` answers exists()/info() from
one listing of that prefix, kept per process for ``LISTING_TTL_SECONDS`` and updated by this
process's own writes, so checking a backfill of many months costs one request, not one per
object. A fork starts with an empty cache (luigi runs tasks in forked workers).

Credentials: Application Default Credentials, or none when ``STORAGE_EMULATOR_HOST`` names
an emulator. Nothing here logs a credential; error messages leave out resumable session ids.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import google.auth.exceptions
import luigi.target
import requests
from google.api_core import exceptions as api
from google.api_core.retry import Retry
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from pipeline import config
from pipeline.lake.targets import (
    AtomicWrite,
    ChecksumMismatch,
    Digests,
    LakeConflict,
    LakeError,
    ObjectInfo,
    Progress,
    check_expected,
    file_digests,
    file_format,
)
from pipeline.lake.targets import HashingReader as _HashingReader

SCHEME = "gs://"
SHA256_KEY = "sha256"
LISTING_TTL_SECONDS = 5.0
# A resumable session can be lost (an emulator restart; a session older than a week on
# GCS): the upload then starts over with a new one, this many times in all.
SESSION_ATTEMPTS = 3
# Transient errors (connection refused or reset, 429, 5xx) inside one session are retried
# by the client, resuming from the last byte the server holds, for at most this long.
RETRY_SECONDS = 60.0
LIST_FIELDS = "items(name,size,crc32c,metadata,generation),nextPageToken"
_SECRET_PARAMS = re.compile(r"(upload_id|access_token|X-Goog-Signature)=[^&\s\"']+", re.I)


class GCSError(LakeError):
    """GCS refused or failed a request. The message is one line and names the bucket."""


def redact(text: str) -> str:
    """A one-line error text without session ids or tokens that could be replayed."""
    return _SECRET_PARAMS.sub(r"\1=…", " ".join(str(text).split()))[:300]


def split_url(url: str) -> tuple[str, str]:
    if not url.startswith(SCHEME) or "/" not in url[len(SCHEME):]:
        raise ValueError(f"not a gs://bucket/key URL: {url!r}")
    bucket, _, key = url[len(SCHEME):].partition("/")
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


def _timeout() -> tuple[float, float]:
    seconds = config.gcs().timeout
    return (seconds, seconds)


def _missing_bucket(bucket: str) -> GCSError:
    return GCSError(f"GCS bucket {bucket!r} does not exist or these credentials cannot see it: "
                    "create it once (see README, Google Cloud) or fix [gcs] bucket")


@dataclass
class _Listing:
    taken: float
    objects: dict[str, ObjectInfo]


class GCSFileSystem(luigi.target.FileSystem):
    """Object operations and the per-process listing cache."""

    def __init__(self) -> None:
        self._listings: dict[tuple[str, str], _Listing] = {}
        self._lock = threading.Lock()
        self.list_calls = 0

    def forget(self) -> None:
        with self._lock:
            self._listings.clear()

    # -- reading state ---------------------------------------------------------------------
    def info(self, url: str, listed: str | None = None) -> ObjectInfo | None:
        bucket, key = split_url(url)
        if listed:
            list_bucket, prefix = split_url(listed)
            if list_bucket == bucket and key.startswith(prefix):
                return self._listing(bucket, prefix).get(key)
        blob = client().bucket(bucket).get_blob(key, timeout=_timeout(), retry=_retry())
        return _info(blob) if blob else None

    def exists(self, path: str) -> bool:
        return self.info(path) is not None

    def _listing(self, bucket: str, prefix: str) -> dict[str, ObjectInfo]:
        with self._lock:
            cached = self._listings.get((bucket, prefix))
            if cached and time.monotonic() - cached.taken < LISTING_TTL_SECONDS:
                return cached.objects
        taken = time.monotonic()
        objects = {name: info for name, info in self._list(bucket, prefix)}
        with self._lock:
            self._listings[(bucket, prefix)] = _Listing(taken, objects)
        return objects

    def _list(self, bucket: str, prefix: str) -> Iterator[tuple[str, ObjectInfo]]:
        self.list_calls += 1
        try:
            for blob in client().list_blobs(bucket, prefix=prefix, fields=LIST_FIELDS,
                                            timeout=_timeout(), retry=_retry()):
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
        blobs = client().list_blobs(bucket, prefix=key, max_results=1, timeout=_timeout())
        return any(True for _ in blobs)

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        """Folders are implied by object names in GCS."""

    def _remember(self, url: str, info: ObjectInfo | None) -> None:
        """Keep cached listings that cover ``url`` true to this process's own writes."""
        bucket, key = split_url(url)
        with self._lock:
            for (list_bucket, prefix), listing in self._listings.items():
                if list_bucket == bucket and key.startswith(prefix):
                    if info is None:
                        listing.objects.pop(key, None)
                    else:
                        listing.objects[key] = info

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
                                                timeout=_timeout(), retry=_retry())
        except api.NotFound:
            pass
        except api.PreconditionFailed:
            raise LakeConflict(f"{path} changed since it was read: not removed") from None
        self._remember(path, None)


GCS = GCSFileSystem()
os.register_at_fork(after_in_child=GCS.forget)


class _Upload(AtomicWrite):
    """``open("w")``: written to a local temporary file, uploaded on a clean close."""

    def __init__(self, target: GCSTarget) -> None:
        self._target = target
        super().__init__(target.path)

    def generate_tmp_path(self, path: str) -> str:
        fd, name = tempfile.mkstemp(prefix="lake-upload-", suffix=".tmp")
        os.close(fd)
        return name

    def publish(self, tmp: Path) -> None:
        self._target.put(tmp)


class GCSTarget(luigi.target.FileSystemTarget):
    """One object, ``gs://bucket/key``. See the module docstring for the guarantees."""

    fs = GCS

    def __init__(self, url: str, listed: str | None = None) -> None:
        super().__init__(url)
        self.bucket, self.key = split_url(url)
        self.listed = listed

    def __str__(self) -> str:
        return self.path

    def exists(self) -> bool:
        return self.info() is not None

    def info(self) -> ObjectInfo | None:
        return GCS.info(self.path, self.listed)

    def _blob(self, **kwargs: object) -> storage.Blob:
        return client().bucket(self.bucket).blob(self.key, **kwargs)

    def open(self, mode: str = "r") -> IO:
        fmt = file_format(mode)
        if "w" in mode:
            return fmt.pipe_writer(_Upload(self))
        current = GCS.info(self.path)
        if current is None:
            raise FileNotFoundError(f"no object {self.path}")
        # Pinned to the generation just seen: a replaced object fails the read, never mixes.
        reader = self._blob().open("rb", if_generation_match=current.generation,
                                   timeout=_timeout(), retry=_retry())
        return fmt.pipe_reader(reader)

    def remove(self, if_generation: int | None = None) -> None:
        GCS.remove(self.path, if_generation=if_generation)

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
            current = GCS.info(self.path)
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
                    blob.reload(timeout=_timeout(), retry=_retry())
                    digests = file_digests(local)
                    break
                raise self._conflict(if_generation) from None
            except api.NotFound:
                if not client().bucket(self.bucket).exists(timeout=_timeout()):
                    raise _missing_bucket(self.bucket) from None
                if attempt == SESSION_ATTEMPTS:
                    raise GCSError(f"upload of {self.path} lost its session "
                                   f"{SESSION_ATTEMPTS} times; giving up") from None
            except (api.ServerError, api.TooManyRequests, api.RequestTimeout,
                    requests.RequestException, ConnectionError) as e:
                # Still failing after the client's own retries: start over, a few times.
                if attempt == SESSION_ATTEMPTS:
                    raise GCSError(f"upload of {self.path} failed: {redact(e)}") from None
            except api.GoogleAPICallError as e:
                raise GCSError(f"GCS refused the upload of {self.path}: {redact(e)}") from None
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
        GCS._remember(self.path, info)
        return info

    def _upload(self, local: Path, size: int, if_generation: int | None, sha256: str,
                progress: Progress | None) -> tuple[storage.Blob, Digests]:
        blob = self._blob(chunk_size=chunk_bytes())
        blob.metadata = {SHA256_KEY: sha256}
        with open(local, "rb") as f, _HashingReader(f, progress, size) as reader:
            # size=None keeps every upload resumable (the client sends files up to 8 MiB
            # in one request when it knows their size, and such a request is not resumed).
            blob.upload_from_file(reader, size=None, if_generation_match=if_generation,
                                  checksum=None, timeout=_timeout(), retry=_retry())
            return blob, reader.digests()

    def _conflict(self, if_generation: int | None) -> LakeConflict:
        expected = "absent" if if_generation == 0 else f"at generation {if_generation}"
        return LakeConflict(f"{self.path} is not {expected} as the write required: "
                            "not overwritten")

    def _is_copy_of(self, local: Path) -> bool:
        current = GCS.info(self.path)
        return current is not None and current.crc32c == file_digests(local).crc32c


def chunk_bytes() -> int:
    """``[gcs] chunk_mib`` in bytes: GCS takes chunks in multiples of 256 KiB."""
    quantum = 256 * 1024
    chunk = round(config.gcs().chunk_mib * (1 << 20))
    if chunk <= 0 or chunk % quantum:
        raise GCSError(f"[gcs] chunk_mib = {config.gcs().chunk_mib} is not a positive multiple "
                       "of 0.25 (256 KiB)")
    return chunk
