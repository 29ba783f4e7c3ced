"""Hostile source text is bounded and named (issue 26, Builds 6 and 9): a line longer than
1 MiB is refused on one line naming its byte offset, whichever way the text comes (a raw
file, or text handed over while downloading); a file of megabytes that yields no row is a
quality failure; a 2 GiB gzip with no newline is refused within the conversion's usual
memory (measured in a subprocess); header errors show invisible characters; a malformed
row is counted right."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from isal import isal_zlib

from pipeline.convert.parquetize import MAX_LINE, parquetize
from pipeline.convert.quality import QualityBlocked
from pipeline.convert.result import ConversionError
from pipeline.core.datasets import SERVICES
from tests.conftest import Release
from tests.convert.test_parquetize import stream_convert

FHV = SERVICES["fhv"]
JAN = date(2019, 1, 1)
HEADER = ",".join(FHV.columns) + "\n"
GOOD = "B1,2019-01-01 00:00:00,2019-01-01 00:10:00,1,2,,B2\n"


def gz(path: Path, text: bytes) -> Path:
    path.write_bytes(gzip.compress(text, compresslevel=1))
    return path


def gz_from(path: Path, block: bytes, blocks: int, head: bytes = b"") -> Path:
    """A gzip of ``head`` then ``blocks`` x ``block``, compressed as it is generated: a
    small file that inflates to gigabytes."""
    packer = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
    with open(path, "wb") as f:
        f.write(packer.compress(head))
        for _ in range(blocks):
            f.write(packer.compress(block))
        f.write(packer.flush())
    return path


@pytest.mark.parametrize("way", ["raw file", "while downloading"])
def test_a_line_longer_than_1_mib_is_refused_naming_its_offset(tmp_path: Path,
                                                               way: str) -> None:
    before = HEADER + GOOD * 1000
    text = (before + "B1," + "x" * (MAX_LINE + 10) + "\n" + GOOD * 1000).encode()
    raw = gz(tmp_path / "f.csv.gz", text)
    with pytest.raises(ConversionError) as error:
        if way == "raw file":
            parquetize(FHV, JAN, raw, tmp_path / "f.parquet")
        else:
            stream_convert(raw, tmp_path / "f.parquet", "fhv", JAN, 1 << 16).finish(0, "")
    message = str(error.value)
    assert "\n" not in message
    assert f"a line longer than 1 MiB at byte {len(before.encode()):,} of the CSV text" \
        in message


def test_text_without_a_line_end_is_refused_where_it_starts(tmp_path: Path) -> None:
    head = (HEADER + GOOD * 10).encode()
    raw = gz_from(tmp_path / "f.csv.gz", b"y" * (1 << 20), 64, head)
    with pytest.raises(ConversionError, match=f"a line longer than 1 MiB at byte {len(head):,}"):
        parquetize(FHV, JAN, raw, tmp_path / "f.parquet")


def test_megabytes_without_a_row_are_a_quality_failure(tmp_path: Path) -> None:
    head = HEADER.encode()
    raw = gz_from(tmp_path / "f.csv.gz", b"\n" * (1 << 20), 32, head)
    with pytest.raises(QualityBlocked) as error:
        parquetize(FHV, JAN, raw, tmp_path / "f.parquet")
    assert f"{len(head) + (32 << 20):,} bytes of CSV text hold no data row" in str(error.value)
    # Without a header, the first (blank) line is no header: refused as such.
    raw = gz_from(tmp_path / "g.csv.gz", b"\n" * (1 << 20), 32)
    with pytest.raises(ConversionError, match="header does not match the registry"):
        parquetize(FHV, JAN, raw, tmp_path / "g.parquet")


def test_a_header_only_file_is_tiny_and_taken(tmp_path: Path) -> None:
    raw = gz(tmp_path / "f.csv.gz", HEADER.encode() + b"\n\n")
    assert parquetize(FHV, JAN, raw, tmp_path / "f.parquet").rows == 0


def test_a_bom_in_the_header_is_shown(tmp_path: Path) -> None:
    raw = gz(tmp_path / "f.csv.gz", ("\ufeff" + HEADER + GOOD).encode())
    with pytest.raises(ConversionError) as error:
        parquetize(FHV, JAN, raw, tmp_path / "f.parquet")
    message = str(error.value)
    assert "unknown columns \\ufeffdispatching_base_num" in message
    assert "\ufeff" not in message


@pytest.mark.parametrize("bad_row", [1, 7, 2_500])
def test_a_malformed_row_is_counted_right(tmp_path: Path, bad_row: int) -> None:
    rows = [GOOD] * 3_000
    rows[bad_row - 1] = "B1,2019-01-01 00:00:00,2019-01-01 00:10:00,1,2,,B2,extra\n"
    raw = gz(tmp_path / "f.csv.gz", (HEADER + "".join(rows)).encode())
    with pytest.raises(ConversionError) as error:
        parquetize(FHV, JAN, raw, tmp_path / "f.parquet")
    assert f"malformed CSV after data row {bad_row - 1:,}: CSV parse error: Expected 7 " \
        "columns, got 8" in str(error.value)


# Run in a child process so its peak memory is its own (ru_maxrss of the child).
CONVERT = """
import json, resource, sys
from datetime import date
from pathlib import Path
from pipeline.convert.parquetize import parquetize
from pipeline.core.datasets import SERVICES
try:
    stats = parquetize(SERVICES[sys.argv[1]], date.fromisoformat(sys.argv[2]),
                       Path(sys.argv[3]), Path(sys.argv[4]))
    outcome = f"{stats.rows} rows"
except Exception as e:
    outcome = f"{type(e).__name__}: {e}"
print(json.dumps({"outcome": outcome,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def convert_in_child(service: str, month: str, raw: Path, out: Path) -> dict:
    run = subprocess.run([sys.executable, "-c", CONVERT, service, month, str(raw), str(out)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_2_gib_without_a_newline_is_refused_within_the_usual_memory(
        release: Release, tmp_path: Path) -> None:
    bomb = gz_from(tmp_path / "bomb.csv.gz", b"z" * (1 << 20), 2048)
    assert bomb.stat().st_size < 4 << 20  # 2 GiB of text in a few MB of gzip
    hostile = convert_in_child("fhv", "2019-01-01", bomb, tmp_path / "bomb.parquet")
    assert hostile["outcome"] == ("ConversionError: bomb.csv.gz: a line longer than 1 MiB "
                                  "at byte 0 of the CSV text; refused")
    usual = convert_in_child("yellow", "2021-01-01",
                             release.root / "yellow" / "yellow_tripdata_2021-01.csv.gz",
                             tmp_path / "usual.parquet")
    assert usual["outcome"].endswith(" rows")
    # The usual bound: a real month's conversion (its interpreter and pyarrow included).
    assert hostile["peak_mb"] <= usual["peak_mb"] + 32, (hostile, usual)
