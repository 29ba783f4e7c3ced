"""Arrow record batches as PostgreSQL binary ``COPY`` data, built column-wise with numpy.

Binary COPY spares the server the text parsing of every timestamp and float (the costly
part of a CSV ``COPY``), and building it column by column keeps the client far cheaper
than the server, so a load runs at the server's speed. A binary row is a field count,
then per field a 4-byte length (-1 for NULL) and the value in network byte order, so
rows differ in size only by their NULLs and text lengths. A batch's rows are grouped by
that layout (few groups in practice: the empty tail, flag lengths) and each group is one
packed numpy record array filled a column at a time. Row order is therefore not kept
within a batch, which a table does not promise anyway.

Supported Arrow types are the registry's: int64, float64, timestamp[us] (naive), string,
date32; they map to BIGINT, DOUBLE PRECISION, TIMESTAMP, TEXT, DATE.

Binary COPY data carries no column names: fields go to the columns the ``COPY`` statement
lists, in order, and ``pipeline.warehouses.postgres`` lists the table's lower-case names
(``vendorid`` for the registry's ``VendorID``), whatever the batch's field names are.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"

# PostgreSQL counts timestamps and dates from 2000-01-01, Arrow from 1970-01-01.
_EPOCH_SECONDS = 946_684_800
_EPOCH_DAYS = 10_957

# Arrow type -> (numpy dtype of the Arrow buffer, big-endian wire dtype, epoch shift)
_FIXED: dict[pa.DataType, tuple[str, str, int]] = {
    pa.int64(): ("<i8", ">i8", 0),
    pa.float64(): ("<f8", ">f8", 0),
    pa.timestamp("us"): ("<i8", ">i8", _EPOCH_SECONDS * 1_000_000),
    pa.date32(): ("<i4", ">i4", _EPOCH_DAYS),
}
_TEXT = {pa.string(): np.int32, pa.large_string(): np.int64}
# Above this many combinations of layouts a single int64 key could overflow.
_KEY_LIMIT = 1 << 62


def check_schema(schema: pa.Schema) -> None:
    """Refuse, before any data is sent, a column type this encoder does not write."""
    for field in schema:
        if field.type not in _FIXED and field.type not in _TEXT:
            raise TypeError(f"column {field.name}: Arrow type {field.type} has no binary COPY "
                            "encoding here")


def encode(batch: pa.RecordBatch) -> list[memoryview]:
    """The batch's rows as binary COPY tuples, in one or more contiguous chunks."""
    if batch.num_rows == 0:
        return []
    columns = [_Column(array) for array in batch.columns]
    return [_pack(columns, rows, layout) for rows, layout in _groups(columns)]


class _Column:
    """One Arrow array and the per-row facts that decide its fields' layout."""

    def __init__(self, array: pa.Array) -> None:
        self.array = array
        self.text = array.type in _TEXT
        if not self.text and array.type not in _FIXED:
            raise TypeError(f"Arrow type {array.type} has no binary COPY encoding here")
        self._values: np.ndarray | None = None

    def layout_codes(self) -> np.ndarray | None:
        """Per row: 0 for NULL, else 1 (fixed width) or byte length + 1 (text); None when
        every row has the same layout (fixed width, no NULL)."""
        valid = (self.array.is_valid().to_numpy(zero_copy_only=False)
                 if self.array.null_count else None)
        if self.text:
            codes = np.diff(self.offsets()).astype(np.int64) + 1
            if valid is not None:
                codes[~valid] = 0
            return codes
        return None if valid is None else valid.astype(np.int64)

    def offsets(self) -> np.ndarray:
        a = self.array
        return np.frombuffer(a.buffers()[1], dtype=_TEXT[a.type], count=len(a) + 1,
                             offset=a.offset * np.dtype(_TEXT[a.type]).itemsize)

    def values(self) -> np.ndarray:
        """The fixed-width values, shifted to PostgreSQL's epoch (NULL slots undefined)."""
        if self._values is None:
            native, _, shift = _FIXED[self.array.type]
            a = self.array
            values = np.frombuffer(a.buffers()[1], dtype=native, count=len(a),
                                   offset=a.offset * np.dtype(native).itemsize)
            self._values = values - shift if shift else values
        return self._values

    def text_values(self, rows: np.ndarray | None, length: int) -> np.ndarray:
        """The text bytes of ``rows`` (all ``length`` bytes long) as one void column."""
        offsets = self.offsets()
        data = self.array.buffers()[2]
        if rows is None:  # every row has this length: the bytes are already contiguous
            return np.frombuffer(data, dtype=f"V{length}", count=len(self.array),
                                 offset=int(offsets[0]))
        raw = np.frombuffer(data, dtype=np.uint8)
        picked = raw[offsets[rows][:, None] + np.arange(length)]
        return np.ascontiguousarray(picked).view(f"V{length}").reshape(len(rows))


def _groups(columns: list[_Column]
            ) -> list[tuple[np.ndarray | None, list[int | None]]]:
    """(row indices or None for all rows, layout code per column) for each layout."""
    codes = [c.layout_codes() for c in columns]
    varying = [i for i, c in enumerate(codes) if c is not None and c.min() != c.max()]
    first = [None if c is None else int(c[0]) for c in codes]
    if not varying:
        return [(None, first)]
    key = _layout_key([codes[i] for i in varying])  # type: ignore[misc]
    _, inverse = np.unique(key, axis=0 if key.ndim == 2 else None, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse))])
    groups = []
    for lo, hi in itertools.pairwise(bounds):
        rows = order[lo:hi]
        layout = [None if c is None else int(c[rows[0]]) for c in codes]
        groups.append((rows, layout))
    return groups


def _layout_key(codes: list[np.ndarray]) -> np.ndarray:
    """One int64 per row naming its layout; rows of codes when they would not fit."""
    radices = [int(c.max()) + 1 for c in codes]
    if np.prod([float(r) for r in radices]) >= _KEY_LIMIT:
        return np.stack(codes, axis=1)
    key = np.zeros(len(codes[0]), dtype=np.int64)
    for c, radix in zip(codes, radices, strict=True):
        key = key * radix + c
    return key


def _pack(columns: list[_Column], rows: np.ndarray | None, layout: list[int | None]
          ) -> memoryview:
    """One packed record per row of the group, then its bytes."""
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for j, (column, code) in enumerate(zip(columns, layout, strict=True)):
        fields.append((f"l{j}", ">i4"))
        if code == 0:
            continue
        if column.text:
            if code > 1:
                fields.append((f"v{j}", f"V{code - 1}"))
        else:
            fields.append((f"v{j}", _FIXED[column.array.type][1]))
    count = len(columns[0].array) if rows is None else len(rows)
    record = np.empty(count, dtype=np.dtype(fields))
    record["n"] = len(columns)
    for j, (column, code) in enumerate(zip(columns, layout, strict=True)):
        if code == 0:
            record[f"l{j}"] = -1
        elif column.text:
            record[f"l{j}"] = code - 1
            if code > 1:
                record[f"v{j}"] = column.text_values(rows, code - 1)
        else:
            record[f"l{j}"] = np.dtype(_FIXED[column.array.type][1]).itemsize
            values = column.values()
            record[f"v{j}"] = values if rows is None else values[rows]
    return record.view(np.uint8).data
