"""CSV.gz -> Parquet with the registry's schema, streaming with bounded memory.

Three stages overlap on separate threads, each releasing the GIL for its heavy work:

1. read + hash + inflate (ISA-L): the raw file is cut into line-aligned text pieces of a
   few MB; its sha256 rides along on the same read;
2. parse: each piece goes through pyarrow's multi-threaded ``read_csv`` with explicit
   column types, so type inference can never flip a column mid-file (the "empty tail"
   quirk) and empty fields become nulls, never ``''``;
3. write (``pipeline.convert.month_writer``): row groups of 262,144 rows, written while
   the next one is gathered, through a file object that hashes the bytes as they go.

Memory stays within two row groups whatever the size of the month. The file is written under
a temporary name and renamed by the caller's atomic publication.

``ParquetizeStream`` runs stages 2 and 3 on text inflated elsewhere: a download that checks
its gzip stream anyway hands the text over as it arrives, so the month is converted while it
downloads and the gzip is inflated once (``pipeline.tasks.download``). Both entries give the
same file, byte for byte.

Why one module of some 380 lines: both entries run the same stages on the same piece format
(``_Pending``'s line cuts, the parser's error wording); apart, the two would drift.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline.convert.month_writer import ROW_GROUP_ROWS, MonthWriter, Written, all_null
from pipeline.convert.quality import QualityBlocked
from pipeline.convert.result import ConversionError, ParquetStats, show_invisible
from pipeline.core.gzipstream import GzipError, Inflater
from pipeline.core.handoff import Handoff, Stopped, Worker
from pipeline.core.months import month_key
from pipeline.core.service import HeaderMismatch, Service
from pipeline.core.text import Progress

PIECE_BYTES = 4 << 20
READ_BYTES = 1 << 18
PIECES_IN_FLIGHT = 2
# The longest line taken (the longest real record is well under 1 KB): a longer one is
# refused, so text without line ends cannot pile up in memory.
MAX_LINE = 1 << 20
# CSV text that yields no data row is refused beyond this size (a header-only file is a
# few hundred bytes; megabytes of blank lines are not a month).
EMPTY_TEXT_TOLERATED = 64 << 10


def parquetize(
    service: Service,
    month: date,
    raw: Path,
    out: Path,
    *,
    progress: Progress | None = None,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> ParquetStats:
    """Convert one month's CSV.gz at ``raw`` into Parquet at ``out`` (overwritten)."""
    pieces = _TextPieces(raw)
    try:
        written = _convert(service, month, pieces, out, row_group_rows,
                           progress and (lambda read: progress(read, pieces.total_bytes)))
    finally:
        pieces.close()
    return written.stats(pieces.total_bytes, pieces.sha256.hexdigest())


