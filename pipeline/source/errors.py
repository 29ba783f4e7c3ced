"""What a source can answer besides the file: it cannot give it (``SourceError``), it has
no such file (``NotPublished``), or it is busy and worth asking again
(``TransientSourceError``)."""

from __future__ import annotations

import re

from pipeline.core.errors import PipelineError
from pipeline.core.text import redact


class SourceError(PipelineError):
    """The source cannot give this file; retrying will not help. Its message is one line."""


class NotPublished(SourceError):
    """The source says the file does not exist (404, 410, or TLC's 403, see
    ``NOT_PUBLISHED``): the month is not (yet) published."""


# Statuses that mean "no such file", by the kind of source: the CSV mirror (GitHub releases)
# answers 404; TLC's trip-data host (S3 behind CloudFront) answers 403 AccessDenied, with
# an XML body, for a key that does not exist (yet), to GET and HEAD alike.
NOT_PUBLISHED: dict[str, frozenset[int]] = {
    "csv": frozenset({404, 410}),
    "parquet": frozenset({403, 404, 410}),
}
_S3_CODE = re.compile(rb"<Code>([A-Za-z]{1,40})</Code>")


def not_published(label: str, url: str, status: int, body: bytes = b"") -> NotPublished:
    """The one-line refusal for a file the source says does not exist."""
    code = _S3_CODE.search(body[:4096])
    why = f"HTTP {status} {code.group(1).decode()}" if code else f"HTTP {status}"
    return NotPublished(f"{label} is not published at {redact(url)} ({why})")


class TransientSourceError(Exception):
    """A failure worth retrying: overload, a dropped connection, a timeout."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
