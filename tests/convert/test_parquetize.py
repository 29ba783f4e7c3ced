"""The conversion step on its own: exact rows, one schema, nulls as nulls, bad files refused."""

from __future__ import annotations

import gzip
import hashlib
import random
import threading
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline.convert import parquetize as parquetize_module
from pipeline.convert.parquetize import ParquetizeStream, parquetize
from pipeline.convert.result import ConversionError
from pipeline.core.datasets import SERVICES
from pipeline.core.gzipstream import Inflater
from tests.conftest import Release


def convert(release: Release, tmp_path: Path, service: str, month: date, **kw: object):
    raw = release.root / service / f"{service}_tripdata_{month:%Y-%m}.csv.gz"
    out = tmp_path / f"{service}-{month:%Y-%m}.parquet"
    stats = parquetize(SERVICES[service], month, raw, out, **kw)  # type: ignore[arg-type]
    return stats, out, raw


def test_yellow_month_with_empty_tail(release: Release, tmp_path: Path) -> None:
    facts = release.of("yellow", "2021-01")
    stats, out, raw = convert(release, tmp_path, "yellow", date(2021, 1, 1), row_group_rows=7_000)
    table = pq.read_table(out)
    assert table.num_rows == stats.rows == facts.rows == 30_000
    assert table.schema == SERVICES["yellow"].schema
    assert table.schema.field("tpep_pickup_datetime").type == pa.timestamp("us")
    # The empty tail: ids stay int64 with nulls, the flag is null, never ''.
    assert facts.empty_tail_rows > 2000
    for column in ("VendorID", "passenger_count", "RatecodeID", "payment_type"):
        assert table.schema.field(column).type == pa.int64()
        assert table.column(column).null_count == facts.empty_tail_rows
    flag = table.column("store_and_fwd_flag")
    assert flag.null_count == facts.empty_tail_rows
    assert "" not in flag.to_pylist()
    assert table.column("VendorID")[-1].as_py() is None
    # Refunds are kept, out-of-month pickups counted.
    assert pc.sum(pc.less(table.column("total_amount"), 0)).as_py() >= facts.refund_rows > 0
    assert stats.rows_outside_month == facts.rows_outside_month > 0
    # Row groups of the requested size; checksums describe the bytes on disk.
    assert pq.read_metadata(out).num_row_groups == stats.row_groups == 5
    assert stats.parquet_sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert stats.parquet_bytes == out.stat().st_size
    assert stats.source_sha256 == hashlib.sha256(raw.read_bytes()).hexdigest()


@pytest.mark.parametrize("month", [date(2019, 12, 1), date(2020, 1, 1), date(2021, 1, 1)])
def test_green_months_share_one_schema_with_or_without_ehail_fee(
    release: Release, tmp_path: Path, month: date
) -> None:
    facts = release.of("green", f"{month:%Y-%m}")
    _, out, _ = convert(release, tmp_path, "green", month)
    table = pq.read_table(out)
    assert table.schema == SERVICES["green"].schema
    fee = table.column("ehail_fee")
    assert fee.type == pa.float64()
    if facts.ehail_fee == "values":
        assert 0 < len(fee) - fee.null_count < len(fee)
    else:
        assert fee.null_count == len(fee) == facts.rows


@pytest.mark.parametrize("month", [date(2019, 1, 1), date(2020, 1, 1)])
def test_fhv_header_spellings_publish_one_schema(release: Release, tmp_path: Path,
                                                 month: date) -> None:
    facts = release.of("fhv", f"{month:%Y-%m}")
    _, out, _ = convert(release, tmp_path, "fhv", month)
    table = pq.read_table(out)
    assert table.schema == SERVICES["fhv"].schema
    assert table.num_rows == facts.rows
    assert table.column("PULocationID").null_count > 0  # FHV rows without a location


def write_gz(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode()))
    return path


def test_ids_written_as_decimals_are_cast_exactly(tmp_path: Path) -> None:
    header = ",".join(SERVICES["fhv"].columns)
    raw = write_gz(tmp_path / "f.csv.gz",
                   f"{header}\nB1,2019-01-01 00:00:00,2019-01-01 00:10:00,264.0,,,\n")
    stats = parquetize(SERVICES["fhv"], date(2019, 1, 1), raw, tmp_path / "f.parquet")
    table = pq.read_table(tmp_path / "f.parquet")
    assert stats.rows == 1
    assert table.column("PULocationID").to_pylist() == [264]
    assert table.column("DOLocationID").to_pylist() == [None]


def test_a_fractional_id_is_refused_not_truncated(tmp_path: Path) -> None:
    header = ",".join(SERVICES["fhv"].columns)
    raw = write_gz(tmp_path / "f.csv.gz",
                   f"{header}\nB1,2019-01-01 00:00:00,2019-01-01 00:10:00,264.5,,,\n")
    with pytest.raises(ConversionError, match="PULocationID holds a value that is not a whole"):
        parquetize(SERVICES["fhv"], date(2019, 1, 1), raw, tmp_path / "f.parquet")


def test_a_row_with_too_many_fields_is_a_one_line_error(tmp_path: Path) -> None:
    header = ",".join(SERVICES["fhv"].columns)
    raw = write_gz(tmp_path / "f.csv.gz",
                   f"{header}\nB1,2019-01-01 00:00:00,2019-01-01 00:10:00,1,2,,B2,extra\n")
    with pytest.raises(ConversionError) as error:
        parquetize(SERVICES["fhv"], date(2019, 1, 1), raw, tmp_path / "f.parquet")
    assert "\n" not in str(error.value)
    assert "fhv 2019-01: malformed CSV after data row 0" in str(error.value)


