"""What the pipeline says about a failure: one line, and never a secret.

Every message that reaches a log, a manifest, an alert or the visualiser goes through
``one_line`` and ``redact``: a URL's ``user:password@``, a connection string's password,
signed-URL and upload-session parameters are replaced before anything is shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# A callback told how much of a whole is done: (done, total or None when unknown).
Progress = Callable[[int, int | None], None]

_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")
_SECRET_PARAMS = re.compile(
    r"\b(upload_id|access_token|X-Goog-Signature|X-Amz-Signature|sig|token|password)"
    r"=[^&\s\"']+", re.IGNORECASE)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` without credentials: a URL's ``user:password@`` part is dropped, token-like
    query parameters lose their value, and each of ``secrets`` is masked wherever it
    appears."""
    text = _USERINFO.sub(r"\1", text)
    text = _SECRET_PARAMS.sub(r"\1=***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """An error's text on one line (white space folded), at most ``limit`` characters,
    credentials redacted; the exception's class name when it has no text."""
    text = " ".join(str(error).split())
    if not text and isinstance(error, BaseException):
        text = type(error).__name__
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