class ParquetizeStream:
    """``parquetize`` fed with the month's inflated text, in order, by another thread.

    ``add(text)`` queues whole lines for a converter thread (and waits while it is two
    pieces behind, so memory stays bounded: ``pipeline.core.handoff``);
    ``finish(source_bytes, source_sha256)`` hands over the rest, waits and gives the
    ``ParquetStats`` or raises the conversion's error. Once the conversion has failed,
    ``add`` drops the text (``failed`` says so), so a caller that inflates to check the
    gzip stream goes on unhindered. ``abort()`` stops the converter whatever happened;
    ``out`` is then not a month's file.
    """

    def __init__(self, service: Service, month: date, out: Path,
                 row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self._pending = _Pending()
        self._refused: ConversionError | None = None
        self._label = f"{service.name} {month_key(month)}"
        self._pieces: Handoff[tuple[bytes, int]] = Handoff(PIECES_IN_FLIGHT)
        self._worker = Worker(
            lambda: _convert(service, month, self._pieces, out, row_group_rows),
            "parquetize-stream", on_error=self._pieces.stop)

    @property
    def failed(self) -> bool:
        return self._refused is not None or self._worker.error is not None

    def add(self, text: bytes) -> None:
        if self._pieces.stopped:
            return
        self._pending.add(text)
        if self._pending.size >= PIECE_BYTES:
            try:
                piece = self._pending.take_lines()
            except LineTooLong as e:
                # Never raised to the caller (a download's check): the conversion fails.
                self.abort()
                self._pending = _Pending()
                self._refused = ConversionError(f"{self._label}: {e}")
                return
            if piece:
                self._put((piece, 0))

    def finish(self, source_bytes: int, source_sha256: str) -> ParquetStats:
        if self._refused is not None:
            raise self._refused
        if not self._pieces.stopped:
            if self._pending.size:
                self._put((self._pending.take_all(), 0))
            self._pieces.end()
        return self._worker.result().stats(source_bytes, source_sha256)

    def abort(self) -> None:
        self._pieces.stop()
        self._worker.join()

    def _put(self, item: tuple[bytes, int]) -> None:
        # Once the converter has failed (it stopped the hand-over) the text is dropped.
        with contextlib.suppress(Stopped):
            self._pieces.put(item)


def _convert(service: Service, month: date, pieces: Iterable[tuple[bytes, int]], out: Path,
             row_group_rows: int, progress: Callable[[int], None] | None = None) -> Written:
    """Parse line-aligned text pieces (the header line first) and write the month."""
    label = f"{service.name} {month_key(month)}"
    # Parsing a group costs as much as writing one: the next group is gathered in full
    # while the last is written, so both cores stay busy.
    with MonthWriter(service, month, out, row_group_rows, ahead=1.0) as writer:
        parser = _PieceParser(service, label)
        text_bytes = 0  # of CSV text parsed so far: where the next piece starts
        for piece, read_bytes in pieces:
            start = text_bytes
            text_bytes += len(piece)
            if parser.columns is None:
                rest = parser.take_header(piece)
                start += len(piece) - len(rest)
                piece = rest
                if not piece:
                    continue
            writer.add(parser.parse(piece, writer.rows, start))
            if progress:
                progress(read_bytes)
        if parser.columns is None:
            raise ConversionError(f"{label}: the file is empty: no header line")
        written = writer.finish()
    if written.rows == 0 and text_bytes > EMPTY_TEXT_TOLERATED:
        raise QualityBlocked(f"{label}: {text_bytes:,} bytes of CSV text hold no data row "
                             "(blank lines, or a header only); refused")
    return written


class _PieceParser:
    """Parses line-aligned CSV pieces with the service's explicit schema."""

    def __init__(self, service: Service, label: str) -> None:
        self.service, self.label = service, label
        self.columns: list[str] | None = None
        self._types = {f.name: f.type for f in service.schema}
        self._parse_options = pacsv.ParseOptions(newlines_in_values=False)

    def take_header(self, piece: bytes) -> bytes:
        end = piece.find(b"\n")
        header = piece[: end if end >= 0 else len(piece)].rstrip(b"\r")
        try:
            names = header.decode("utf-8").split(",")
            self.columns = self.service.canonical_header([n.strip('"') for n in names])
        except HeaderMismatch as e:
            # The CSV mirror is frozen (copied in July 2022) and the registry knows every
            # header it publishes: an unknown column there means another file, whatever
            # [source] new_columns says (that contract is for TLC's living Parquet files).
            frozen = "; CSV months take no new columns" if "unknown columns" in str(e) else ""
            raise ConversionError(f"{self.label}: {show_invisible(str(e))}{frozen}") from None
        except (UnicodeDecodeError, ValueError) as e:
            raise ConversionError(f"{self.label}: {e}") from None
        return piece[end + 1 :] if end >= 0 else b""

    def parse(self, piece: bytes, rows_before: int, offset: int = 0) -> pa.Table:
        """The rows of ``piece``: whole lines of CSV text starting at byte ``offset`` of
        the text, after ``rows_before`` data rows."""
        assert self.columns is not None
        try:
            table = self._read(piece, self._types)
        except pa.ArrowInvalid as e:
            # A row longer than a block fails to parse one way or another: named as such.
            if (at := long_line(piece)) is not None:
                raise ConversionError(
                    f"{self.label}: a line longer than {MAX_LINE >> 20} MiB at byte "
                    f"{offset + at:,} of the CSV text; refused") from None
            if "CSV conversion error" not in str(e):
                raise self._error(e, rows_before, piece) from None
            table = self._read_ids_written_as_decimals(piece, rows_before)
        return self._conform(table)

    def _read(self, piece: bytes, types: dict[str, pa.DataType],
              use_threads: bool = True) -> pa.Table:
        return pacsv.read_csv(
            pa.py_buffer(piece),
            # A row must fit one block: a longer line is refused (``MAX_LINE``).
            read_options=pacsv.ReadOptions(column_names=self.columns, use_threads=use_threads,
                                           block_size=MAX_LINE),
            parse_options=self._parse_options,
            convert_options=pacsv.ConvertOptions(
                column_types={c: types[c] for c in self.columns},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )

    def _read_ids_written_as_decimals(self, piece: bytes, rows_before: int) -> pa.Table:
        """Some exports write integer ids as ``1.0``: read them as doubles, cast exactly."""
        as_double = {c: pa.float64() if t == pa.int64() else t for c, t in self._types.items()}
        try:
            table = self._read(piece, as_double)
        except pa.ArrowInvalid as e:
            raise self._error(e, rows_before, piece, as_double) from None
        columns = []
        for name, column in zip(table.column_names, table.columns, strict=True):
            if self._types[name] == pa.int64():
                try:
                    column = column.cast(pa.int64(), safe=True)
                except pa.ArrowInvalid:
                    raise ConversionError(
                        f"{self.label}: column {name} holds a value that is not a whole number "
                        f"(rows {rows_before + 1}..{rows_before + table.num_rows})"
                    ) from None
            columns.append(column)
        return pa.table(columns, names=table.column_names)

    def _conform(self, table: pa.Table) -> pa.Table:
        """Columns in registry order; a column the file lacks is all null."""
        n = table.num_rows
        present = set(table.column_names)
        arrays = [
            table.column(f.name) if f.name in present else all_null(n, f.type)
            for f in self.service.schema
        ]
        return pa.Table.from_arrays(arrays, schema=self.service.schema)

    def _error(self, e: Exception, rows_before: int, piece: bytes,
               types: dict[str, pa.DataType] | None = None) -> ConversionError:
        """The refusal of a piece, naming the last good data row before the bad one. A
        multi-threaded parse does not say which row failed: the piece is parsed again on
        one thread, which does (only on this path, so the usual parse stays parallel)."""
        in_piece = None
        try:
            self._read(piece, types or self._types, use_threads=False)
        except pa.ArrowInvalid as again:
            if found := _ROW.search(str(again)):
                in_piece, e = int(found.group(1)), again
        after = rows_before + in_piece - 1 if in_piece else rows_before
        detail = " ".join(_ROW.sub("", str(e)).split())
        if len(detail) > 160:
            detail = detail[:160] + "..."
        return ConversionError(
            f"{self.label}: malformed CSV after data row {after:,}: {show_invisible(detail)}"
        )


class _TextPieces:
    """Line-aligned pieces of the inflated file, produced by a helper thread
    (``pipeline.core.handoff``).

    Iterating yields ``(piece, compressed bytes read so far)``; errors of the thread are
    raised in the consumer. ``close()`` stops the thread early.
    """

    def __init__(self, raw: Path) -> None:
        self.total_bytes = raw.stat().st_size
        self.sha256 = hashlib.sha256()
        self._raw = raw
        self._pieces: Handoff[tuple[bytes, int]] = Handoff(PIECES_IN_FLIGHT)
        self._worker = Worker(self._run, "inflate")

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        return iter(self._pieces)

    def close(self) -> None:
        self._pieces.stop()
        self._worker.join()

    def _run(self) -> None:
        try:
            with open(self._raw, "rb") as f:
                self._produce(f)
            self._pieces.end()
        except Stopped:
            pass
        except (GzipError, LineTooLong) as e:
            self._pieces.fail(ConversionError(f"{self._raw.name}: {e}"))
        except BaseException as e:  # handed to the consumer, which re-raises it
            self._pieces.fail(e)

    def _produce(self, f: BinaryIO) -> None:
        inflater, pending, read = Inflater(), _Pending(), 0
        while data := f.read(READ_BYTES):
            read += len(data)
            self.sha256.update(data)
            for text in inflater.feed(data):
                pending.add(text)
                if pending.size >= PIECE_BYTES and (piece := pending.take_lines()):
                    self._pieces.put((piece, read))
        inflater.finish()
        if pending.size:
            self._pieces.put((pending.take_all(), read))


# pyarrow's name of the failing row of a single-threaded parse (1 = the piece's first).
_ROW = re.compile(r"Row #(\d+): ")


def long_line(text: bytes) -> int | None:
    """Where the first line longer than ``MAX_LINE`` starts in ``text`` (None: none is)."""
    import numpy as np

    ends = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == ord("\n"))
    starts = np.concatenate(([0], ends + 1))
    lengths = np.diff(np.concatenate((starts, [len(text)])))
    over = np.flatnonzero(lengths > MAX_LINE)
    return int(starts[over[0]]) if len(over) else None


class LineTooLong(Exception):
    """Text with no line end for more than ``MAX_LINE`` bytes."""


class _Pending:
    """Inflated text waiting to become a piece, kept as the inflater's own chunks so that
    each byte is copied once, when a piece is joined. A line that has not ended after
    ``MAX_LINE`` bytes is refused (``LineTooLong``), so memory stays bounded whatever the
    text."""

    def __init__(self) -> None:
        self._chunks: list[bytes | memoryview] = []
        self.size = 0
        self.taken = 0  # bytes handed out in pieces: the text offset of the pending text

    def add(self, text: bytes) -> None:
        self._chunks.append(text)
        self.size += len(text)

    def take_lines(self) -> bytes:
        """Every whole line pending (b"" when no line has ended yet)."""
        for i in range(len(self._chunks) - 1, -1, -1):
            chunk = self._chunks[i]
            if isinstance(chunk, memoryview):
                break  # the tail left by the last piece: it holds no line end
            cut = chunk.rfind(b"\n") + 1
            if cut:
                tail = memoryview(chunk)[cut:]
                piece = b"".join([*self._chunks[:i], memoryview(chunk)[:cut]])
                self._chunks = [tail, *self._chunks[i + 1 :]] if len(tail) else \
                    self._chunks[i + 1 :]
                self.size -= len(piece)
                self.taken += len(piece)
                self._check_unfinished()
                return piece
        self._check_unfinished()
        return b""

    def _check_unfinished(self) -> None:
        if self.size > MAX_LINE:
            raise LineTooLong(f"a line longer than {MAX_LINE >> 20} MiB at byte "
                              f"{self.taken:,} of the CSV text; refused")

    def take_all(self) -> bytes:
        piece = b"".join(self._chunks)
        self.taken += len(piece)
        self._chunks, self.size = [], 0
        return piece
