"""The one inflater of the pipeline: whole streams pass byte for byte, however the bytes
are sliced; anything short of a whole gzip stream is refused with one line."""

from __future__ import annotations

import gzip

import pytest

from pipeline.core.gzipstream import MAX_STEP, GzipError, Inflater

TEXT = b"VendorID,fare_amount\n" + b"".join(b"%d,%d.5\n" % (i % 3, i) for i in range(200_000))
# Byte-by-byte slicing takes a call per byte: those cases use a stream of a few KB.
GZ = gzip.compress(TEXT[:30_000], mtime=0)


def inflate(data: bytes, slice_bytes: int) -> bytes:
    inflater, out = Inflater(), []
    for i in range(0, len(data), slice_bytes):
        for text in inflater.feed(data[i:i + slice_bytes]):
            assert len(text) <= MAX_STEP
            out.append(text)
    inflater.finish()
    return b"".join(out)


# Slices of 1-3 bytes put member boundaries inside slices and between them; 3 MiB holds
# whole members, each inflating to more than one MAX_STEP.
@pytest.mark.parametrize("slice_bytes", [1, 2, 3, 4096, 3 << 20])
def test_whole_streams_of_one_or_more_members_inflate_exactly(slice_bytes: int) -> None:
    members = [TEXT[:3000], TEXT[3000:3001], TEXT[3001:9000]] if slice_bytes < 4 else [TEXT] * 3
    data = b"".join(gzip.compress(member, compresslevel=1, mtime=0) for member in members)
    assert inflate(data, slice_bytes) == b"".join(members)


def _flipped(at: int) -> bytes:
    data = bytearray(GZ)
    data[at] ^= 0x10
    return bytes(data)


@pytest.mark.parametrize(("data", "message"), [
    (GZ[: len(GZ) // 2], "truncated gzip stream: it ends before its end-of-stream marker"),
    (GZ[:-4], "truncated gzip stream"),  # the length of the trailer is missing
    (_flipped(len(GZ) // 2), "corrupt gzip stream"),
    (_flipped(len(GZ) - 6), "corrupt gzip stream"),  # the CRC-32 itself
    (GZ + b"x", "unexpected bytes after the end of the gzip stream"),
    (GZ + b"\0" * 512, "unexpected bytes after the end of the gzip stream"),
    (b"<!DOCTYPE html><html>", "not a gzip file (it starts with '<!"),
    (b"", "the file is empty"),
])
@pytest.mark.parametrize("slice_bytes", [1, 64 << 10])
def test_anything_but_a_whole_stream_is_refused_in_one_line(data: bytes, message: str,
                                                          slice_bytes: int) -> None:
    with pytest.raises(GzipError) as error:
        inflate(data, slice_bytes)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
