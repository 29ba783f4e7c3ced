"""The scratch directory: where a host stages the files a bucket lake's tasks read and write.

A bucket lake keeps nothing on local disk for longer than a task: a download lands here
before its upload, a raw file is fetched here to be converted, a month's Parquet is written
here before its upload and fetched here to be loaded into a local warehouse. Every staged
file is removed when its block ends, also on failure. A process killed outright cannot
remove its files: staged names start with the process id, and the first use of the scratch
directory in a process removes the files of processes that no longer run. Scratch is per
host: never point two hosts at one directory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.processes import running
from pipeline.lake.targets import LakeFull

DEFAULT_NAME = "taxi-pipeline-scratch"
# A staged file, or the temporary a writer keeps beside it (".{staged name}.<random>.tmp").
_STAGED = re.compile(r"^\.?(\d+)-[0-9a-f]{12}-")


def default_scratch() -> Path:
    """``{system temp dir}/taxi-pipeline-scratch``."""
    return Path(tempfile.gettempdir()) / DEFAULT_NAME


class Scratch:
    """One directory of staged files. Created on first use."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory).absolute() if directory else default_scratch()
        self._swept_by: int | None = None

    def __repr__(self) -> str:
        return f"Scratch({str(self.directory)!r})"

    def ready(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._swept_by != os.getpid():
            self._swept_by = os.getpid()
            self.sweep()
        return self.directory

    def sweep(self) -> list[Path]:
        """Remove the files staged by processes that no longer run; the paths removed."""
        removed = []
        for path in self.directory.iterdir() if self.directory.is_dir() else ():
            match = _STAGED.match(path.name)
            if match and not running(int(match[1])):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    @contextlib.contextmanager
    def file(self, name: str) -> Iterator[Path]:
        """A fresh path for ``name`` (its suffix kept), removed when the block ends."""
        path = self.ready() / f"{os.getpid()}-{uuid.uuid4().hex[:12]}-{Path(name).name}"
        try:
            yield path
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise LakeFull(f"no space left in the scratch directory {self.directory} for "
                               f"{Path(name).name} ({e.strerror}): free space or set "
                               "[lake] scratch") from None
            raise
        finally:
            path.unlink(missing_ok=True)

    def staged(self) -> list[Path]:
        """What is staged now (for checks and tests)."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if _STAGED.match(p.name))
