"""One contract for every lake root: the same cases against a local directory and against a
bucket (fake-gcs-server), through ``pipeline.lake.root.Lake`` only — the interface the tasks
use. Each lake has its own scratch directory, which must be empty after every operation,
whether it succeeded or failed."""

from __future__ import annotations

import gzip
import os
from datetime import date
from pathlib import Path

import luigi.format
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.datasets import SERVICES
from pipeline.lake.keys import manifest_key, parquet_key, raw_key
from pipeline.lake.root import Lake
from pipeline.lake.targets import ChecksumMismatch, LakeConflict, file_digests

YELLOW = SERVICES["yellow"]


@pytest.fixture(params=["local", "bucket"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    scratch = tmp_path / "scratch"
    if request.param == "local":
        return Lake(str(tmp_path / "lake-contract"), scratch=scratch)
    bucket = request.getfixturevalue("gcs_bucket")
    return Lake(f"gs://{bucket}/contract", scratch=scratch)


@pytest.fixture(autouse=True)
def nothing_left_in_scratch(lake: Lake):  # type: ignore[no-untyped-def]
    yield
    assert lake.scratch.staged() == []


def sample_file(tmp: Path, size: int = 3_000_000) -> Path:
    path = tmp / f"sample-{size}.bin"
    path.write_bytes(os.urandom(size))
    return path


def test_a_missing_file(lake: Lake) -> None:
    target = lake.target("nothing/here.txt")
    assert not target.exists()
    assert target.info() is None and target.stat() is None and target.size() is None
    with pytest.raises(FileNotFoundError):
        target.open("r")
    with pytest.raises(FileNotFoundError), target.local_file():
        pass
    target.remove()  # removing what is not there is not an error
    assert lake.keys("") == []


def test_text_written_is_read_back(lake: Lake) -> None:
    target = lake.target("notes/a.txt")
    with target.open("w") as f:
        f.write("month 2021-01\n")
    assert target.exists()
    with target.open("r") as f:
        assert f.read() == "month 2021-01\n"
    info = target.info()
    assert info is not None and info.size == len("month 2021-01\n")
    assert target.stat() == (info.__class__(info.size, None, None, info.generation))
    assert lake.keys("") == ["notes/a.txt"]


def test_a_failed_write_leaves_nothing(lake: Lake) -> None:
    target = lake.target("notes/a.txt")
    with pytest.raises(RuntimeError), target.open("w") as f:
        f.write("half a")
        raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert lake.keys("") == []


def test_a_failed_rewrite_keeps_the_old_content(lake: Lake) -> None:
    target = lake.target("notes/a.txt")
    with target.open("wb") as f:
        f.write(b"old")
    with pytest.raises(RuntimeError), target.open("wb") as f:
        f.write(b"new, half")
        raise RuntimeError("killed mid-write")
    with target.open("rb") as f:
        assert f.read() == b"old"


def test_luigi_formats_are_honoured(lake: Lake) -> None:
    gz = lake.target("notes/a.txt.gz", luigi.format.Gzip)
    with gz.open("w") as f:
        f.write(b"zipped\n")
    with gz.open("r") as f:
        assert f.read() == b"zipped\n"
    with lake.target("notes/a.txt.gz", luigi.format.Nop).local_file() as path:
        assert gzip.decompress(path.read_bytes()) == b"zipped\n"
    utf8 = lake.target("notes/b.txt", luigi.format.UTF8)
    with utf8.open("w") as f:
        f.write("Zürich → Queens\n")
    with lake.target("notes/b.txt").open("rb") as f:
        assert f.read() == "Zürich → Queens\n".encode()


def test_put_copies_verifies_and_reports_progress(lake: Lake, tmp_path: Path) -> None:
    local = sample_file(tmp_path)
    expected = file_digests(local)
    seen: list[tuple[int, int | None]] = []
    info = lake.target("blobs/sample.bin").put(
        local, sha256=expected.sha256, progress=lambda done, total: seen.append((done, total)))
    assert (info.size, info.crc32c, info.sha256) == (expected.size, expected.crc32c,
                                                     expected.sha256)
    assert lake.target("blobs/sample.bin").info() == info
    assert seen[-1] == (expected.size, expected.size)
    with lake.target("blobs/sample.bin").open("rb") as f:
        assert f.read() == local.read_bytes()


def test_put_refuses_a_file_that_differs_from_its_expected_sha256(lake: Lake,
                                                                   tmp_path: Path) -> None:
    local = sample_file(tmp_path, 100_000)
    with pytest.raises(ChecksumMismatch, match="expected"):
        lake.target("blobs/sample.bin").put(local, sha256="0" * 64)
    assert not lake.target("blobs/sample.bin").exists()
    assert lake.keys("") == []


def test_generation_preconditions_prevent_blind_overwrites(lake: Lake, tmp_path: Path) -> None:
    first, second = sample_file(tmp_path, 1000), sample_file(tmp_path, 2000)
    target = lake.target("blobs/x.bin")
    created = target.put(first, if_generation=0)
    with pytest.raises(LakeConflict):
        target.put(second, if_generation=0)  # "only if absent"
    assert target.info() == created
    replaced = target.put(second, if_generation=created.generation)
    assert replaced.size == 2000
    with pytest.raises(LakeConflict):
        target.put(first, if_generation=created.generation)  # a stale version
    with pytest.raises(LakeConflict):
        target.remove(if_generation=created.generation)
    assert target.info() == replaced
    target.remove(if_generation=replaced.generation)
    assert not target.exists()


def test_a_staged_file_appears_only_when_published_and_is_gone_after(lake: Lake) -> None:
    target = lake.target("raw/yellow/month.csv.gz")
    with target.staging() as staged:
        staged.path.write_bytes(b"x" * 100_000)
        assert not target.exists()  # nothing under the final name while it is written
        published = staged.commit(if_generation=0)
        found = target.stat()
        assert found is not None
        assert (found.size, found.generation) == (published.size, published.generation)
    assert not staged.path.exists()
    with target.open("rb") as f:
        assert f.read() == b"x" * 100_000
    assert lake.keys("") == ["raw/yellow/month.csv.gz"]


def test_a_staged_file_that_fails_is_neither_published_nor_left_behind(lake: Lake) -> None:
    target = lake.target("raw/yellow/month.csv.gz")
    with pytest.raises(RuntimeError), target.staging() as staged:
        staged.path.write_bytes(b"half a month")
        raise RuntimeError("the conversion failed")
    assert not staged.path.exists()
    assert not target.exists()
    assert lake.keys("") == []


def test_a_staged_write_that_lost_a_race_is_refused_and_removed(lake: Lake,
                                                                tmp_path: Path) -> None:
    target = lake.target("parquet/x.parquet")
    seen = target.stat()  # absent
    assert seen is None
    winner = target.put(sample_file(tmp_path, 500))  # another process publishes meanwhile
    with pytest.raises(LakeConflict), target.staging() as staged:
        staged.path.write_bytes(b"loser")
        staged.commit(if_generation=0, sha256=None)
    assert target.info() == winner
    assert not staged.path.exists()


def test_a_staged_file_with_an_expected_sha256(lake: Lake) -> None:
    target = lake.target("parquet/x.parquet")
    data = os.urandom(300_000)
    with target.staging() as staged:
        staged.path.write_bytes(data)
        info = staged.commit(sha256=file_digests(staged.path).sha256)
    assert info.size == len(data)


def test_luigi_temporary_path_publishes_on_success_only(lake: Lake) -> None:
    target = lake.target("notes/tmp.txt")
    with pytest.raises(RuntimeError), target.temporary_path() as path:
        Path(path).write_text("half")
        raise RuntimeError("failed")
    assert not target.exists()
    with target.temporary_path() as path:
        Path(path).write_text("whole")
    with target.open("r") as f:
        assert f.read() == "whole"


def test_a_stored_file_as_a_local_path(lake: Lake, tmp_path: Path) -> None:
    local = sample_file(tmp_path, 2_000_000)
    digests = file_digests(local)
    target = lake.target("parquet/month.parquet")
    target.put(local)
    with target.local_file(sha256=digests.sha256) as path:
        assert path.read_bytes() == local.read_bytes()
        assert path.suffix == ".parquet"  # readers that pick a format by suffix still can


def test_a_local_copy_that_is_not_the_expected_file_is_refused(lake: Lake,
                                                               tmp_path: Path) -> None:
    target = lake.target("parquet/month.parquet")
    target.put(sample_file(tmp_path, 200_000))
    if lake.in_bucket:  # a fetched copy is checked before it is handed out
        with pytest.raises(ChecksumMismatch), target.local_file(sha256="0" * 64):
            pytest.fail("a copy with the wrong sha256 was handed out")
    else:
        # A local lake's file is its own path, hashed alongside the block's reads and
        # refused at the latest when the block ends (a load checks before it commits).
        with pytest.raises(ChecksumMismatch, match="not the file the manifest describes"), \
                target.local_file(sha256="0" * 64) as path:
            assert path == Path(target.path)


def test_binary_reads_are_seekable(lake: Lake, tmp_path: Path) -> None:
    table = pa.table({"VendorID": pa.array([1, 2], pa.int64()), "fare": [1.5, 2.5]})
    local = tmp_path / "t.parquet"
    pq.write_table(table, local)
    target = lake.target("parquet/t.parquet")
    target.put(local)
    with target.open("rb") as f:
        assert pq.read_schema(f) == table.schema


def test_listing_a_prefix_is_recursive_and_exact(lake: Lake) -> None:
    for name in ("a/x.txt", "a/b/y.txt", "ab/z.txt"):
        with lake.target(name).open("w") as f:
            f.write(name)
    assert lake.keys("a/") == ["a/b/y.txt", "a/x.txt"]
    assert lake.keys("") == ["a/b/y.txt", "a/x.txt", "ab/z.txt"]
    assert lake.keys("nothing/") == []


def test_months_are_read_back_from_the_layout(lake: Lake) -> None:
    months = [date(2020, 12, 1), date(2021, 1, 1)]
    keys = [raw_key(YELLOW, months[0], "csv"), raw_key(YELLOW, months[1], "parquet"),
            manifest_key(YELLOW, months[1]), parquet_key(YELLOW, months[0]),
            "raw/yellow/notes-2021-03.txt", "raw/green/green_tripdata_2021-05.csv.gz"]
    for key in keys:
        with lake.target(key).open("w") as f:
            f.write("x")
    assert lake.raw_months(YELLOW) == months
    assert lake.manifest_months(YELLOW) == [months[1]]
    assert lake.raw_months(SERVICES["fhv"]) == []


def test_a_listed_target_answers_like_a_direct_one(lake: Lake, tmp_path: Path) -> None:
    local = sample_file(tmp_path, 1000)
    lake.target("a/one.bin").put(local)
    assert lake.target("a/one.bin", listed="a/").exists()
    assert not lake.target("a/two.bin", listed="a/").exists()
    # This process's own writes are seen at once, whatever it cached.
    two = lake.target("a/two.bin").put(local)
    assert lake.target("a/two.bin", listed="a/").stat().size == two.size
    lake.target("a/one.bin").remove()
    assert not lake.target("a/one.bin", listed="a/").exists()


def test_moves_follow_luigi(lake: Lake) -> None:
    source, dest = lake.target("m/a.txt"), lake.target("m/b.txt")
    with source.open("w") as f:
        f.write("a")
    source.fs.move(source.path, dest.path)
    assert not source.exists() and dest.exists()
    with source.open("w") as f:
        f.write("again")
    with pytest.raises(luigi.target.FileAlreadyExists):
        source.fs.rename_dont_move(source.path, dest.path)
    with dest.open("r") as f:
        assert f.read() == "a"  # not replaced
    assert source.exists()


@pytest.mark.parametrize("key", ["../outside.txt", "/abs.txt", "a/../../b", ""])
def test_keys_cannot_leave_the_root(lake: Lake, key: str) -> None:
    with pytest.raises(ValueError, match="not a relative path inside the lake"):
        lake.target(key)


@pytest.mark.parametrize("mode", ["a", "r+", "x"])
def test_only_read_and_write_modes(lake: Lake, mode: str) -> None:
    with pytest.raises(ValueError, match="mode"):
        lake.target("a.txt").open(mode)
