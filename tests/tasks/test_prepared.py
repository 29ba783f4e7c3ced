"""A CSV month converted while it downloads (``pipeline.tasks.download``): DownloadMonth
commits the Parquet at the month's own key and says so in the raw file's source record;
ParquetizeMonth takes it, writing only the manifest, when it is still the file converted
from the raw file the lake holds, and converts the raw file in every other case. Real Luigi
runs against the local mirror (and the GCS emulator for a bucket lake); faults are injected
into the server or made to the lake's files."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import luigi
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline.convert.parquetize import parquetize
from pipeline.core.datasets import SERVICES
from pipeline.core.manifest import ConvertedParquet
from pipeline.lake.keys import parquet_key
from pipeline.lake.month_targets import source_version
from pipeline.ops.facts import lake_facts
from pipeline.ops.status import report
from pipeline.tasks.download import DownloadMonth, RefetchMonth
from pipeline.tasks.parquetize import ParquetizeMonth
from tests.conftest import Env, Release
from tests.fixtures_cloud import FakeGCS
from tests.lake.test_bucket_lake import Bucket
from tests.mirror import Fault, ReleaseMirror

JAN, DEC = date(2021, 1, 1), date(2020, 12, 1)
NAME = "yellow_tripdata_2021-01.csv.gz"
SECTION = ConvertedParquet.SECTION
QUALITY_CHECKS = ("negative_fare_or_total", "dropoff_before_pickup", "pickup_outside_month",
                  "zone_id_invalid", "distance_over_1000_miles", "passenger_count_invalid",
                  "null_id")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raw_file(env: Env, month: date = JAN) -> Path:
    return env.lake / "raw" / "yellow" / f"yellow_tripdata_{month:%Y-%m}.csv.gz"


def record_file(env: Env, month: date = JAN) -> Path:
    return raw_file(env, month).with_name(raw_file(env, month).name + ".source.json")


def record(env: Env, month: date = JAN) -> dict:
    return json.loads(record_file(env, month).read_text())


def parquet_file(env: Env, month: date = JAN) -> Path:
    return env.lake / parquet_key(SERVICES["yellow"], month)


def manifest(env: Env) -> dict:
    return json.loads((parquet_file(env).parent / "_manifest.json").read_text())


def assert_as_converted_from_raw(env: Env, tmp_path: Path) -> None:
    """The lake's Parquet is, byte for byte, what converting the lake's raw file gives."""
    expected = parquetize(SERVICES["yellow"], JAN, raw_file(env), tmp_path / "expected.parquet")
    assert parquet_file(env).read_bytes() == (tmp_path / "expected.parquet").read_bytes()
    written = manifest(env)
    assert written["parquet_sha256"] == expected.parquet_sha256 == sha256(parquet_file(env))
    assert written["source_sha256"] == sha256(raw_file(env))
    assert written["rows"] == expected.rows


def assert_taken(env: Env, section: dict, inode: int) -> None:
    """ParquetizeMonth took the Parquet at the key as the download left it: the very file,
    and the manifest's convert seconds are the download's conversion's."""
    assert parquet_file(env).stat().st_ino == inode
    written = manifest(env)
    assert written["run"]["seconds"]["convert"] == section["convert_seconds"]
    assert written["parquet_sha256"] == section["stats"]["parquet_sha256"]
    assert written["source_sha256"] == section["stats"]["source_sha256"]


def download(env: Env, *months: date) -> None:
    assert env.build(*(DownloadMonth(service="yellow", month=m) for m in months)).status == \
        LuigiStatusCode.SUCCESS


def parquetize_month(env: Env) -> None:
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS


