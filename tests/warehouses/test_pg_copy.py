"""Binary COPY layouts: what ``pg_copy.encode`` writes, decoded here from PostgreSQL's
documented format (field count, then per field a length, -1 for NULL, and the value in
network byte order), for every registry type and every pattern of NULLs."""

from __future__ import annotations

import struct
from datetime import datetime

import pyarrow as pa
import pytest

from pipeline.warehouses import pg_copy

EPOCH_2000_US = 946_684_800_000_000  # PostgreSQL counts timestamps from 2000-01-01


def decode(chunks: list[memoryview], types: list[pa.DataType]) -> list[tuple]:
    data, rows, at = b"".join(bytes(c) for c in chunks), [], 0
    while at < len(data):
        (count,) = struct.unpack_from(">h", data, at)
        at += 2
        assert count == len(types)
        row = []
        for kind in types:
            (length,) = struct.unpack_from(">i", data, at)
            at += 4
            if length == -1:
                row.append(None)
                continue
            raw = data[at:at + length]
            at += length
            if kind == pa.int64():
                assert length == 8
                row.append(struct.unpack(">q", raw)[0])
            elif kind == pa.float64():
                assert length == 8
                row.append(struct.unpack(">d", raw)[0])
            elif kind == pa.timestamp("us"):
                assert length == 8
                row.append(struct.unpack(">q", raw)[0] + EPOCH_2000_US)
            else:
                row.append(raw.decode("utf-8"))
        rows.append(tuple(row))
    return rows


BATCH = pa.record_batch({
    "id": pa.array([1, None, -(2**63), 2**63 - 1, 0], pa.int64()),
    "money": pa.array([2.5, -220.0, None, float("inf"), 1e-300], pa.float64()),
    "at": pa.array([datetime(2021, 1, 1, 0, 30, 10), None, datetime(1999, 12, 31, 23, 59, 59),
                    datetime(2088, 5, 1), datetime(2000, 1, 1)], pa.timestamp("us")),
    "flag": pa.array(["N", "", None, " ", "Ünïcode ✓"], pa.string()),
})


def expected(batch: pa.RecordBatch) -> list[tuple]:
    def micros(value: datetime | None) -> int | None:
        if value is None:
            return None
        return (value - datetime(1970, 1, 1)) // pa.scalar(1, pa.duration("us")).as_py()

    rows = batch.to_pylist()
    return [(r["id"], r["money"], micros(r["at"]), r["flag"]) for r in rows]


def test_every_type_and_null_pattern_round_trips() -> None:
    found = decode(pg_copy.encode(BATCH), list(BATCH.schema.types))
    # Rows are grouped by layout, so their order within a batch is not kept.
    assert sorted(found, key=repr) == sorted(expected(BATCH), key=repr)


def test_a_batch_of_many_layouts_keeps_every_row_once() -> None:
    rows = 3_000
    batch = pa.record_batch({
        "id": pa.array([None if i % 7 == 0 else i for i in range(rows)], pa.int64()),
        "flag": pa.array([None if i % 5 == 0 else "Y" * (i % 4) for i in range(rows)]),
    })
    found = decode(pg_copy.encode(batch), [pa.int64(), pa.string()])
    assert len(found) == rows
    assert sorted(found, key=repr) == sorted(
        [(r["id"], r["flag"]) for r in batch.to_pylist()], key=repr)


def test_an_empty_batch_writes_nothing() -> None:
    assert pg_copy.encode(BATCH.slice(0, 0)) == []


def test_a_type_without_an_encoding_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(TypeError, match="column x: Arrow type int32"):
        pg_copy.check_schema(pa.schema([("x", pa.int32())]))


def test_the_stream_header_and_trailer_are_postgresqls() -> None:
    assert pg_copy.SIGNATURE[:11] == b"PGCOPY\n\xff\r\n\x00"
    assert len(pg_copy.SIGNATURE) == 19  # signature, flags, header extension length
    assert struct.pack(">h", -1) == pg_copy.TRAILER
