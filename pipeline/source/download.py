"""HTTP fetch of a source file: streamed, resumable, retried, verified, committed atomically.

The file streams into a temporary name beside its final one. Transient failures (5xx, 429,
408, connection errors, timeouts) are retried by tenacity with exponential back-off and
full jitter, honouring ``Retry-After``; an attempt after a connection dropped mid-body asks
for the rest with an HTTP ``Range`` request instead of starting over (and starts over when
the file's ``ETag`` changed meanwhile: the resume sends ``If-Range``). The bytes are
checked as they arrive (no extra pass): their length against ``Content-Length``, a gzip
stream inflated to the end, or a Parquet file's magic and footer; never an HTML page; and
the whole file against the digest the source's ETag gives (``pipeline.source.etag``: S3's
MD5 or multipart form), so a resume that spliced in other bytes starts over. Without such a
digest a Parquet download is never spliced (``resume_unverified``). The check runs on a
helper thread (``BackgroundCheck``), so inflating and hashing overlap with receiving
instead of adding to it. What the file holds (its columns, its values) is the conversion's
business, so a refusal of the content never costs another download. Only then is it renamed
into place, so the final name never holds a partial or unverified file. The report says what
the source said the file was (``ETag``, ``Last-Modified``) and which check proved its bytes
(``verified_by``), for the month's source record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO

import requests
import tenacity
import urllib3

from pipeline.core.errors import PipelineError
from pipeline.core.text import Progress, redact
from pipeline.core.version import __version__
from pipeline.lake.local import atomic_path
from pipeline.source.checks import BackgroundCheck, BodyCheck
from pipeline.source.errors import (
    NOT_PUBLISHED,
    NotPublished,
    SourceError,
    TransientSourceError,
    not_published,
)
from pipeline.source.etag import DigestMismatch, EtagDigest
from pipeline.source.policies import RetryPolicy

log = logging.getLogger(__name__)

CHUNK = 1 << 20


@dataclass
class DownloadReport:
    """What a download did: final size, bytes received in all, attempts and resumes."""

    url: str
    bytes: int = 0
    fetched: int = 0
    attempts: int = 0
    resumed: int = 0
    restarted: int = 0
    # What the source said the file was (None when it did not say).
    etag: str | None = None
    last_modified: str | None = None
    # What proved the bytes are the source's file (the ETag's digest), or why nothing could.
    verified_by: str = ""


def download(
    url: str,
    dest: Path,
    *,
    new_check: Callable[[], BodyCheck],
    label: str,
    policy: RetryPolicy,
    progress: Progress | None = None,
    missing: Collection[int] = NOT_PUBLISHED["csv"],
    resume_unverified: bool = True,
) -> DownloadReport:
    """Fetch ``url`` into ``dest`` atomically; raise SourceError with a one-line message
    (NotPublished when the source answers one of the ``missing`` statuses).

    When the source's ETag gives a digest (``pipeline.source.etag``), the whole file must
    match it before it gets its name; ``resume_unverified`` False: without such a digest an
    interrupted download starts over instead of resuming (a Parquet file, whose footer
    check cannot see spliced bytes; a gzip stream's own CRC-32 can)."""
    report = DownloadReport(url=redact(url))
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out, http_session() as session:
            transfer = _Transfer(url, label, out, new_check, session, policy, report, progress,
                                 missing, resume_unverified)
            retrying = tenacity.Retrying(
                stop=tenacity.stop_after_attempt(max(1, policy.attempts)),
                wait=backoff_wait(policy),
                retry=tenacity.retry_if_exception_type(TransientSourceError),
                before_sleep=lambda state: log.warning(
                    "%s: attempt %d failed (%s); retrying",
                    label, state.attempt_number, state.outcome.exception(),
                ),
                reraise=True,
            )
            try:
                retrying(transfer.attempt)
            except TransientSourceError as e:
                tries = f"{report.attempts} attempt{'' if report.attempts == 1 else 's'}"
                raise SourceError(
                    f"{label}: gave up on {report.url} after {tries}: {e}"
                ) from None
            except NotPublished:
                raise
            except PipelineError as e:
                raise SourceError(f"{label}: {report.url}: {e}") from None
            finally:
                transfer.check.close()  # the helper thread ends whatever happened
        report.bytes = transfer.done
    return report


def http_session() -> requests.Session:
    session = requests.Session()
    # Identity: the bytes on disk must be the file as published, never a re-encoding.
    session.headers.update(
        {"User-Agent": f"nyc-taxi-pipeline/{__version__}", "Accept-Encoding": "identity"}
    )
    return session


def backoff_wait(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    jitter = tenacity.wait_random_exponential(multiplier=policy.backoff, max=policy.backoff_max)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = jitter(state)
        if isinstance(exc, TransientSourceError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return min(delay, policy.backoff_max)

    return wait


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Transfer:
    """One file's transfer across attempts: how much is on disk, how much is expected."""

    def __init__(
        self,
        url: str,
        label: str,
        out: BinaryIO,
        new_check: Callable[[], BodyCheck],
        session: requests.Session,
        policy: RetryPolicy,
        report: DownloadReport,
        progress: Progress | None,
        missing: Collection[int],
        resume_unverified: bool = True,
    ) -> None:
        self.url, self.label, self.out, self.session = url, label, out, session
        self.new_check = new_check
        self.digest = EtagDigest(None, None)
        self.check = self._new_checks()
        self.policy, self.report, self.progress = policy, report, progress
        self.missing = missing
        self.resume_unverified = resume_unverified
        self.spliced = False  # the file on disk is made of more than one response
        self.done = 0
        self.total: int | None = None

    def _new_checks(self) -> BackgroundCheck:
        """The body check and the digest, fed together on the helper thread; the digest
        learns what to expect from the response headers, before any byte is fed."""
        self.digest = EtagDigest(None, None)
        return BackgroundCheck(_WithDigest(self.new_check(), self))

    def _resume_headers(self) -> dict[str, str]:
        """``Range`` for the rest, with ``If-Range`` so a file changed on the server since
        is sent whole (and the download starts over) instead of spliced."""
        validator = self.report.etag if self.report.etag and not self.report.etag.startswith(
            "W/") else self.report.last_modified
        headers = {"Range": f"bytes={self.done}-"}
        if validator:
            headers["If-Range"] = validator
        return headers

    def attempt(self) -> None:
        self.report.attempts += 1
        if self.done and self.digest.kind is None and not self.resume_unverified:
            # Nothing could prove a splice right: the rest is not asked for, the whole is.
            self.report.restarted += 1
            self._restart()
        headers = self._resume_headers() if self.done else {}
        timeout = (self.policy.timeout, self.policy.timeout)
        try:
            with self.session.get(self.url, headers=headers, stream=True, timeout=timeout) as r:
                self._accept(r)
                # read1 hands over whatever has arrived, so a connection that drops loses
                # nothing already received and the resume asks for exactly the rest.
                while data := r.raw.read1(CHUNK, decode_content=False):
                    self._write(data)
        except (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError) as e:
            raise TransientSourceError(
                f"connection failed after {self.done} bytes ({type(e).__name__})"
            ) from None
        if self.total is not None and self.done < self.total:
            raise TransientSourceError(
                f"connection closed after {self.done} of {self.total} bytes"
            )
        self._finish()

    def _finish(self) -> None:
        """The whole file is here: the body check's verdict, then the digest's. Bytes that
        fail the digest after a resume start over (the splice was wrong); on a download in
        one piece they are refused (the source serves a file its digest does not match)."""
        try:
            self.check.finish()
        except DigestMismatch as e:
            if self.spliced:
                self.report.restarted += 1
                self._restart()
                raise TransientSourceError(f"the resumed file is not the source's ({e}); "
                                           "starting over") from None
            raise SourceError(f"{e}; refused") from None
        self.report.verified_by = self.digest.proof or self._unproven()

    def _unproven(self) -> str:
        why = ("no ETag" if not self.report.etag
               else f"ETag {self.report.etag} is no digest")
        how = "resumed" if self.spliced else "in one piece"
        return f"none ({why}); received {how}"

    def _accept(self, r: requests.Response) -> None:
        status = r.status_code
        if status in self.missing:
            raise not_published(self.label, self.url, status,
                                r.raw.read(4096, decode_content=False) or b"")
        if status in (408, 429) or status >= 500:
            raise TransientSourceError(f"HTTP {status}",
                                       retry_after_seconds(r.headers.get("Retry-After")))
        if status == 416 and self.done:
            raise SourceError(
                f"the server announced {self.total} bytes but has no more after {self.done} "
                f"(Content-Range {r.headers.get('Content-Range', '?')})")
        if status not in (200, 206):
            raise SourceError(f"HTTP {status} {r.reason}")
        if r.headers.get("Content-Type", "").lower().startswith("text/html"):
            raise SourceError("the server answered an HTML page, not the data file")
        if status == 206 and self.done:
            match = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", "").strip())
            if not match or int(match.group(1)) != self.done:
                raise SourceError(f"bad Content-Range {r.headers.get('Content-Range')!r}")
            size = match.group(3)
            resized = size != "*" and self.total is not None and int(size) != self.total
            if resized or r.headers.get("ETag") != self.report.etag:
                # Re-published between two attempts: the rest is of another file.
                self.report.restarted += 1
                self._restart()
                raise TransientSourceError("the file changed on the server during the "
                                           "download; starting over")
            self.report.resumed += 1
            self.spliced = True
            return
        if self.done:
            # The server ignored Range and sends the whole file again: start over.
            self.report.restarted += 1
            self._restart()
        length = r.headers.get("Content-Length")
        self.total = int(length) if length and length.isdigit() else None
        self.report.etag = r.headers.get("ETag")
        self.report.last_modified = r.headers.get("Last-Modified")
        # Before the first byte is fed (the helper thread reads it after the queue).
        self.digest = EtagDigest(self.report.etag, self.total)

    def _restart(self) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.done = 0
        self.spliced = False
        self.check.close()
        self.check = self._new_checks()

    def _write(self, data: bytes) -> None:
        if self.total is not None and self.done + len(data) > self.total:
            raise SourceError(
                f"the server sent more than its Content-Length of {self.total} bytes"
            )
        self.check.feed(data)
        self.out.write(data)
        self.done += len(data)
        self.report.fetched += len(data)
        if self.progress:
            self.progress(self.done, self.total)


class _WithDigest:
    """A body check and the transfer's ETag digest, fed the same bytes in order."""

    def __init__(self, check: BodyCheck, transfer: _Transfer) -> None:
        self._check, self._transfer = check, transfer

    def feed(self, data: bytes) -> None:
        self._transfer.digest.feed(data)
        self._check.feed(data)

    def finish(self) -> None:
        self._check.finish()
        self._transfer.digest.verify()


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None
