"""Asking the source about a file without fetching it: an HTTP ``HEAD``.

The answer is the file's identity as the source gives it now (``ETag``, ``Last-Modified``,
length), compared with what a month's manifest recorded to find months re-published
upstream, and used to find the newest month published. A file the source says does not
exist (404, 410, or the 403 AccessDenied of TLC's S3 host: ``NOT_PUBLISHED``) raises
NotPublished with the same one line a download gives; transient failures are retried as a
download's are.
"""

from __future__ import annotations

from collections.abc import Collection

import requests
import tenacity

from pipeline.core.manifest import SourceIdentity
from pipeline.core.text import redact
from pipeline.source.download import backoff_wait, http_session, retry_after_seconds
from pipeline.source.errors import (
    NOT_PUBLISHED,
    SourceError,
    TransientSourceError,
    not_published,
)
from pipeline.source.policies import RetryPolicy


def probe(url: str, *, label: str, policy: RetryPolicy,
          missing: Collection[int] = NOT_PUBLISHED["csv"]) -> SourceIdentity:
    """What the source says ``url`` is now; NotPublished when it has no such file,
    SourceError (one line) when it cannot tell."""
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, policy.attempts)),
        wait=backoff_wait(policy),
        retry=tenacity.retry_if_exception_type(TransientSourceError),
        reraise=True,
    )
    with http_session() as session:
        try:
            return retrying(_head, session, url, label, policy, missing)
        except TransientSourceError as e:
            raise SourceError(f"{label}: HEAD {redact(url)} failed: {e}") from None


def _head(session: requests.Session, url: str, label: str, policy: RetryPolicy,
          missing: Collection[int]) -> SourceIdentity:
    try:
        answer = session.head(url, allow_redirects=True,
                              timeout=(policy.timeout, policy.timeout))
    except (requests.ConnectionError, requests.Timeout) as e:
        raise TransientSourceError(f"connection failed ({type(e).__name__})") from None
    status = answer.status_code
    if status in missing:
        raise not_published(label, url, status)
    if status in (408, 429) or status >= 500:
        raise TransientSourceError(f"HTTP {status}",
                                   retry_after_seconds(answer.headers.get("Retry-After")))
    if status != 200:
        raise SourceError(f"{label}: HEAD {redact(url)} answered HTTP {status} {answer.reason}")
    length = answer.headers.get("Content-Length", "")
    return SourceIdentity(etag=answer.headers.get("ETag"),
                          last_modified=answer.headers.get("Last-Modified"),
                          length=int(length) if length.isdigit() else None)
