"""What the source says about a file, against a real local server laid out like GitHub's
releases and TLC's CloudFront: ETag and Last-Modified on GET and HEAD, S3's 403
AccessDenied for a missing key, a file re-published between two attempts of a download."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from pipeline.core.manifest import SourceIdentity
from pipeline.source.checks import GzipCsvCheck, ParquetCheck
from pipeline.source.download import download
from pipeline.source.errors import NOT_PUBLISHED, NotPublished, SourceError
from pipeline.source.policies import RetryPolicy
from pipeline.source.probe import probe
from tests import tlc_samples
from tests.conftest import Release
from tests.mirror import Fault, ReleaseMirror
from tests.waiting import wait_until

pytestmark = pytest.mark.fault_case

FAST = RetryPolicy(timeout=2, attempts=3, backoff=0.01, backoff_max=0.05)
CSV = "yellow_tripdata_2021-01.csv.gz"
TLC = "green_tripdata_2026-06.parquet"


@pytest.fixture
def tlc_mirror(release: Release, tmp_path: Path) -> ReleaseMirror:
    era = next(e for e in tlc_samples.ERAS if e.key == "green-2026-06")
    tlc_samples.write_era_month(tmp_path / "tlc" / TLC, era, 2_000)
    with ReleaseMirror(release.root, tlc_root=tmp_path / "tlc") as server:
        yield server


def test_a_missing_tlc_key_is_403_access_denied_and_reads_as_not_published(
        tlc_mirror: ReleaseMirror, tmp_path: Path) -> None:
    url = f"{tlc_mirror.parquet_base_url}/fhv_tripdata_2026-08.parquet"
    # What S3 behind CloudFront answers, to GET and to HEAD.
    got = requests.get(url, timeout=5)
    assert got.status_code == 403 and b"<Code>AccessDenied</Code>" in got.content
    assert requests.head(url, timeout=5).status_code == 403
    with pytest.raises(NotPublished) as by_get:
        download(url, tmp_path / "raw.parquet", new_check=ParquetCheck, label="fhv 2026-08",
                 policy=FAST, missing=NOT_PUBLISHED["parquet"])
    assert str(by_get.value) == f"fhv 2026-08 is not published at {url} (HTTP 403 AccessDenied)"
    with pytest.raises(NotPublished) as by_head:
        probe(url, label="fhv 2026-08", policy=FAST, missing=NOT_PUBLISHED["parquet"])
    assert str(by_head.value) == f"fhv 2026-08 is not published at {url} (HTTP 403)"
    # The CSV mirror's 404 says it the same way.
    missing_csv = f"{tlc_mirror.base_url}/yellow/yellow_tripdata_2030-01.csv.gz"
    with pytest.raises(NotPublished, match=r"^yellow 2030-01 is not published at .* \(HTTP 404\)$"):
        probe(missing_csv, label="yellow 2030-01", policy=FAST)
    # 410 Gone too, from either host.
    tlc_mirror.inject(CSV, Fault("status", status=410))
    with pytest.raises(NotPublished, match=r"^yellow 2021-01 is not published at .* \(HTTP 410\)$"):
        probe(f"{tlc_mirror.base_url}/yellow/{CSV}", label="yellow 2021-01", policy=FAST)
    assert not any((tmp_path).glob("*.parquet")) and list(tmp_path.glob(".*")) == []
    # Each was asked once: "not published" is not retried.
    assert len(tlc_mirror.requests_for("fhv_tripdata_2026-08.parquet")) == 4


def test_a_403_where_it_does_not_mean_missing_is_refused_as_it_is(
        tlc_mirror: ReleaseMirror, tmp_path: Path) -> None:
    tlc_mirror.inject(CSV, Fault("status", status=403))
    with pytest.raises(SourceError, match="HTTP 403 Forbidden") as refused:
        download(f"{tlc_mirror.base_url}/yellow/{CSV}", tmp_path / CSV, new_check=GzipCsvCheck,
                 label="yellow 2021-01", policy=FAST)
    assert not isinstance(refused.value, NotPublished)


def test_head_and_get_give_the_same_identity(tlc_mirror: ReleaseMirror,
                                              release: Release, tmp_path: Path) -> None:
    for url, check in ((f"{tlc_mirror.parquet_base_url}/{TLC}", ParquetCheck),
                       (f"{tlc_mirror.base_url}/yellow/{CSV}", GzipCsvCheck)):  # a redirect
        head = probe(url, label="m", policy=FAST, missing=NOT_PUBLISHED["parquet"])
        got = download(url, tmp_path / Path(url).name, new_check=check, label="m", policy=FAST)
        assert head == SourceIdentity(got.etag, got.last_modified, got.bytes)
        assert head.etag and head.etag.startswith('"') and head.last_modified.endswith("GMT")
        assert head.length == (tmp_path / Path(url).name).stat().st_size
    assert [s.method for s in tlc_mirror.requests_for(TLC)] == ["HEAD", "GET"]


def test_republishing_gives_a_new_etag_and_a_later_date(tlc_mirror: ReleaseMirror,
                                                        tmp_path: Path) -> None:
    url = f"{tlc_mirror.parquet_base_url}/{TLC}"
    before = probe(url, label="m", policy=FAST)
    file = tlc_mirror.tlc_root / TLC
    tlc_mirror.republish(file, file.read_bytes() + b"")  # the same bytes, written again
    same = probe(url, label="m", policy=FAST)
    assert same.etag == before.etag and same.last_modified != before.last_modified
    assert same.change_from(before) is None  # the ETag decides when both have one
    tlc_mirror.republish(file, file.read_bytes()[:-12] + b"\x00" * 4 + file.read_bytes()[-8:])
    after = probe(url, label="m", policy=FAST)
    assert after.etag != before.etag
    assert after.change_from(before) == f"ETag {before.etag} -> {after.etag}"


def test_a_file_republished_during_a_download_is_fetched_whole_again(
        tlc_mirror: ReleaseMirror, tmp_path: Path) -> None:
    file = tlc_mirror.tlc_root / TLC
    old = file.read_bytes()
    new = tlc_samples.era_month(next(e for e in tlc_samples.ERAS if e.key == "green-2026-06"),
                                3_000).source
    pq.write_table(new, tmp_path / "new.parquet")
    new_bytes = (tmp_path / "new.parquet").read_bytes()
    assert new_bytes != old
    # The first attempt stalls half-way; the file is re-published while it waits.
    tlc_mirror.inject(TLC, Fault("stall", at=len(old) // 2, seconds=1.5))

    # The mirror records the first attempt once it has sent the half, as it starts to stall.
    failed: list[BaseException] = []

    def republish_once_stalled() -> None:
        try:
            wait_until(lambda: tlc_mirror.requests_for(TLC), 10, "the first attempt stalled",
                       interval=0.01)
        except AssertionError as e:
            failed.append(e)
        tlc_mirror.republish(file, new_bytes)

    helper = threading.Thread(target=republish_once_stalled)
    helper.start()
    report = download(f"{tlc_mirror.parquet_base_url}/{TLC}", tmp_path / "raw.parquet",
                      new_check=ParquetCheck, label="green 2026-06",
                      policy=RetryPolicy(timeout=0.5, attempts=4, backoff=0.01,
                                         backoff_max=0.05))
    helper.join()
    assert not failed, failed
    # The resume saw another ETag: it started over rather than splice two files.
    assert (tmp_path / "raw.parquet").read_bytes() == new_bytes
    assert report.restarted == 1 and report.bytes == len(new_bytes)
    assert report.etag == tlc_mirror.etag(file)
    statuses = [(s.status, s.range is not None) for s in tlc_mirror.requests_for(TLC)]
    # The resume sent If-Range with the old ETag: the server answered the whole new file.
    assert statuses == [(200, False), (200, True)]
