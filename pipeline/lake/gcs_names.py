"""What names a GCS lake and how a process talks to it, without the Google client: the
``gs://`` scheme, bucket names, ``GCSSettings``. Every lake is built with these, so they live
apart from ``pipeline.lake.gcs``, whose client libraries (google-cloud-storage, grpc: about
30 MB and 0.1 s per process) load only when a ``gs://`` target is made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.core.errors import SettingsError

SCHEME = "gs://"
CHUNK_QUANTUM = 256 * 1024
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


@dataclass(frozen=True)
class GCSSettings:
    """How this process talks to GCS: resumable upload chunk (MiB, a multiple of 0.25) and
    seconds to connect and per request. ``[gcs] chunk_mib`` and ``[gcs] timeout``."""

    chunk_mib: float = 100.0
    timeout: float = 60.0

    def __post_init__(self) -> None:
        chunk = round(self.chunk_mib * (1 << 20))
        if chunk <= 0 or chunk % CHUNK_QUANTUM:
            raise SettingsError(f"[gcs] chunk_mib = {self.chunk_mib:g} is not a positive "
                                "multiple of 0.25 (256 KiB)")
        if self.timeout <= 0:
            raise SettingsError(f"[gcs] timeout = {self.timeout:g} is not a positive number "
                                "of seconds")

    @property
    def chunk_bytes(self) -> int:
        return round(self.chunk_mib * (1 << 20))

    @property
    def timeouts(self) -> tuple[float, float]:
        return (self.timeout, self.timeout)


def is_bucket_name(name: str) -> bool:
    return bool(_BUCKET.match(name))
