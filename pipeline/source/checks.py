"""Checks of a file's bytes as they arrive (``BodyCheck``): a gzip stream inflated whole
(``GzipCsvCheck``), a small CSV's header (``PlainCsvCheck``), a Parquet file's magic and
footer (``ParquetCheck``); and ``BackgroundCheck``, which runs one on a helper thread so
checking overlaps with receiving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pipeline.core.gzipstream import GzipError, Inflater
from pipeline.core.handoff import Handoff, Stopped, Worker
from pipeline.core.text import one_line
from pipeline.source.errors import SourceError

MAX_HEADER_LINE = 64 << 10


class BodyCheck(Protocol):
    def feed(self, data: bytes) -> None: ...
    def finish(self) -> None: ...


class BackgroundCheck:
    """Runs a ``BodyCheck`` on a helper thread, in order, a few chunks behind the transfer
    (``pipeline.core.handoff``).

    Inflating a month's gzip costs about as long as receiving it from a fast server; both
    release the GIL, so they overlap. A refusal surfaces at the next ``feed()`` (a few MiB
    later) or at ``finish()``; ``close()`` stops the thread whatever happened.
    """

    def __init__(self, check: BodyCheck, depth: int = 8) -> None:
        self._check = check
        self._chunks: Handoff[bytes] = Handoff(depth)
        self._worker = Worker(self._run, "download-check", on_error=self._chunks.stop)

    def _run(self) -> None:
        for data in self._chunks:
            self._check.feed(data)

    def feed(self, data: bytes) -> None:
        self._worker.raise_error()
        if data:
            try:
                self._chunks.put(data)
            except Stopped:  # the check failed meanwhile: its error, not the stop
                self._worker.join()
                self._worker.raise_error()
                raise

    def close(self) -> None:
        """Wait for the chunks handed over to be checked (none more once the check failed)."""
        if self._worker.running:
            self._chunks.end()
            self._worker.join()

    def finish(self) -> None:
        self.close()
        self._worker.raise_error()
        self._check.finish()


class FirstLine:
    """Collects the first line of a text stream and hands it to ``check`` once complete."""

    def __init__(self, check: Callable[[bytes], None]) -> None:
        self._check = check
        self._head = bytearray()
        self.seen = False

    def feed(self, text: bytes) -> None:
        if self.seen:
            return
        self._head += text[: MAX_HEADER_LINE + 1]
        end = self._head.find(b"\n")
        if end >= 0:
            self.seen = True
            self._check(bytes(self._head[:end]).rstrip(b"\r"))
        elif len(self._head) > MAX_HEADER_LINE:
            raise SourceError(f"the header line is longer than {MAX_HEADER_LINE >> 10} KiB")

    def finish(self) -> None:
        if not self.seen:
            if not self._head:
                raise SourceError("the file is empty: no header line")
            self.feed(b"\n")


class GzipCsvCheck:
    """Inflates a gzip stream as it arrives: gzip and whole; with ``check_header``, also
    starting with the expected header (a month's download leaves its header to the
    conversion: see the module's docstring). ``text`` receives the inflated text, in order,
    for whoever can use it (a conversion while downloading); it must not raise."""

    def __init__(self, check_header: Callable[[bytes], None] | None = None,
                 text: Callable[[bytes], None] | None = None) -> None:
        self._first_line = FirstLine(check_header) if check_header else None
        self._text = text
        self._inflater = Inflater()

    def feed(self, data: bytes) -> None:
        try:
            for text in self._inflater.feed(data):
                if self._first_line:
                    self._first_line.feed(text)
                if self._text:
                    self._text(text)
        except GzipError as e:
            raise SourceError(str(e)) from None

    def finish(self) -> None:
        try:
            self._inflater.finish()
        except GzipError as e:
            raise SourceError(str(e)) from None
        if self._first_line:
            self._first_line.finish()


class PlainCsvCheck:
    """For small uncompressed CSV files (the zone lookup): refuse HTML, check the header."""

    def __init__(self, check_header: Callable[[bytes], None]) -> None:
        self._first_line = FirstLine(check_header)

    def feed(self, data: bytes) -> None:
        if not self._first_line.seen and data.lstrip()[:1] == b"<":
            raise SourceError(f"an HTML or XML page, not CSV (it starts with {_preview(data)})")
        self._first_line.feed(data)

    def finish(self) -> None:
        self._first_line.finish()


PARQUET_MAGIC = b"PAR1"
# Footers of real months are tens of KB; the check keeps at most twice this much of the tail.
MAX_FOOTER = 8 << 20


class ParquetCheck:
    """Checks a Parquet file as it arrives: ``PAR1`` at both ends and a footer that parses
    (the schema's column names go to ``check_columns``). Only the file's tail is kept."""

    def __init__(self, check_columns: Callable[[list[str]], object] | None = None) -> None:
        self._check_columns = check_columns
        self._head = bytearray()
        self._tail = bytearray()
        self._size = 0

    def feed(self, data: bytes) -> None:
        if len(self._head) < 4:
            self._head += data[: 4 - len(self._head)]
            if len(self._head) == 4 and self._head != PARQUET_MAGIC:
                raise SourceError(
                    f"not a Parquet file (it starts with {_preview(bytes(self._head))})")
        self._size += len(data)
        self._tail += data
        if len(self._tail) > 2 * MAX_FOOTER:
            del self._tail[: len(self._tail) - MAX_FOOTER]

    def finish(self) -> None:
        if self._size < 12 or self._tail[-4:] != PARQUET_MAGIC:
            raise SourceError(f"not a whole Parquet file ({self._size} bytes, no PAR1 footer)")
        footer = int.from_bytes(self._tail[-8:-4], "little")
        if footer + 12 > self._size:
            raise SourceError(f"the Parquet footer length {footer} does not fit the file")
        if footer + 8 > len(self._tail):
            raise SourceError(f"the Parquet footer is longer than {MAX_FOOTER >> 20} MB")
        # Imported here: only Parquet downloads need pyarrow in this module.
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            meta = pq.read_metadata(pa.BufferReader(bytes(self._tail[-(footer + 8):])))
        except (OSError, pa.ArrowException) as e:
            raise SourceError(f"the Parquet footer is unreadable: {one_line(e, 160)}") from None
        if self._check_columns:
            self._check_columns(meta.schema.to_arrow_schema().names)


def _preview(data: bytes) -> str:
    return repr(data[:20].decode("utf-8", "replace"))


def header_check(columns_of: Callable[[list[str]], list[str]]) -> Callable[[bytes], None]:
    """Turn a header-to-columns function into a check of a raw header line."""

    def check(line: bytes) -> None:
        try:
            names = line.decode("utf-8").split(",")
        except UnicodeDecodeError:
            raise SourceError("the header line is not UTF-8 text") from None
        columns_of([name.strip().strip('"') for name in names])

    return check
