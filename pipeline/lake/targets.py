"""The lake's storage interface, and its local implementation.

``pipeline.lake.keys.lake_target(url)`` gives a target for a local path or a ``gs://`` object
(``pipeline.lake.gcs``); both have this interface, so tasks never branch on the kind of storage:

- ``exists()``, ``info()`` (size, crc32c, sha256, generation) or None;
- ``open("r" | "rb")`` to read (binary readers are seekable, so Parquet footers can be read);
- ``open("w" | "wb")`` and ``put(local_file)`` to write atomically: the new content appears
  whole under the final name, or not at all;
- ``put`` verifies what it wrote (crc32c of the stored bytes against the bytes read, and an
  expected sha256) and honours ``if_generation``: ``0`` = only if absent, ``N`` = only if
  the current version is N, ``None`` = replace whatever is there;
- ``remove()``, and ``fs.listdir(url)``: every file under a prefix, recursively.

Checksums are written as GCS writes them: crc32c is the base64 of the big-endian 4 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Protocol

import google_crc32c
import luigi
import luigi.format
import luigi.local_target
import luigi.target

from pipeline.core.errors import PipelineError

Progress = Callable[[int, int | None], None]
READ_BLOCK = 8 << 20


class LakeError(PipelineError):
    """A lake write or read that could not be done. The message is one line."""


class LakeConflict(LakeError):
    """The object is not the version a write was conditioned on (``if_generation``)."""


class ChecksumMismatch(LakeError):
    """What was stored is not what was read, or not what the caller expected."""


@dataclass(frozen=True)
class ObjectInfo:
    """What the lake knows about one stored file without reading it (GCS) or by reading
    it (local files keep no checksums beside them)."""

    size: int
    crc32c: str | None
    sha256: str | None
    generation: int | None


@dataclass(frozen=True)
class Digests:
    size: int
    crc32c: str
    sha256: str


class LakeTarget(Protocol):
    path: str
    fs: luigi.target.FileSystem  # listdir(url): every file under a prefix

    def exists(self) -> bool: ...
    def info(self) -> ObjectInfo | None: ...
    def open(self, mode: str = "r") -> IO: ...
    def put(self, local: Path, *, if_generation: int | None = None, sha256: str | None = None,
            progress: Progress | None = None) -> ObjectInfo: ...
    def remove(self, if_generation: int | None = None) -> None: ...


def crc32c_text(checksum: google_crc32c.Checksum) -> str:
    return base64.b64encode(checksum.digest()).decode()


class HashingReader(io.RawIOBase):
    """Reads a local file for an upload and hashes every byte exactly once, in order.

    An upload may seek back to resend a chunk; bytes already hashed are not hashed again.
    Hashing runs on a helper thread (hashlib and crc32c release the GIL), so it overlaps
    with sending the previous chunk instead of adding to the upload's time.
    """

    def __init__(self, f: BinaryIO, progress: Progress | None = None,
                 total: int | None = None) -> None:
        super().__init__()
        self._f, self._progress, self._total = f, progress, total
        self._sha256, self._crc32c = hashlib.sha256(), google_crc32c.Checksum()
        self._hashed = 0
        self._hasher = ThreadPoolExecutor(1, "lake-hash")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        start = self._f.tell()
        data = self._f.read(size)
        skip = self._hashed - start
        if 0 <= skip < len(data):
            fresh = data if skip == 0 else data[skip:]
            self._hasher.submit(self._update, fresh)
            self._hashed += len(fresh)
            if self._progress:
                self._progress(self._hashed, self._total)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _update(self, data: bytes) -> None:
        self._sha256.update(data)
        self._crc32c.update(data)

    def digests(self) -> Digests:
        """The hashes of everything read, once the stream has been read to its end."""
        self._hasher.shutdown(wait=True)
        return Digests(self._hashed, crc32c_text(self._crc32c), self._sha256.hexdigest())

    def close(self) -> None:
        self._hasher.shutdown(wait=True)
        super().close()


def file_digests(path: Path) -> Digests:
    with open(path, "rb") as f, HashingReader(f) as reader:
        while reader.read(READ_BLOCK):
            pass
        return reader.digests()


def check_expected(digests: Digests, sha256: str | None, what: str) -> None:
    if sha256 is not None and digests.sha256 != sha256:
        raise ChecksumMismatch(
            f"{what}: the file read has sha256 {digests.sha256[:16]}…, expected {sha256[:16]}… "
            "(it changed after its manifest was written); nothing was published")


def file_format(mode: str) -> luigi.format.Format:
    if mode.replace("b", "").replace("t", "") not in ("r", "w"):
        raise ValueError(f"mode must be 'r', 'rb', 'w' or 'wb', not {mode!r}")
    return luigi.format.Nop if "b" in mode else luigi.format.get_default_format()


def hidden_tmp(final: Path) -> Path:
    """The temporary name a local write uses beside ``final`` (see ``lake.atomic_path``)."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")