def test_the_download_commits_the_parquet_at_its_key_and_parquetize_takes_it(
        env: Env, release: Release, tmp_path: Path) -> None:
    download(env, JAN)
    section = record(env)[SECTION]
    assert section["key"] == "parquet/yellow/year=2021/month=01/yellow_tripdata_2021-01.parquet"
    assert section["stats"]["rows"] == release.of("yellow", "2021-01").rows
    assert section["stats"]["source_sha256"] == sha256(raw_file(env))
    assert section["stats"]["source_bytes"] == raw_file(env).stat().st_size
    assert section["stats"]["parquet_sha256"] == sha256(parquet_file(env))
    assert section["stats"]["parquet_bytes"] == parquet_file(env).stat().st_size
    assert section["convert_seconds"] > 0
    # The lake says so, and that the month is not complete yet: no manifest.
    facts = lake_facts("yellow", JAN)
    assert facts.converted_while_downloading is not None
    assert facts.parquet_to_take == facts.converted_while_downloading
    assert (facts.manifest, facts.parquet_complete, facts.raw_complete) == (None, False, True)
    assert not ParquetizeMonth(service="yellow", month=JAN).complete()
    [status] = report([JAN], ("yellow",), ("duckdb",), check_source=False)
    assert (status.converted_while_downloading, status.complete) == (True, False)

    inode = parquet_file(env).stat().st_ino
    parquetize_month(env)
    assert_taken(env, section, inode)
    assert_as_converted_from_raw(env, tmp_path)
    assert ParquetizeMonth(service="yellow", month=JAN).complete()
    [status] = report([JAN], ("yellow",), (), check_source=False)
    assert (status.converted_while_downloading, status.complete) == (True, True)
    # Nothing beside the month's four files (no staged leftover, no side folder).
    assert env.lake_files() == sorted(str(p.relative_to(env.lake)) for p in (
        raw_file(env), record_file(env), parquet_file(env),
        parquet_file(env).parent / "_manifest.json"))


@pytest.mark.parametrize("faults", [
    [Fault("reset", at=70_000)],
    # The server drops the connection, then ignores the Range request: the download
    # starts over, and so does its conversion.
    [Fault("reset", at=70_000), Fault("ignore_range")],
], ids=["resumed", "started-over"])
def test_a_download_resumed_or_started_over_still_converts_the_whole_month(
        env: Env, mirror: ReleaseMirror, tmp_path: Path, faults: list[Fault]) -> None:
    mirror.inject(NAME, *faults)
    download(env, JAN)
    assert len(mirror.requests_for(NAME, "GET")) == 2
    section = record(env)[SECTION]
    inode = parquet_file(env).stat().st_ino
    parquetize_month(env)
    assert_taken(env, section, inode)
    assert_as_converted_from_raw(env, tmp_path)


