"""The sha256 of a file, read in large blocks (hashlib releases the GIL, so a helper
thread hashes while others work). The manifest records it for the source and the Parquet."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 4 << 20


def file_sha256(path: Path) -> tuple[int, str]:
    """(size in bytes, hex sha256) of the file at ``path``."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while data := f.read(BLOCK):
            digest.update(data)
            size += len(data)
    return size, digest.hexdigest()
