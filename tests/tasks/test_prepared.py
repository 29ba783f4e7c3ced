"""A CSV month converted while it downloads (``pipeline.tasks.prepared``): DownloadMonth
leaves the Parquet in scratch, ParquetizeMonth takes it only when it was made from the raw
file the lake holds, and every other case converts the raw file as before. Real Luigi
runs against the local mirror; faults are injected into the server."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import luigi
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline.convert.parquetize import parquetize
from pipeline.core.datasets import SERVICES
from pipeline.tasks import prepared
from pipeline.tasks.download import DownloadMonth
from pipeline.tasks.parquetize import ParquetizeMonth
from tests.conftest import Env, Release
from tests.mirror import Fault, ReleaseMirror

JAN, DEC = date(2021, 1, 1), date(2020, 12, 1)
NAME = "yellow_tripdata_2021-01.csv.gz"


@pytest.fixture
def scratch(env: Env) -> Path:
    directory = env.tmp / "scratch"
    env.configure(lake={"scratch": str(directory)})
    return directory


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raw_file(env: Env, month: date = JAN) -> Path:
    return env.lake / "raw" / "yellow" / f"yellow_tripdata_{month:%Y-%m}.csv.gz"


def lake_month(env: Env) -> tuple[Path, dict]:
    folder = env.lake / "parquet" / "yellow" / "year=2021" / "month=01"
    return (folder / "yellow_tripdata_2021-01.parquet",
            json.loads((folder / "_manifest.json").read_text()))


def record(scratch: Path) -> dict:
    return json.loads((scratch / "prepared" / "yellow_tripdata_2021-01.json").read_text())


def files_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


def assert_as_converted_from_raw(env: Env, tmp_path: Path) -> None:
    """The lake's Parquet is, byte for byte, what converting the lake's raw file gives."""
    parquet, manifest = lake_month(env)
    expected = parquetize(SERVICES["yellow"], JAN, raw_file(env), tmp_path / "expected.parquet")
    assert parquet.read_bytes() == (tmp_path / "expected.parquet").read_bytes()
    assert manifest["parquet_sha256"] == expected.parquet_sha256 == sha256(parquet)
    assert manifest["source_sha256"] == sha256(raw_file(env))
    assert manifest["rows"] == expected.rows


def test_a_csv_month_converted_while_downloading_is_taken_by_parquetize(
        env: Env, release: Release, scratch: Path, tmp_path: Path) -> None:
    assert env.build(DownloadMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    kept = record(scratch)
    assert kept["stats"]["rows"] == release.of("yellow", "2021-01").rows
    assert kept["stats"]["source_sha256"] == sha256(raw_file(env))
    assert kept["raw"]["size"] == raw_file(env).stat().st_size
    assert (scratch / "prepared" / kept["parquet"]).stat().st_size == \
        kept["stats"]["parquet_bytes"]

    inode = (scratch / "prepared" / kept["parquet"]).stat().st_ino
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    parquet, manifest = lake_month(env)
    # Taken, not converted again: the very file (renamed), with the download's figures.
    assert parquet.stat().st_ino == inode
    assert manifest["run"]["seconds"]["convert"] == kept["convert_seconds"]
    assert manifest["parquet_sha256"] == kept["stats"]["parquet_sha256"]
    assert_as_converted_from_raw(env, tmp_path)
    assert files_in(scratch) == []


@pytest.mark.parametrize("faults", [
    [Fault("reset", at=70_000)],
    # The server drops the connection, then ignores the Range request: the download
    # starts over, and so does its conversion.
    [Fault("reset", at=70_000), Fault("ignore_range")],
], ids=["resumed", "started-over"])
def test_a_download_resumed_or_started_over_still_prepares_the_whole_month(
        env: Env, mirror: ReleaseMirror, scratch: Path, tmp_path: Path,
        faults: list[Fault]) -> None:
    mirror.inject(NAME, *faults)
    assert env.build(DownloadMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    assert len(mirror.requests_for(NAME, "GET")) == 2
    kept = record(scratch)
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    assert lake_month(env)[1]["run"]["seconds"]["convert"] == kept["convert_seconds"]
    assert_as_converted_from_raw(env, tmp_path)


def test_a_raw_file_replaced_after_its_download_is_converted_again(
        env: Env, scratch: Path, tmp_path: Path) -> None:
    assert env.build(DownloadMonth(service="yellow", month=JAN),
                     DownloadMonth(service="yellow", month=DEC)).status == \
        LuigiStatusCode.SUCCESS
    kept = record(scratch)
    # Another file of the same length would fool a check by size alone: this one differs
    # in length too, and in generation, which is what the check compares.
    # Replaced as a re-fetch replaces it: with a source record that describes it (a raw
    # file that its record does not describe is fetched again: test_lake_integrity.py).
    record_of = {m: raw_file(env, m).with_name(raw_file(env, m).name + ".source.json")
                 for m in (JAN, DEC)}
    os.replace(record_of[DEC], record_of[JAN])
    os.replace(raw_file(env, DEC), raw_file(env))
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    _, manifest = lake_month(env)
    assert manifest["source_sha256"] != kept["stats"]["source_sha256"]
    assert_as_converted_from_raw(env, tmp_path)
    assert not (scratch / "prepared" / kept["parquet"]).exists()


@pytest.fixture
def bad_month(tmp_path: Path, env: Env, release: Release) -> Iterator[bytes]:
    """A mirror whose yellow 2021-01 is a whole gzip stream holding a malformed CSV: the
    release's month with a pickup time of "yesterday" in its second row."""
    lines = gzip.decompress((release.root / "yellow" / NAME).read_bytes()).split(b"\n")
    fields = lines[2].split(b",")
    fields[1] = b"yesterday"
    lines[2] = b",".join(fields)
    data = gzip.compress(b"\n".join(lines), compresslevel=1)
    root = tmp_path / "bad-release"
    (root / "yellow").mkdir(parents=True)
    (root / "yellow" / NAME).write_bytes(data)
    with ReleaseMirror(root) as server:
        env.configure(source={"base_url": server.base_url})
        yield data


