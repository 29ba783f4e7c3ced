"""The source's bytes are proven (issue 26, Build 1): a TLC Parquet month downloaded from a
real local server laid out like TLC's CloudFront, with scripted faults: a resume whose
``Range`` bytes differ (same length, same ETag), ETags in S3's MD5 and multipart forms and
none at all, and a file re-published between two attempts.

The file is an uncompressed Parquet without dictionaries: a changed byte in it reads back as
another valid fare, so its footer and every read of it pass; only the byte check sees it.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline.demo import samples
from pipeline.source.etag import EtagDigest, file_etag, multipart_etag, part_sizes
from tests import tlc_samples
from tests.conftest import Env
from tests.mirror import Fault, ReleaseMirror

pytestmark = pytest.mark.fault_case

KEY = "2025-01"
NAME = f"yellow_tripdata_{KEY}.parquet"
ROWS = 60_000  # 9 MB uncompressed: two parts of 5 MiB for the multipart ETag
PART = 5 << 20
RESET_AT = 1 << 20  # the first answer breaks here, before the patched fare


@dataclass
class Source:
    root: Path
    file: Path
    table: pa.Table
    # The offset of one fare in the file, and 8 bytes that read as another valid fare.
    fare_at: int
    other_fare: bytes


def write_plain(path: Path, seed: int) -> pa.Table:
    era = next(e for e in tlc_samples.ERAS if e.key == f"yellow-{KEY}")
    table = tlc_samples.era_month(era, ROWS, seed=seed).source
    pq.write_table(table, path, compression="none", use_dictionary=False)
    return table


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    root = tmp_path_factory.mktemp("tlc-plain")
    samples.write_zones(root / "release" / "misc" / "taxi_zone_lookup.csv")
    (root / "tlc").mkdir()
    file = root / "tlc" / NAME
    table = write_plain(file, seed=1)
    data = file.read_bytes()
    meta = pq.read_metadata(file).row_group(0)
    column = next(meta.column(i) for i in range(meta.num_columns)
                  if meta.column(i).path_in_schema == "fare_amount")
    fare = table.column("fare_amount")[ROWS // 2].as_py()
    start = column.data_page_offset
    at = data.index(struct.pack("<d", fare), start, start + column.total_compressed_size)
    assert at > RESET_AT
    return Source(root, file, table, at, struct.pack("<d", fare + 100.0))


@pytest.fixture
def mirror(source: Source) -> Iterator[ReleaseMirror]:
    with ReleaseMirror(source.root / "release", tlc_root=source.root / "tlc") as server:
        yield server


@pytest.fixture
def tlc_env(env: Env, mirror: ReleaseMirror) -> Env:
    env.configure(source={"kind": "parquet", "parquet_base_url": mirror.parquet_base_url,
                          "zones_url": mirror.zones_url},
                  scheduler={"retry_count": "1"})
    return env


def ingest(env: Env) -> object:
    return env.command("taxi-pipeline", "ingest", "--month", KEY, "--services", "yellow",
                       "--local-scheduler")


def raw_file(env: Env) -> Path:
    return env.lake / "raw" / "yellow" / NAME


def manifest(env: Env) -> dict:
    return json.loads((env.lake / "parquet" / "yellow" / "year=2025" / "month=01"
                       / "_manifest.json").read_text())


def warehouse(env: Env) -> tuple[int, float]:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        rows, fares = con.execute("SELECT count(*), sum(fare_amount) FROM yellow_tripdata"
                                  ).fetchone()
    return rows, fares


def source_fares(table: pa.Table) -> float:
    return pc.sum(table.column("fare_amount")).as_py()


def test_the_patched_bytes_read_as_valid_other_values(source: Source, tmp_path: Path) -> None:
    """The premise of the cases below: the footer and a full read cannot see the patch."""
    data = bytearray(source.file.read_bytes())
    data[source.fare_at:source.fare_at + 8] = source.other_fare
    patched = tmp_path / "patched.parquet"
    patched.write_bytes(bytes(data))
    table = pq.read_table(patched)
    assert table.num_rows == ROWS
    assert source_fares(table) == pytest.approx(source_fares(source.table) + 100.0)


def test_multipart_etags_are_recomputed_with_the_part_size_that_fits(source: Source) -> None:
    data = source.file.read_bytes()
    size = len(data)
    assert part_sizes(size, 2)[:2] == [5 << 20, 8 << 20]
    assert part_sizes(size, 1) == [10 << 20]  # one part: one size is enough
    assert part_sizes(size, 500) == []  # 500 parts of 9 MB: no uploader cuts that fine
    expected = multipart_etag([data[:PART], data[PART:]])
    assert file_etag(source.file, PART) == expected
    digest = EtagDigest(expected, size)
    for i in range(0, size, 777_777):  # fed in slices that straddle the parts
        digest.feed(data[i:i + 777_777])
    assert digest.verify() == "multipart ETag (2 parts of 5 MiB)"


@pytest.mark.parametrize(("style", "proof"), [
    ("md5", "MD5 = ETag"),
    ("multipart", "multipart ETag (2 parts of 5 MiB)"),
    ("none", "none (no ETag); received in one piece"),
])
def test_a_resume_with_other_bytes_never_lands(tlc_env: Env, mirror: ReleaseMirror,
                                               source: Source, style: str, proof: str) -> None:
    mirror.etag_style(NAME, style, PART)
    mirror.inject(NAME, Fault("reset", at=RESET_AT),
                  Fault("patch", at=source.fare_at, data=source.other_fare))
    run = ingest(tlc_env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert raw_file(tlc_env).read_bytes() == source.file.read_bytes()
    gets = [(s.range, s.status) for s in mirror.requests_for(NAME, "GET")]
    if style == "none":
        # Nothing could prove a splice: the rest was not asked for, the whole file was.
        assert gets == [(None, 200), (None, 200)]
    else:
        # Resumed (and spliced wrong), caught by the digest, started over.
        assert gets == [(None, 200), (f"bytes={RESET_AT}-", 206), (None, 200)]
    assert manifest(tlc_env)["source_check"] == proof
    record = json.loads((raw_file(tlc_env).parent / f"{NAME}.source.json").read_text())
    assert record["verified_by"] == proof
    rows, fares = warehouse(tlc_env)
    assert rows == ROWS
    assert fares == pytest.approx(source_fares(source.table))


def test_a_file_that_does_not_match_its_etag_is_refused_then_lands_on_the_re_run(
        tlc_env: Env, mirror: ReleaseMirror, source: Source) -> None:
    mirror.inject(NAME, Fault("corrupt", at=source.fare_at, data=source.other_fare))
    failed = ingest(tlc_env)
    assert failed.returncode == 30, failed.stderr[-3000:]
    assert "but the source's ETag is" in failed.stderr
    assert not raw_file(tlc_env).exists()
    assert not list(raw_file(tlc_env).parent.glob(".*.tmp"))
    run = ingest(tlc_env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert raw_file(tlc_env).read_bytes() == source.file.read_bytes()
    assert warehouse(tlc_env) == (ROWS, pytest.approx(source_fares(source.table)))


@pytest.mark.parametrize("style", ["md5", "none"])
def test_a_file_re_published_between_attempts_restarts_from_zero(
        tlc_env: Env, mirror: ReleaseMirror, source: Source, tmp_path: Path,
        style: str) -> None:
    """The resume sends If-Range: the server, whose file changed, answers the whole new
    file, and the download starts over (ETag or, without one, Last-Modified)."""
    served = tmp_path / "tlc" / NAME
    served.parent.mkdir()
    served.write_bytes(source.file.read_bytes())
    new_table = write_plain(tmp_path / "new.parquet", seed=2)
    with ReleaseMirror(source.root / "release", tlc_root=served.parent) as server:
        tlc_env.configure(source={"parquet_base_url": server.parquet_base_url,
                                  "zones_url": server.zones_url})
        server.etag_style(NAME, style)
        server.inject(NAME, Fault("stall", at=RESET_AT, seconds=1.5))
        result: dict[str, object] = {}
        job = threading.Thread(target=lambda: result.update(run=ingest(tlc_env)))
        job.start()
        deadline = time.monotonic() + 60
        while not server.requests_for(NAME, "GET"):  # the stalled answer is recorded
            assert time.monotonic() < deadline
            time.sleep(0.02)
        server.republish(served, (tmp_path / "new.parquet").read_bytes())
        job.join(120)
        run = result["run"]
        assert run.returncode == 0, run.stderr[-3000:]
        gets = server.requests_for(NAME, "GET")
    assert raw_file(tlc_env).read_bytes() == served.read_bytes()
    if style == "md5":
        assert [(s.range, s.status) for s in gets] == [(None, 200), (f"bytes={RESET_AT}-", 200)]
    else:
        assert [s.status for s in gets] == [200, 200]
    assert warehouse(tlc_env) == (ROWS, pytest.approx(source_fares(new_table)))