def test_truncated_gzip_is_refused(release: Release, tmp_path: Path) -> None:
    whole = (release.root / "yellow" / "yellow_tripdata_2021-01.csv.gz").read_bytes()
    raw = tmp_path / "cut.csv.gz"
    raw.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ConversionError, match="truncated gzip stream"):
        parquetize(SERVICES["yellow"], date(2021, 1, 1), raw, tmp_path / "cut.parquet")


def test_header_only_month_gives_an_empty_file_with_the_schema(tmp_path: Path) -> None:
    raw = write_gz(tmp_path / "e.csv.gz", ",".join(SERVICES["yellow"].columns) + "\n")
    stats = parquetize(SERVICES["yellow"], date(2021, 1, 1), raw, tmp_path / "e.parquet")
    assert stats.rows == 0
    assert pq.read_table(tmp_path / "e.parquet").schema == SERVICES["yellow"].schema
    assert pq.read_metadata(tmp_path / "e.parquet").num_row_groups == stats.row_groups


def test_pieces_cut_anywhere_give_the_same_file(release: Release, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Small reads and pieces put line ends at every kind of place: inside a read, at a
    chunk's edge, in a tail carried over to the next piece. The file must not change."""
    whole, out, _ = convert(release, tmp_path, "yellow", date(2021, 1, 1))
    assert whole.row_groups == 1  # one piece of text at the default sizes
    monkeypatch.setattr(parquetize_module, "READ_BYTES", 997)
    monkeypatch.setattr(parquetize_module, "PIECE_BYTES", 40_009)
    cut = parquetize(SERVICES["yellow"], date(2021, 1, 1),
                     release.root / "yellow" / "yellow_tripdata_2021-01.csv.gz",
                     tmp_path / "cut.parquet")
    assert cut == whole
    assert pq.read_table(tmp_path / "cut.parquet").equals(pq.read_table(out))


@pytest.mark.parametrize("seed", range(5))
def test_pending_text_becomes_whole_lines_and_loses_nothing(seed: int) -> None:
    rng = random.Random(seed)
    lines = [b"x" * rng.choice([0, 1, 5, 80, 3000]) + b"\n" for _ in range(400)]
    text = b"".join(lines) + b"no line end at the end"
    pending, pieces, at = parquetize_module._Pending(), [], 0
    while at < len(text):
        size = rng.choice([1, 7, 100, 2500, 9000])
        pending.add(text[at : at + size])
        at += size
        if pending.size >= 5000 and (piece := pending.take_lines()):
            pieces.append(piece)
    pieces.append(pending.take_all())
    assert b"".join(pieces) == text
    assert all(piece.endswith(b"\n") for piece in pieces[:-1])
    assert pieces[-1].endswith(b"at the end")
    assert pending.size == 0


def stream_convert(raw: Path, out: Path, service: str, month: date, chunk: int,
                   **kw: object) -> ParquetizeStream:
    """Feed ``raw`` to a ParquetizeStream as a download's check does: ``chunk`` bytes of
    gzip at a time, inflated, the text handed over in order."""
    stream = ParquetizeStream(SERVICES[service], month, out, **kw)  # type: ignore[arg-type]
    inflater, data = Inflater(), raw.read_bytes()
    for at in range(0, len(data), chunk):
        for text in inflater.feed(data[at : at + chunk]):
            stream.add(text)
    inflater.finish()
    return stream


@pytest.mark.parametrize(("chunk", "piece_bytes"), [(1 << 20, 4 << 20), (997, 40_009)])
def test_a_stream_of_text_gives_the_file_parquetize_gives(
        release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int,
        piece_bytes: int) -> None:
    """The conversion while downloading and the conversion of the raw file make the same
    bytes, whatever the size of the chunks and pieces."""
    monkeypatch.setattr(parquetize_module, "PIECE_BYTES", piece_bytes)
    whole, out, raw = convert(release, tmp_path, "yellow", date(2021, 1, 1),
                              row_group_rows=7_000)
    streamed_out = tmp_path / "streamed.parquet"
    stream = stream_convert(raw, streamed_out, "yellow", date(2021, 1, 1), chunk,
                            row_group_rows=7_000)
    streamed = stream.finish(raw.stat().st_size, hashlib.sha256(raw.read_bytes()).hexdigest())
    assert streamed == whole
    assert streamed.rows == release.of("yellow", "2021-01").rows and streamed.row_groups == 5
    assert streamed_out.read_bytes() == out.read_bytes()


def test_a_stream_the_conversion_refuses_drops_the_rest_and_says_why(tmp_path: Path) -> None:
    header = ",".join(SERVICES["fhv"].columns)
    good = "B1,2019-01-01 00:00:00,2019-01-01 00:10:00,1,2,,B2\n"
    raw = write_gz(tmp_path / "f.csv.gz", f"{header}\n{good}B1,not a time,,1,2,,B2\n"
                   + good * 1_000_000)
    stream = stream_convert(raw, tmp_path / "f.parquet", "fhv", date(2019, 1, 1), 1 << 16)
    # 55 MB of text, a dozen pieces: the feeder could not have handed them all over unless
    # the converter had stopped at the first and the rest were dropped.
    assert stream.failed
    # The bad row is the second: it comes after data row 1.
    with pytest.raises(ConversionError, match="fhv 2019-01: malformed CSV after data row 1:"):
        stream.finish(raw.stat().st_size, "")


def test_an_aborted_stream_stops_its_converter(release: Release, tmp_path: Path) -> None:
    stream = ParquetizeStream(SERVICES["yellow"], date(2021, 1, 1), tmp_path / "y.parquet")
    stream.add(b",".join(c.encode() for c in SERVICES["yellow"].columns) + b"\n")
    stream.abort()
    assert not any(t.name == "parquetize-stream" for t in threading.enumerate())
