"""Every hash the project takes of bytes: a file's size, sha256 and crc32c in one pass
(``file_digests``; ``file_sha256`` for what a manifest records), the same of a stream as it
passes (``HashingReader`` for an upload or copy, ``HashingWriter`` for a download), and
of a small text (``bytes_sha256``). Files are read in large blocks; hashlib and crc32c
release the GIL, so a helper thread hashes while others work. Checksums are written as GCS
writes them: crc32c is the base64 of the big-endian 4 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, NamedTuple

import google_crc32c

from pipeline.core.text import Progress

READ_BLOCK = 8 << 20


class Digests(NamedTuple):
    """A file's size and checksums (``crc32c`` empty when it was not asked for)."""

    size: int
    crc32c: str
    sha256: str


def crc32c_text(checksum: google_crc32c.Checksum) -> str:
    return base64.b64encode(checksum.digest()).decode()


class _HashingStream(io.RawIOBase):
    """A stream over a local file that hashes (sha256 and crc32c) each byte passing once,
    and reports how many have passed."""

    def __init__(self, f: BinaryIO, progress: Progress | None = None,
                 total: int | None = None) -> None:
        super().__init__()
        self._f, self._progress, self._total = f, progress, total
        self._sha256, self._crc32c = hashlib.sha256(), google_crc32c.Checksum()
        self._hashed = 0

    def _hash(self, data: bytes) -> None:
        self._sha256.update(data)
        self._crc32c.update(data)

    def _passed(self, size: int) -> None:
        self._hashed += size
        if self._progress:
            self._progress(self._hashed, self._total)

    def digests(self) -> Digests:
        """The hashes of every byte that has passed."""
        return Digests(self._hashed, crc32c_text(self._crc32c), self._sha256.hexdigest())


class HashingReader(_HashingStream):
    """Reads a local file for an upload or a copy and hashes every byte exactly once, in order.

    An upload may seek back to resend a chunk; bytes already hashed are not hashed again.
    Hashing runs on a helper thread (hashlib and crc32c release the GIL), so it overlaps
    with sending the previous chunk instead of adding to the upload's time.
    """

    def __init__(self, f: BinaryIO, progress: Progress | None = None,
                 total: int | None = None) -> None:
        super().__init__(f, progress, total)
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
            self._hasher.submit(self._hash, fresh)
            self._passed(len(fresh))
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def digests(self) -> Digests:
        """The hashes of everything read, once the stream has been read to its end."""
        self._hasher.shutdown(wait=True)
        return super().digests()

    def close(self) -> None:
        self._hasher.shutdown(wait=True)
        super().close()


class HashingWriter(_HashingStream):
    """Writes to a local file and hashes what passes (a download into scratch)."""

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._f.write(data)
        self._hash(data if isinstance(data, bytes) else bytes(data))
        self._passed(len(data))
        return len(data)


def file_digests(path: Path, *, crc32c: bool = True,
                 stop: threading.Event | None = None) -> Digests:
    """Size, crc32c and sha256 of a local file, in one pass: the project's one file-hash
    helper. ``crc32c=False`` leaves the crc32c out (empty); ``stop`` ends the read early."""
    sha256, checksum, size = hashlib.sha256(), google_crc32c.Checksum(), 0
    with open(path, "rb") as f:
        while (data := f.read(READ_BLOCK)) and not (stop and stop.is_set()):
            sha256.update(data)
            if crc32c:
                checksum.update(data)
            size += len(data)
    return Digests(size, crc32c_text(checksum) if crc32c else "", sha256.hexdigest())


def file_sha256(path: Path) -> tuple[int, str]:
    """(size in bytes, hex sha256) of the file at ``path``: what a manifest records."""
    digests = file_digests(path, crc32c=False)
    return digests.size, digests.sha256


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
