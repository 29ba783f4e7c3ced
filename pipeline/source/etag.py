"""The content digest a source gives in its ``ETag``, checked against the bytes as they stream.

S3 (behind TLC's CloudFront) gives two forms: a single-part upload's ETag is the MD5 of the
file (``"<32 hex>"``); a multipart upload's is the MD5 of the parts' MD5s followed by the
number of parts (``"<32 hex>-N"``). The part size is not in the ETag: it is the one of the
sizes uploaders use (8 MiB for the AWS CLI and boto3, 16 MiB for others, 5 MiB the minimum,
...) that cuts the file's length into exactly N parts (else the smallest whole MiB that
does); each size that fits is computed, and the ETag must match one of them. Any other
ETag (a weak ``W/`` one, a hash of another kind) proves nothing, and the check says so
(``kind`` None): nothing is hashed then.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pipeline.core.errors import PipelineError

MIB = 1 << 20
# Part sizes of common uploaders, in MiB: S3's minimum, the AWS CLI / boto3 default, and
# the round sizes other tools choose.
PART_SIZES_MIB = (5, 8, 10, 15, 16, 25, 32, 50, 64, 100, 128, 256, 512, 1024)
# At most this many candidate part sizes are hashed (each one MD5 over the file).
MAX_CANDIDATES = 4

_MD5 = re.compile(r'"([0-9a-fA-F]{32})"')
_MULTIPART = re.compile(r'"([0-9a-fA-F]{32})-([0-9]{1,5})"')


class DigestMismatch(PipelineError):
    """The bytes received are not the file the source's digest describes."""


def part_sizes(length: int, parts: int) -> list[int]:
    """The part sizes (bytes) that cut ``length`` bytes into exactly ``parts`` parts: the
    common uploaders' sizes first, then the smallest whole MiB that fits."""
    if parts < 1 or length < parts:
        return []
    fits = [p * MIB for p in PART_SIZES_MIB if -(-length // (p * MIB)) == parts]
    if parts == 1:  # one part: every size at least the length gives the same ETag
        return [max(length, fits[0] if fits else length)]
    # Else an uploader that cut the file into N equal parts: the smallest whole MiB that
    # fits, then the exact size (each candidate costs an MD5 over the file: only when no
    # common size fits).
    smallest = -(-length // parts)
    whole_mib = -(-smallest // MIB) * MIB
    for size in (whole_mib, smallest):
        # S3 refuses parts under 5 MiB (but the last).
        if not fits and size >= 5 * MIB and -(-length // size) == parts:
            fits.append(size)
    return fits[:MAX_CANDIDATES]


def multipart_etag(data_parts: list[bytes]) -> str:
    """The ETag S3 gives a multipart upload of these parts' bytes."""
    joined = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in data_parts)
    return f'"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(data_parts)}"'


def file_etag(path: Path, part_size: int | None = None) -> str:
    """A file's S3 ETag: its MD5, or with ``part_size`` that of a multipart upload."""
    digest = EtagDigest(None, None)
    if part_size:
        digest._start_parts([part_size])
    else:
        digest.kind = "md5"
    with open(path, "rb") as f:
        while data := f.read(MIB):
            digest.feed(data)
    if part_size:
        return digest._multipart_value(part_size)
    return f'"{digest._md5.hexdigest()}"'


class EtagDigest:
    """Hashes a download's bytes as they arrive (fed in order, once each) and ``verify()``
    checks them against the ETag. ``kind``: ``md5``, ``multipart`` or None (nothing to
    check); ``proof`` says in words what proved the bytes, once verified."""

    def __init__(self, etag: str | None, length: int | None) -> None:
        self.etag, self.length = etag, length
        self.kind: str | None = None
        self.proof: str | None = None
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._parts: dict[int, list] = {}
        self._fed = 0
        value = (etag or "").strip()
        if _MD5.fullmatch(value):
            self.kind, self._expected = "md5", value.lower()
            self._start_md5()
        elif (match := _MULTIPART.fullmatch(value)) and length:
            sizes = part_sizes(length, int(match.group(2)))
            if sizes:
                self.kind, self._expected = "multipart", value.lower()
                self._start_parts(sizes)

    def _start_md5(self) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)

    def _start_parts(self, sizes: list[int]) -> None:
        # Per candidate size: [MD5 of the part being filled, bytes in it, finished digests].
        self._parts = {size: [hashlib.md5(usedforsecurity=False), 0, []] for size in sizes}

    def feed(self, data: bytes) -> None:
        self._fed += len(data)
        if not self._parts:
            if self.kind == "md5":  # else nothing to check: nothing is hashed
                self._md5.update(data)
            return
        view = memoryview(data)
        for size, state in self._parts.items():
            rest = view
            while rest:
                take = min(size - state[1], len(rest))
                state[0].update(rest[:take])
                state[1] += take
                rest = rest[take:]
                if state[1] == size:
                    state[2].append(state[0].digest())
                    state[0], state[1] = hashlib.md5(usedforsecurity=False), 0

    def _multipart_value(self, size: int) -> str:
        md5, filled, digests = self._parts[size]
        all_digests = digests + ([md5.digest()] if filled else [])
        joined = hashlib.md5(b"".join(all_digests), usedforsecurity=False).hexdigest()
        return f'"{joined}-{len(all_digests)}"'

    def verify(self) -> str | None:
        """Check the bytes fed against the ETag: the proof in words, None when the ETag
        gives no digest; DigestMismatch when the bytes differ."""
        if self.kind == "md5":
            found = f'"{self._md5.hexdigest()}"'
            if found != self._expected:
                raise DigestMismatch(f"the {self._fed:,} bytes received have MD5 {found}, but "
                                     f"the source's ETag is {self.etag}")
            self.proof = "MD5 = ETag"
        elif self.kind == "multipart":
            for size in self._parts:
                if self._multipart_value(size) == self._expected:
                    parts = self._expected.rsplit("-", 1)[1].rstrip('"')
                    self.proof = f"multipart ETag ({parts} parts of {_size(size)})"
                    break
            else:
                tried = ", ".join(_size(s) for s in self._parts)
                raise DigestMismatch(f"the {self._fed:,} bytes received do not give the "
                                     f"source's multipart ETag {self.etag} (parts of {tried})")
        return self.proof


def _size(size: int) -> str:
    return f"{size // MIB} MiB" if size % MIB == 0 else f"{size:,} bytes"