def _truncate(env: Env) -> None:
    data = parquet_file(env).read_bytes()
    parquet_file(env).write_bytes(data[: len(data) // 2])


def _same_size_other_footer(env: Env) -> None:
    """Another month's Parquet padded or cut to this one's size: only the footer tells."""
    other = env.tmp / "other.parquet"
    parquetize(SERVICES["yellow"], DEC, raw_file(env, DEC), other)
    size = parquet_file(env).stat().st_size
    data = other.read_bytes()
    os.replace(other, parquet_file(env)) if len(data) == size else \
        parquet_file(env).write_bytes(data[:size].ljust(size, b"\0"))


def _other_version(env: Env) -> None:
    text = record(env)
    text[SECTION]["pipeline_version"] = "0.0.1"
    record_file(env).write_text(json.dumps(text))


def _unreadable_section(env: Env) -> None:
    text = record(env)
    text[SECTION] = {"key": text[SECTION]["key"]}
    record_file(env).write_text(json.dumps(text))


@pytest.mark.parametrize("change", [_truncate, _same_size_other_footer, _other_version,
                                    _unreadable_section],
                         ids=["damaged", "replaced", "other-version", "unreadable-section"])
def test_a_parquet_the_record_does_not_vouch_for_is_converted_again(
        env: Env, tmp_path: Path, change: object) -> None:
    download(env, JAN, DEC)
    assert callable(change)
    change(env)
    assert lake_facts("yellow", JAN).parquet_to_take is None
    inode = parquet_file(env).stat().st_ino
    parquetize_month(env)
    assert parquet_file(env).stat().st_ino != inode  # converted and committed anew
    assert manifest(env)["run"]["seconds"]["convert"] != record(env).get(
        SECTION, {}).get("convert_seconds")
    assert_as_converted_from_raw(env, tmp_path)


def test_another_raw_file_in_place_is_converted_not_taken(env: Env, tmp_path: Path) -> None:
    """A raw file replaced as a re-fetch replaces it, with its record (here December's,
    whose section names December's Parquet key): January's Parquet at the key is not it."""
    download(env, JAN, DEC)
    january = record(env)[SECTION]
    os.replace(record_file(env, DEC), record_file(env))
    os.replace(raw_file(env, DEC), raw_file(env))
    facts = lake_facts("yellow", JAN)
    assert (facts.raw_complete, facts.converted_while_downloading) == (True, None)
    parquetize_month(env)
    assert manifest(env)["source_sha256"] != january["stats"]["source_sha256"]
    assert_as_converted_from_raw(env, tmp_path)


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
        env: Env, bad_month: bytes) -> None:
    download(env, JAN)
    assert raw_file(env).read_bytes() == bad_month
    assert SECTION not in record(env)  # no section, no Parquet: the conversion stopped
    assert [p for p in (env.lake / "parquet").rglob("*") if p.is_file()] == []
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
    assert [p for p in (env.lake / "parquet").rglob("*") if p.is_file()] == []


def test_a_quality_check_that_blocks_leaves_no_parquet_and_fails_at_parquetize(
        env: Env) -> None:
    """A blocking check refuses the conversion while downloading as it refuses the month's
    own: no section, no Parquet, and ParquetizeMonth fails with the check's line."""
    env.configure(quality={"blocking": "all", **dict.fromkeys(QUALITY_CHECKS, "0")})
    download(env, JAN)
    assert SECTION not in record(env)
    assert not parquet_file(env).exists()
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.FAILED
    assert not parquet_file(env).exists()


def test_a_failed_download_converts_nothing(env: Env, mirror: ReleaseMirror,
                                            release: Release) -> None:
    size = (release.root / "yellow" / NAME).stat().st_size
    mirror.inject(NAME, *[Fault("truncate", at=size // 2)] * 5)
    assert env.build(DownloadMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.FAILED
    assert env.lake_files() == []


def test_switched_off_the_download_converts_nothing(env: Env, tmp_path: Path) -> None:
    env.configure(pipeline={"convert_while_downloading": "false"})
    download(env, JAN)
    assert SECTION not in record(env)
    assert not parquet_file(env).exists()
    parquetize_month(env)
    assert_as_converted_from_raw(env, tmp_path)
    [status] = report([JAN], ("yellow",), (), check_source=False)
    assert (status.converted_while_downloading, status.complete) == (False, True)


def test_a_setting_that_is_not_true_or_false_is_refused(env: Env) -> None:
    env.configure(pipeline={"convert_while_downloading": "sometimes"})
    result = env.command("luigi", "--module", "pipeline", "DownloadMonth", "--service",
                         "yellow", "--month", "2021-01", "--local-scheduler")
    assert result.returncode != 0
    assert "convert_while_downloading" in result.stderr + result.stdout
    assert not raw_file(env).exists()


def test_a_month_fetched_again_is_not_complete_until_its_manifest(
        env: Env, release: Release, tmp_path: Path) -> None:
    """Stopped between RefetchMonth (or DownloadMonth) and ParquetizeMonth, nothing looks
    complete: the download removed the month's manifest before it replaced the Parquet."""
    root = tmp_path / "own-release"
    (root / "yellow").mkdir(parents=True)
    text = gzip.decompress((release.root / "yellow" / NAME).read_bytes())
    (root / "yellow" / NAME).write_bytes(gzip.compress(text))
    with ReleaseMirror(root) as server:
        env.configure(source={"base_url": server.base_url})
        download(env, JAN)
        parquetize_month(env)
        first = manifest(env)
        # TLC re-publishes the month with its last row gone.
        server.republish(root / "yellow" / NAME,
                         gzip.compress(text[: text.rstrip(b"\n").rfind(b"\n") + 1]))
        version = source_version(DownloadMonth(service="yellow", month=JAN).published())
        assert env.build(RefetchMonth(service="yellow", month=JAN, version=version)).status \
            == LuigiStatusCode.SUCCESS
    facts = lake_facts("yellow", JAN)
    assert (facts.manifest, facts.parquet_complete) == (None, False)
    assert not ParquetizeMonth(service="yellow", month=JAN).complete()
    section = record(env)[SECTION]
    assert section["stats"]["rows"] == first["rows"] - 1
    assert section["stats"]["parquet_sha256"] == sha256(parquet_file(env))
    parquetize_month(env)
    assert_taken(env, section, parquet_file(env).stat().st_ino)
    assert_as_converted_from_raw(env, tmp_path)


def test_the_same_raw_file_fetched_again_leaves_the_complete_month_as_it_is(
        env: Env) -> None:
    """A download of the very file the month was converted from (a raw file deleted to
    save room, fetched again) finds the same conversion in the lake: the Parquet and its
    manifest stay as they are, and the month complete."""
    download(env, JAN)
    parquetize_month(env)
    written = (parquet_file(env).parent / "_manifest.json").read_text()
    inode = parquet_file(env).stat().st_ino
    raw_file(env).unlink()
    download(env, JAN)
    assert (parquet_file(env).parent / "_manifest.json").read_text() == written
    assert parquet_file(env).stat().st_ino == inode
    assert record(env)[SECTION]["stats"]["parquet_sha256"] == json.loads(written)[
        "parquet_sha256"]
    assert ParquetizeMonth(service="yellow", month=JAN).complete()


def test_stopped_before_its_record_the_download_is_converted_again(
        env: Env, tmp_path: Path) -> None:
    """A download stopped after committing the Parquet but before writing the record (the
    record is removed before the raw file is replaced, written after both): the raw file
    without a record is taken as it is, the Parquet at the key is not."""
    download(env, JAN)
    record_file(env).unlink()
    facts = lake_facts("yellow", JAN)
    assert (facts.raw_complete, facts.converted_while_downloading,
            facts.parquet_complete) == (True, None, False)
    inode = parquet_file(env).stat().st_ino
    parquetize_month(env)
    assert parquet_file(env).stat().st_ino != inode
    assert_as_converted_from_raw(env, tmp_path)


def test_a_bucket_lake_takes_the_parquet_on_another_host(
        env: Env, gcs_bucket: str, fake_gcs: FakeGCS) -> None:
    """Two hosts share the bucket lake, each with its own scratch: the second takes the
    Parquet the first converted while downloading (the same object generation), and
    neither keeps a file in scratch."""
    bucket = Bucket(gcs_bucket, fake_gcs)
    scratch = {host: env.tmp / f"scratch-{host}" for host in ("a", "b")}
    env.configure(lake={"root": bucket.root, "scratch": str(scratch["a"])})
    download(env, JAN)
    key = parquet_key(SERVICES["yellow"], JAN)
    section = json.loads(bucket.read(f"raw/yellow/{NAME}.source.json"))[SECTION]
    blob = bucket.client().bucket(bucket.name).get_blob(f"lake/{key}")
    assert blob is not None and blob.size == section["stats"]["parquet_bytes"]
    assert hashlib.sha256(bucket.read(key)).hexdigest() == section["stats"]["parquet_sha256"]

    env.configure(lake={"scratch": str(scratch["b"])})
    assert lake_facts("yellow", JAN).parquet_to_take is not None
    parquetize_month(env)
    written = json.loads(bucket.read("parquet/yellow/year=2021/month=01/_manifest.json"))
    assert written["run"]["seconds"]["convert"] == section["convert_seconds"]
    assert written["parquet_sha256"] == section["stats"]["parquet_sha256"]
    again = bucket.client().bucket(bucket.name).get_blob(f"lake/{key}")
    assert again is not None and again.generation == blob.generation  # taken, not uploaded
    assert ParquetizeMonth(service="yellow", month=JAN).complete()
    assert [p for s in scratch.values() if s.exists() for p in s.rglob("*")
            if p.is_file()] == []
