"""The lake's storage interface: one Luigi target type for every root.

``LakeTarget`` is a ``luigi.target.FileSystemTarget``; ``pipeline.lake.local`` and
``pipeline.lake.gcs`` implement it for a local directory and a Google Cloud Storage bucket, so
tasks never branch on the kind of storage. What a target offers:

- luigi's contract: ``exists()``, ``open("r" | "w")`` through the target's luigi format
  (``UTF8``, ``Gzip``, ``Nop``, a custom one), ``fs.move``/``fs.rename_dont_move``/``fs.copy``
  /``fs.listdir``/``fs.remove``, ``temporary_path()``;
- ``stat()`` (size and generation, cheap) and ``info()`` (with crc32c and sha256);
- ``staging()``: a local file to write, committed under the target on request
  (``Staged.commit``) and removed in any case; ``put(local_file)`` copies a file in;
- ``local_file()``: the stored file as a local path for code that reads files (a bucket's
  object is downloaded to scratch, verified, and removed afterwards);
- ``remove()``.

Every write is atomic (the new content appears whole under the final name or not at all) and
verified (crc32c of the stored bytes against the bytes read; an expected sha256 when given),
and may be conditioned on the stored generation: ``if_generation=0`` = only if absent, ``N`` =
only if the current version is N, ``None`` = replace whatever is there. ``open("rb"/"wb")``
is accepted as well and means the ``Nop`` format when the target has none.

Checksums are written as GCS writes them: crc32c is the base64 of the big-endian 4 bytes.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

import luigi.format
import luigi.target

from pipeline.core.checksums import Digests, file_digests
from pipeline.core.errors import PipelineError
from pipeline.core.text import Progress


class LakeError(PipelineError):
    """A lake write or read that could not be done. The message is one line."""


class LakeConflict(LakeError):
    """The object is not the version a write was conditioned on (``if_generation``)."""


class ChecksumMismatch(LakeError):
    """What was stored is not what was read, or not what the caller expected."""


class LakeFull(LakeError):
    """The lake's (or the scratch directory's) file system has no room; nothing was
    committed."""


@dataclass(frozen=True)
class ObjectInfo:
    """What the lake knows about one stored file. ``stat()`` leaves the checksums out."""

    size: int
    crc32c: str | None
    sha256: str | None
    generation: int | None


def check_expected(digests: Digests, sha256: str | None, what: str) -> None:
    if sha256 is not None and digests.sha256 != sha256:
        raise ChecksumMismatch(
            f"{what}: the file read has sha256 {digests.sha256[:16]}…, expected {sha256[:16]}… "
            "(it changed after its manifest was written); nothing was published")


class HashAlongside:
    """Hashes a local lake file on a helper thread while another reader (a warehouse's own
    Parquet reader) reads it: the read and the hash overlap instead of adding up, and the
    file comes from the page cache for the second of them. ``check()`` waits for the hash
    and refuses a file that is not what ``sha256`` says (``ChecksumMismatch``)."""

    def __init__(self, path: Path, sha256: str, what: str) -> None:
        self.path, self.sha256, self.what = path, sha256, what
        self._digests: Digests | None = None
        self._error: OSError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lake-verify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._digests = file_digests(self.path, crc32c=False, stop=self._stop)
        except OSError as e:
            self._error = e

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise LakeError(f"{self.what}: unreadable while verifying it ({self._error})")
        assert self._digests is not None
        if self._digests.sha256 != self.sha256:
            raise ChecksumMismatch(
                f"{self.what} has sha256 {self._digests.sha256[:16]}…, its manifest says "
                f"{self.sha256[:16]}…: it is not the file the manifest describes")


# Checks of lake files being read in this context, to be passed before what was read from
# them is committed (``check_pending_reads``).
_pending_reads: contextvars.ContextVar[tuple[HashAlongside, ...]] = contextvars.ContextVar(
    "pending_reads", default=())


def check_pending_reads() -> None:
    """Wait for the hashes of the lake files read in this context and refuse any that is
    not what its manifest says: a load calls it before it commits."""
    for pending in _pending_reads.get():
        pending.check()


@contextlib.contextmanager
def verified_read(path: Path, sha256: str, what: str) -> Iterator[Path]:
    """``path`` for the block, hashed alongside whoever reads it; checked at the latest when
    the block ends without an exception (``check_pending_reads`` checks it earlier)."""
    hashing = HashAlongside(path, sha256, what)
    token = _pending_reads.set((*_pending_reads.get(), hashing))
    try:
        yield path
    except BaseException:
        hashing.stop()
        raise
    finally:
        _pending_reads.reset(token)
    hashing.check()


def is_hidden_tmp(name: str) -> bool:
    """A write in progress (``.name.<random>.tmp``): never output, whatever its content."""
    return name.startswith(".") and name.endswith(".tmp")


class AtomicWrite(luigi.target.AtomicLocalFile):
    """``open("w")``: written to a temporary file; ``commit(tmp)`` runs on a clean close
    only, once, and an exception in the ``with`` block (or dropping the file unclosed)
    discards the write."""

    def commit(self, tmp: Path) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self.closed:
            return
        super().close()

    def move_to_final_destination(self) -> None:
        try:
            self.commit(Path(self.tmp_path))
        finally:
            Path(self.tmp_path).unlink(missing_ok=True)

    def __exit__(self, exc_type, exc, traceback):  # type: ignore[no-untyped-def]
        if exc_type:
            io.BufferedWriter.close(self)  # closes the file without committing it
            Path(self.tmp_path).unlink(missing_ok=True)
            return None
        return super().__exit__(exc_type, exc, traceback)


class Staged:
    """A local file to be committed under a lake target. ``commit()`` puts it there
    (atomically, verified, conditioned on ``if_generation``); whether committed or not, the
    local file is gone when the ``staging()`` block ends."""

    def __init__(self, path: Path,
                 commit: Callable[[Path, int | None, str | None, Progress | None], ObjectInfo]
                 ) -> None:
        self.path = path
        self._commit = commit
        self.committed: ObjectInfo | None = None

    def commit(self, *, if_generation: int | None = None, sha256: str | None = None,
                progress: Progress | None = None) -> ObjectInfo:
        if self.committed is not None:
            raise LakeError(f"{self.path} was committed already")
        self.committed = self._commit(self.path, if_generation, sha256, progress)
        return self.committed


def text_or_binary(fmt: luigi.format.Format | None, mode: str) -> luigi.format.Format:
    """The format a mode reads or writes in: the target's own, else text (``Nop`` for 'b')."""
    if mode.replace("b", "").replace("t", "") not in ("r", "w"):
        raise ValueError(f"mode must be 'r', 'rb', 'w' or 'wb', not {mode!r}")
    if fmt is not None:
        return fmt
    return luigi.format.Nop if "b" in mode else luigi.format.get_default_format()