def test_a_month_the_conversion_refuses_is_downloaded_and_fails_at_its_own_step(
        env: Env, scratch: Path, bad_month: bytes) -> None:
    assert env.build(DownloadMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    assert raw_file(env).read_bytes() == bad_month
    assert files_in(scratch) == []  # nothing kept: the conversion stopped
    failures: list[BaseException] = []
    handler = luigi.Task.event_handler(luigi.Event.FAILURE)(lambda _, e: failures.append(e))
    try:
        result = env.build(ParquetizeMonth(service="yellow", month=JAN))
    finally:
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.FAILURE].discard(handler)
    assert result.status == LuigiStatusCode.FAILED
    # Each in-run retry fails alike, on its own step.
    assert failures and {type(e).__name__ for e in failures} == {"ConversionError"}
    # The bad row is the second: the last good one before it is data row 1.
    assert str(failures[0]).startswith("yellow 2021-01: malformed CSV after data row 1")
    assert not (env.lake / "parquet").exists() or files_in(env.lake / "parquet") == []


def test_a_failed_download_prepares_nothing(env: Env, mirror: ReleaseMirror, release: Release,
                                            scratch: Path) -> None:
    size = (release.root / "yellow" / NAME).stat().st_size
    mirror.inject(NAME, *[Fault("truncate", at=size // 2)] * 5)
    assert env.build(DownloadMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.FAILED
    assert not raw_file(env).exists()
    assert files_in(scratch) == []


def test_switched_off_the_download_converts_nothing(env: Env, scratch: Path,
                                                     tmp_path: Path) -> None:
    env.configure(pipeline={"convert_while_downloading": "false"})
    assert env.build(DownloadMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    assert files_in(scratch) == []
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    assert_as_converted_from_raw(env, tmp_path)


def test_a_setting_that_is_not_true_or_false_is_refused(env: Env) -> None:
    env.configure(pipeline={"convert_while_downloading": "sometimes"})
    result = env.command("luigi", "--module", "pipeline", "DownloadMonth", "--service",
                         "yellow", "--month", "2021-01", "--local-scheduler")
    assert result.returncode != 0
    assert "convert_while_downloading" in result.stderr + result.stdout
    assert not raw_file(env).exists()


def test_prepared_months_nobody_took_are_removed_after_a_day(env: Env, scratch: Path) -> None:
    assert env.build(DownloadMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    kept = files_in(scratch / "prepared")
    assert len(kept) == 2  # the Parquet file and its record
    assert prepared.sweep() == []
    two_days_ago = time.time() - 2 * 86_400
    for path in kept:
        os.utime(path, (two_days_ago, two_days_ago))
    assert sorted(prepared.sweep()) == kept
    assert files_in(scratch) == []


def test_a_month_downloaded_again_keeps_one_prepared_file(env: Env, scratch: Path) -> None:
    assert env.build(DownloadMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    first = record(scratch)["parquet"]
    raw_file(env).unlink()  # so the month downloads again
    assert env.build(DownloadMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    kept = record(scratch)
    assert kept["parquet"] != first
    assert [p.name for p in files_in(scratch)] == sorted(
        [kept["parquet"], "yellow_tripdata_2021-01.json"])


def test_a_scratch_on_another_file_system_is_copied_into_the_lake(
        env: Env, tmp_path: Path) -> None:
    """The prepared file moves into the lake by rename on one file system; across two
    (scratch on a tmpfs, the lake on disk) by a copy, with the same result."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no /dev/shm on another file system than the test's directory")
    directory = shm / f"taxi-pipeline-test-{os.getpid()}-{tmp_path.name}"
    env.configure(lake={"scratch": str(directory)})
    try:
        assert env.build(DownloadMonth(service="yellow", month=JAN)).status == \
            LuigiStatusCode.SUCCESS
        kept = record(directory)
        assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
            LuigiStatusCode.SUCCESS
        assert lake_month(env)[1]["run"]["seconds"]["convert"] == kept["convert_seconds"]
        assert_as_converted_from_raw(env, tmp_path)
        assert files_in(directory) == []
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_an_unreadable_prepared_record_neither_fails_a_download_nor_is_taken(
        env: Env, scratch: Path, tmp_path: Path) -> None:
    folder = scratch / "prepared"
    folder.mkdir(parents=True)
    (folder / "yellow_tripdata_2021-01.json").write_text('{"service": "yellow"}')
    (folder / "green_tripdata_2021-01.json").write_text("not json")
    assert env.build(DownloadMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    assert (folder / "green_tripdata_2021-01.json").exists()  # not a day old yet
    made = folder / record(scratch)["parquet"]
    inode = made.stat().st_ino
    (folder / "yellow_tripdata_2021-01.json").write_text('{"service": "yellow"}')
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    assert lake_month(env)[0].stat().st_ino != inode  # converted, not taken
    assert not made.exists()
    assert_as_converted_from_raw(env, tmp_path)