def is_hidden_tmp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


class AtomicWrite(luigi.target.AtomicLocalFile):
    """Written to a temporary file; ``publish(tmp)`` runs on a clean close only, and an
    exception in the ``with`` block discards the write at once."""

    def publish(self, tmp: Path) -> None:
        raise NotImplementedError

    def move_to_final_destination(self) -> None:
        try:
            self.publish(Path(self.tmp_path))
        finally:
            Path(self.tmp_path).unlink(missing_ok=True)

    def __exit__(self, exc_type, exc, traceback):  # type: ignore[no-untyped-def]
        if exc_type:
            io.BufferedWriter.close(self)  # closes the file without publishing it
            Path(self.tmp_path).unlink(missing_ok=True)
            return None
        return super().__exit__(exc_type, exc, traceback)


class _LocalWrite(AtomicWrite):
    def __init__(self, target: LocalLakeTarget) -> None:
        self._target = target
        super().__init__(target.path)

    def generate_tmp_path(self, path: str) -> str:
        return str(hidden_tmp(Path(path)))

    def publish(self, tmp: Path) -> None:
        self._target._publish(tmp, None)


class LocalLakeFileSystem(luigi.local_target.LocalFileSystem):
    def listdir(self, path: str) -> list[str]:
        """Every published file under ``path``, recursively, sorted (temporaries of running
        writes left out)."""
        return sorted(os.path.join(directory, name) for directory, _, files in os.walk(path)
                      for name in files if not is_hidden_tmp(name))


class LocalLakeTarget(luigi.target.FileSystemTarget):
    """A file of the local lake. The generation is the file's mtime in nanoseconds."""

    fs = LocalLakeFileSystem()

    def __init__(self, path: str | Path) -> None:
        super().__init__(str(Path(path).absolute()))

    def exists(self) -> bool:
        return os.path.isfile(self.path)

    def info(self) -> ObjectInfo | None:
        try:
            generation = os.stat(self.path).st_mtime_ns
            digests = file_digests(Path(self.path))
        except FileNotFoundError:
            return None
        return ObjectInfo(digests.size, digests.crc32c, digests.sha256, generation)

    def open(self, mode: str = "r") -> IO:
        fmt = file_format(mode)
        if "w" in mode:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            return fmt.pipe_writer(_LocalWrite(self))
        return fmt.pipe_reader(open(self.path, "rb"))

    def put(self, local: Path, *, if_generation: int | None = None, sha256: str | None = None,
            progress: Progress | None = None) -> ObjectInfo:
        final = Path(self.path)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = hidden_tmp(final)
        try:
            with open(local, "rb") as src, HashingReader(src, progress, local.stat().st_size) \
                    as reader, open(tmp, "wb") as dst:
                while data := reader.read(READ_BLOCK):
                    dst.write(data)
                digests = reader.digests()
            check_expected(digests, sha256, str(local))
            written = file_digests(tmp)
            if written != digests:
                raise ChecksumMismatch(f"{self.path}: the copy's crc32c {written.crc32c} differs "
                                       f"from the source's {digests.crc32c}; nothing was published")
            self._publish(tmp, if_generation)
        finally:
            tmp.unlink(missing_ok=True)
        return ObjectInfo(digests.size, digests.crc32c, digests.sha256,
                          os.stat(self.path).st_mtime_ns)

    def _publish(self, tmp: Path, if_generation: int | None) -> None:
        # Best effort only: a local check-then-rename is not atomic, unlike GCS's preconditions.
        if if_generation is not None:
            current = self._generation()
            if (current or 0) != if_generation:
                tmp.unlink(missing_ok=True)
                raise LakeConflict(f"{self.path} is at generation {current}, "
                                   f"not {if_generation}: not overwritten")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(os.path.dirname(self.path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _generation(self) -> int | None:
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return None

    def remove(self, if_generation: int | None = None) -> None:
        if if_generation is not None and self._generation() not in (None, if_generation):
            raise LakeConflict(f"{self.path} changed since it was read: not removed")
        Path(self.path).unlink(missing_ok=True)