class LakeTarget(luigi.target.FileSystemTarget):
    """One file of the lake, whatever the root (see the module docstring).

    ``path`` is the file's URL: an absolute local path or ``gs://bucket/key``.
    """

    def __init__(self, path: str, format: luigi.format.Format | None = None) -> None:
        super().__init__(path)
        self.format = format

    def open(self, mode: str = "r") -> IO:
        fmt = text_or_binary(self.format, mode)
        if "w" in mode:
            return fmt.pipe_writer(self._writer())
        return fmt.pipe_reader(self._reader())

    @contextlib.contextmanager
    def temporary_path(self) -> Iterator[str]:  # type: ignore[override]
        """luigi's atomic-write helper: a local path to write; committed when the block ends
        without an exception, removed in any case."""
        with self.staging() as staged:
            yield str(staged.path)
            staged.commit()

    def exists(self) -> bool:
        return self.stat() is not None

    def size(self) -> int | None:
        found = self.stat()
        return found.size if found else None

    # -- what each backend implements ---------------------------------------------------------
    @abc.abstractmethod
    def stat(self) -> ObjectInfo | None:
        """Size and generation (no checksums), or None when absent."""

    @abc.abstractmethod
    def info(self) -> ObjectInfo | None:
        """Size, crc32c, sha256 and generation, or None when absent."""

    @abc.abstractmethod
    def _writer(self) -> AtomicWrite: ...

    @abc.abstractmethod
    def _reader(self) -> BinaryIO: ...

    @abc.abstractmethod
    def staging(self) -> contextlib.AbstractContextManager[Staged]:
        """A local file to write and then commit under this target (see ``Staged``)."""

    @abc.abstractmethod
    def put(self, local: Path, *, if_generation: int | None = None, sha256: str | None = None,
            progress: Progress | None = None) -> ObjectInfo:
        """Copy ``local`` in, verified, atomically; the local file is left as it is."""

    @abc.abstractmethod
    def local_file(self, *, sha256: str | None = None, progress: Progress | None = None
                   ) -> contextlib.AbstractContextManager[Path]:
        """The stored file as a local path for the block's duration (read only).

        ``sha256``: what the file must hash to; a copy that does not is refused
        (``ChecksumMismatch``). A local file is its own path, hashed alongside the block's
        reads (``verified_read``).
        """

    @abc.abstractmethod
    def remove(self, if_generation: int | None = None) -> None:  # type: ignore[override]
        """Delete the file (nothing to do when absent); with ``if_generation``, only that
        version."""


# Caches of listings kept by backends (per process), and how to drop them: what other
# processes wrote since is not in them.
_cache_forgetters: list[Callable[[], None]] = []


def register_listing_cache(forget: Callable[[], None]) -> None:
    _cache_forgetters.append(forget)


def forget_cached_listings() -> None:
    """Drop every backend's cached listings, so the next check asks the storage itself."""
    for forget in _cache_forgetters:
        forget()
