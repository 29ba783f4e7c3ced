"""One contract for every lake backend: the same cases against a local directory and against
GCS (fake-gcs-server), through ``pipeline.lake.keys.lake_target`` only."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.lake.keys import lake_target
from pipeline.lake.targets import ChecksumMismatch, LakeConflict, LakeTarget, file_digests
from tests.conftest import Env


class Lake:
    """A root URL of one backend, and the relative names of what is stored under it."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def url(self, name: str) -> str:
        return f"{self.root}/{name}"

    def target(self, name: str, listed: str | None = None) -> LakeTarget:
        return lake_target(self.url(name), listed=listed)

    def listdir(self, name: str = "") -> list[str]:
        prefix = self.url(name) if name else self.root
        urls = self.target(name or "x").fs.listdir(prefix)
        return [u.removeprefix(self.root + "/") for u in urls]


@pytest.fixture(params=["local", "gcs"])
def lake(request: pytest.FixtureRequest, env: Env) -> Lake:
    if request.param == "local":
        return Lake(str(env.tmp / "lake-contract"))
    cloud = request.getfixturevalue("cloud")
    return Lake(f"gs://{cloud.bucket}/contract")


def sample_file(tmp: Path, size: int = 3_000_000) -> Path:
    path = tmp / f"sample-{size}.bin"
    path.write_bytes(os.urandom(size))
    return path


def test_a_missing_file(lake: Lake) -> None:
    target = lake.target("nothing/here.txt")
    assert not target.exists()
    assert target.info() is None
    with pytest.raises(FileNotFoundError):
        target.open("r")
    target.remove()  # removing what is not there is not an error
    assert lake.listdir() == []


def test_text_written_is_read_back(lake: Lake) -> None:
    target = lake.target("notes/a.txt")
    with target.open("w") as f:
        f.write("month 2021-01\n")
    assert target.exists()
    with target.open("r") as f:
        assert f.read() == "month 2021-01\n"
    info = target.info()
    assert info is not None and info.size == len("month 2021-01\n")
    assert lake.listdir() == ["notes/a.txt"]


def test_a_failed_write_leaves_nothing(lake: Lake) -> None:
    target = lake.target("notes/a.txt")
    with pytest.raises(RuntimeError), target.open("w") as f:
        f.write("half a")
        raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert lake.listdir() == []


def test_a_failed_rewrite_keeps_the_old_content(lake: Lake) -> None:
    target = lake.target("notes/a.txt")
    with target.open("wb") as f:
        f.write(b"old")
    with pytest.raises(RuntimeError), target.open("wb") as f:
        f.write(b"new, half")
        raise RuntimeError("killed mid-write")
    with target.open("rb") as f:
        assert f.read() == b"old"


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
    assert lake.listdir() == []


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
    assert lake.listdir("a") == ["a/b/y.txt", "a/x.txt"]
    assert lake.listdir() == ["a/b/y.txt", "a/x.txt", "ab/z.txt"]


def test_a_listed_target_answers_like_a_direct_one(lake: Lake, tmp_path: Path) -> None:
    listed = lake.url("a/")
    local = sample_file(tmp_path, 1000)
    lake.target("a/one.bin").put(local)
    assert lake.target("a/one.bin", listed=listed).exists()
    assert not lake.target("a/two.bin", listed=listed).exists()
    # This process's own writes are seen at once, whatever it cached.
    two = lake.target("a/two.bin").put(local)
    assert lake.target("a/two.bin", listed=listed).info() == two
    lake.target("a/one.bin").remove()
    assert not lake.target("a/one.bin", listed=listed).exists()


@pytest.mark.parametrize("mode", ["a", "r+", "x"])
def test_only_read_and_write_modes(lake: Lake, mode: str) -> None:
    with pytest.raises(ValueError, match="mode"):
        lake.target("a.txt").open(mode)

