"""The download step against a real local HTTP server with scripted faults."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from pipeline.core.datasets import SERVICES
from pipeline.source.checks import GzipCsvCheck, header_check
from pipeline.source.download import DownloadReport, download
from pipeline.source.errors import NotPublished, SourceError
from pipeline.source.policies import RetryPolicy
from tests.conftest import Release
from tests.mirror import Fault, ReleaseMirror

pytestmark = pytest.mark.fault_case

NAME = "yellow_tripdata_2021-01.csv.gz"
FAST = RetryPolicy(timeout=2, attempts=4, backoff=0.01, backoff_max=0.05)


def fetch(mirror: ReleaseMirror, dest: Path, name: str = NAME,
          policy: RetryPolicy = FAST) -> DownloadReport:
    service = name.split("_")[0]
    check = header_check(SERVICES[service].canonical_header)
    return download(f"{mirror.base_url}/{service}/{name}", dest,
                    new_check=lambda: GzipCsvCheck(check), label=f"{service} 2021-01",
                    policy=policy)


def source_bytes(release: Release, name: str = NAME) -> bytes:
    return (release.root / name.split("_")[0] / name).read_bytes()


def nothing_left(dest: Path) -> bool:
    return not any(dest.parent.iterdir()) if dest.parent.exists() else True


def test_clean_download_follows_the_redirect(mirror: ReleaseMirror, release: Release,
                                             tmp_path: Path) -> None:
    dest = tmp_path / "raw" / NAME
    report = fetch(mirror, dest)
    assert dest.read_bytes() == source_bytes(release)
    assert report.bytes == report.fetched == len(source_bytes(release))
    assert report.attempts == 1
    assert [p.name for p in dest.parent.iterdir()] == [NAME]  # no temporary left


def test_503_then_ok_is_retried(mirror: ReleaseMirror, release: Release, tmp_path: Path) -> None:
    mirror.inject(NAME, Fault("status", status=503), Fault("status", status=502))
    report = fetch(mirror, tmp_path / NAME)
    assert report.attempts == 3
    assert (tmp_path / NAME).read_bytes() == source_bytes(release)


def test_429_retry_after_is_honoured_up_to_the_cap(mirror: ReleaseMirror, release: Release,
                                                   tmp_path: Path) -> None:
    import time

    mirror.inject(NAME, Fault("status", status=429, retry_after="1"))
    started = time.monotonic()
    report = fetch(mirror, tmp_path / NAME,
                   policy=RetryPolicy(timeout=2, attempts=3, backoff=0.01, backoff_max=5))
    assert time.monotonic() - started >= 1.0
    assert report.attempts == 2


@pytest.mark.parametrize("offset", [1, 70_000, 500_001])
def test_reset_mid_body_resumes_with_range(mirror: ReleaseMirror, release: Release,
                                           tmp_path: Path, offset: int) -> None:
    mirror.inject(NAME, Fault("reset", at=offset))
    report = fetch(mirror, tmp_path / NAME)
    whole = source_bytes(release)
    assert (tmp_path / NAME).read_bytes() == whole
    assert report.resumed == 1 and report.restarted == 0
    # Only what was missing came again: nothing fetched twice.
    assert report.fetched == len(whole)
    served = mirror.requests_for(NAME)
    assert served[-1].status == 206 and served[-1].range is not None
    assert served[-1].range.startswith("bytes=") and served[-1].body_bytes < len(whole)


def test_server_that_ignores_range_starts_over(mirror: ReleaseMirror, release: Release,
                                               tmp_path: Path) -> None:
    mirror.inject(NAME, Fault("reset", at=200_000), Fault("ignore_range"))
    report = fetch(mirror, tmp_path / NAME)
    whole = source_bytes(release)
    assert (tmp_path / NAME).read_bytes() == whole
    assert report.restarted == 1
    assert report.fetched - len(whole) == mirror.requests_for(NAME)[0].body_bytes


def test_stalled_transfer_times_out_and_resumes(mirror: ReleaseMirror, release: Release,
                                                tmp_path: Path) -> None:
    mirror.inject(NAME, Fault("stall", at=100_000, seconds=3))
    report = fetch(mirror, tmp_path / NAME,
                   policy=RetryPolicy(timeout=0.5, attempts=3, backoff=0.01, backoff_max=0.05))
    assert (tmp_path / NAME).read_bytes() == source_bytes(release)
    assert report.resumed == 1


def test_404_fails_at_once_with_one_line(mirror: ReleaseMirror, tmp_path: Path) -> None:
    dest = tmp_path / "raw" / "yellow_tripdata_2030-01.csv.gz"
    with pytest.raises(NotPublished) as error:
        fetch(mirror, dest, name="yellow_tripdata_2030-01.csv.gz")
    message = str(error.value)
    assert message.startswith("yellow 2021-01 is not published at http://127.0.0.1:")
    assert message.endswith("(HTTP 404)") and "\n" not in message
    assert len(mirror.requests_for("yellow_tripdata_2030-01.csv.gz")) == 1
    assert nothing_left(dest)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault("html"), "HTML page"),
        (Fault("truncate", at=300_000), "truncated gzip stream"),
    ],
)
def test_bad_bodies_are_refused_and_leave_nothing(mirror: ReleaseMirror, tmp_path: Path,
                                                  fault: Fault, message: str) -> None:
    mirror.inject(NAME, fault)
    dest = tmp_path / "raw" / NAME
    with pytest.raises(SourceError, match=message) as error:
        fetch(mirror, dest)
    assert "\n" not in str(error.value)
    assert nothing_left(dest)


def test_content_length_that_lies_fails_cleanly(mirror: ReleaseMirror, release: Release,
                                                tmp_path: Path) -> None:
    mirror.inject(NAME, Fault("lie", extra=1000))
    dest = tmp_path / "raw" / NAME
    size = len(source_bytes(release))
    with pytest.raises(SourceError, match=f"announced {size + 1000} bytes but has no more "
                                          f"after {size}"):
        fetch(mirror, dest)
    assert nothing_left(dest)
    # The resume asked for the rest, and was told there is none.
    assert [s.status for s in mirror.requests_for(NAME)] == [200, 416]


def test_not_gzip_and_wrong_header_are_refused(mirror: ReleaseMirror, release: Release,
                                               tmp_path: Path) -> None:
    (release.root / "yellow" / "yellow_tripdata_1999-01.csv.gz").write_bytes(b"plain text\n")
    with pytest.raises(SourceError, match="not a gzip file"):
        fetch(mirror, tmp_path / "a", name="yellow_tripdata_1999-01.csv.gz")
    (release.root / "yellow" / "yellow_tripdata_1999-02.csv.gz").write_bytes(
        gzip.compress(b"a,b,c\n1,2,3\n"))
    with pytest.raises(SourceError, match="header does not match"):
        fetch(mirror, tmp_path / "b", name="yellow_tripdata_1999-02.csv.gz")
    (release.root / "yellow" / "yellow_tripdata_1999-03.csv.gz").write_bytes(
        gzip.compress(b"x" * 100_000))
    with pytest.raises(SourceError, match="header line is longer than 64 KiB"):
        fetch(mirror, tmp_path / "c", name="yellow_tripdata_1999-03.csv.gz")
    assert list(tmp_path.iterdir()) == []
