"""A lake in a local directory: files under the root, committed by one atomic path.

Every write (``open("w")``, ``staging()``, ``put()``, a download) goes to a temporary name
beside the final one (``.name.<random>.tmp``: nothing reading the lake takes it for output),
is fsynced, and is renamed into place by ``commit_file`` (then the directory is fsynced), so
a crash never leaves a partial or empty file under a final name. A file's generation is its
mtime in nanoseconds; a local check-then-rename is not atomic, so generation preconditions
here are best effort (GCS enforces them).

A process killed outright cannot remove its temporaries: their names carry the host and the
process id (``.name.<host>-<pid>-<random>.tmp``), and the next write into a directory removes
the ones of processes of this host that no longer run (``sweep_leftovers``), and any that no
one has written to for a day (another host's, or an older version's).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import luigi.format
import luigi.local_target

from pipeline.core.checksums import READ_BLOCK, HashingReader, file_digests
from pipeline.core.processes import running
from pipeline.core.text import Progress
from pipeline.lake.targets import (
    AtomicWrite,
    ChecksumMismatch,
    LakeConflict,
    LakeFull,
    LakeTarget,
    ObjectInfo,
    Staged,
    check_expected,
    is_hidden_tmp,
    verified_read,
)

_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"
# The writer of a temporary: ``.{name}.{host}-{pid}-{random}.tmp``.
_WRITER = re.compile(r"\.([A-Za-z0-9_]+)-(\d+)-[0-9a-f]{12}\.tmp$")
# A temporary nobody has written to for this long is a leftover, whoever wrote it.
STALE_SECONDS = 24 * 3600


def hidden_tmp(final: Path) -> Path:
    """The temporary name a write uses beside ``final`` (its writer's host and pid in it)."""
    return final.with_name(f".{final.name}.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")


def sweep_leftovers(directory: Path) -> list[Path]:
    """Remove the temporaries in ``directory`` left by killed writers: those of processes
    of this host that no longer run, and those nobody wrote to for ``STALE_SECONDS``. The
    temporaries of running writes are left alone. Returns the paths removed."""
    removed = []
    try:
        names = [entry for entry in os.scandir(directory) if is_hidden_tmp(entry.name)]
    except (FileNotFoundError, NotADirectoryError):
        return removed
    now = time.time()
    for entry in names:
        writer = _WRITER.search(entry.name)
        try:
            dead = writer is not None and writer[1] == _HOST and not running(int(writer[2]))
            if dead or now - entry.stat().st_mtime > STALE_SECONDS:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except FileNotFoundError:
            continue
    return removed


def _generation(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def lake_full_in_one_line(final: Path) -> Iterator[None]:
    """A full disk while writing beside ``final`` becomes one line (LakeFull)."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise LakeFull(f"no space left in the lake for {final} ({e.strerror})") from None
        raise


def commit_file(tmp: Path, final: Path, if_generation: int | None = None) -> None:
    """Rename ``tmp`` (written beside ``final``) into place, durably: the one way a file is
    committed in a local lake. ``if_generation`` as in ``pipeline.lake.targets``."""
    try:
        with lake_full_in_one_line(final):
            _commit(tmp, final, if_generation)
    finally:
        tmp.unlink(missing_ok=True)


def _commit(tmp: Path, final: Path, if_generation: int | None) -> None:
    if if_generation is not None:
        current = _generation(final)
        if (current or 0) != if_generation:
            raise LakeConflict(f"{final} is at generation {current}, not {if_generation}: "
                               "not overwritten")
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path, if_generation: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; commit it under ``final`` only when the
    block ends without an exception; the temporary is gone in any case."""
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(final.parent)
    tmp = hidden_tmp(final)
    try:
        with lake_full_in_one_line(final):
            yield tmp
        commit_file(tmp, final, if_generation)
    finally:
        tmp.unlink(missing_ok=True)


class _LocalWrite(AtomicWrite):
    def __init__(self, target: LocalLakeTarget) -> None:
        self._final = Path(target.path)
        super().__init__(target.path)

    def generate_tmp_path(self, path: str) -> str:
        return str(hidden_tmp(Path(path)))

    def commit(self, tmp: Path) -> None:
        commit_file(tmp, self._final)


class LocalLakeFileSystem(luigi.local_target.LocalFileSystem):
    """luigi's local file system (move, rename_dont_move, copy, remove...), listing only
    committed files."""

    def listdir(self, path: str) -> list[str]:
        """Every committed file under ``path``, recursively, sorted (temporaries of running
        writes left out)."""
        return sorted(os.path.join(directory, name) for directory, _, files in os.walk(path)
                      for name in files if not is_hidden_tmp(name))


class LocalLakeTarget(LakeTarget):
    """A file of a local lake."""

    fs = LocalLakeFileSystem()

    def __init__(self, path: str | Path, format: luigi.format.Format | None = None) -> None:
        super().__init__(str(Path(path).absolute()), format)

    @property
    def file(self) -> Path:
        return Path(self.path)

    def stat(self) -> ObjectInfo | None:
        try:
            found = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return ObjectInfo(found.st_size, None, None, found.st_mtime_ns)

    def info(self) -> ObjectInfo | None:
        """Reads the whole file for its checksums (a local lake keeps none beside it)."""
        try:
            generation = os.stat(self.path).st_mtime_ns
            digests = file_digests(self.file)
        except FileNotFoundError:
            return None
        return ObjectInfo(digests.size, digests.crc32c, digests.sha256, generation)

    def _writer(self) -> AtomicWrite:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        return _LocalWrite(self)

    def _reader(self) -> BinaryIO:
        return open(self.path, "rb")

    @contextlib.contextmanager
    def staging(self) -> Iterator[Staged]:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        # The next write of a month removes what a killed one left beside it.
        sweep_leftovers(self.file.parent)
        tmp = hidden_tmp(self.file)

        def commit(path: Path, if_generation: int | None, sha256: str | None,
                    progress: Progress | None) -> ObjectInfo:
            # A rename copies no byte: the writer's own checksums stand for the file.
            commit_file(path, self.file, if_generation)
            found = self.stat()
            assert found is not None
            return found

        try:
            # The staged file is beside its final name, on the lake's own disk.
            with lake_full_in_one_line(self.file):
                yield Staged(tmp, commit)
        finally:
            tmp.unlink(missing_ok=True)

    def put(self, local: Path, *, if_generation: int | None = None, sha256: str | None = None,
            progress: Progress | None = None) -> ObjectInfo:
        with atomic_path(self.file, if_generation) as tmp:
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
        return ObjectInfo(digests.size, digests.crc32c, digests.sha256, _generation(self.file))

    @contextlib.contextmanager
    def local_file(self, *, sha256: str | None = None, progress: Progress | None = None
                   ) -> Iterator[Path]:
        if not self.file.is_file():
            raise FileNotFoundError(f"no file {self.path}")
        if sha256 is None:
            yield self.file
            return
        with verified_read(self.file, sha256, self.path) as path:
            yield path

    def remove(self, if_generation: int | None = None) -> None:
        if if_generation is not None and _generation(self.file) not in (None, if_generation):
            raise LakeConflict(f"{self.path} changed since it was read: not removed")
        self.file.unlink(missing_ok=True)
