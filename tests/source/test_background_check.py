"""The download's check on its helper thread: in order, refusals surface, no thread left."""

from __future__ import annotations

import gzip
import threading

import pytest

from pipeline.source.checks import BackgroundCheck, GzipCsvCheck
from pipeline.source.errors import SourceError


class Recording:
    def __init__(self, refuse_at: int | None = None) -> None:
        self.seen: list[bytes] = []
        self.refuse_at = refuse_at
        self.finished = False

    def feed(self, data: bytes) -> None:
        if len(self.seen) == self.refuse_at:
            raise SourceError(f"refused chunk {self.refuse_at}")
        self.seen.append(data)

    def finish(self) -> None:
        self.finished = True


def check_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "download-check"]


def test_chunks_reach_the_check_in_order_and_the_thread_ends() -> None:
    inner = Recording()
    check = BackgroundCheck(inner, depth=2)
    chunks = [bytes([i]) * 1000 for i in range(50)]
    for chunk in chunks:
        check.feed(chunk)
    check.finish()
    assert inner.seen == chunks and inner.finished
    assert not check_threads()


def test_a_refusal_on_the_helper_thread_surfaces_in_the_transfer() -> None:
    inner = Recording(refuse_at=3)
    check = BackgroundCheck(inner)
    with pytest.raises(SourceError, match="refused chunk 3"):
        for i in range(10_000):  # a feed raises once the helper has met the refusal
            check.feed(b"x%d" % i)
        check.finish()
    check.close()
    assert inner.seen == [b"x0", b"x1", b"x2"] and not inner.finished
    assert not check_threads()


def test_a_corrupt_gzip_is_refused_at_finish() -> None:
    body = bytearray(gzip.compress(b"a,b\n" + b"1,2\n" * 100_000))
    body[len(body) // 2] ^= 0xFF
    check = BackgroundCheck(GzipCsvCheck())
    with pytest.raises(SourceError, match=r"corrupt gzip|truncated"):
        for start in range(0, len(body), 4096):
            check.feed(bytes(body[start:start + 4096]))
        check.finish()
    check.close()
    assert not check_threads()
