"""One line, never a secret: the helper every message goes through."""

from __future__ import annotations

import pytest

from pipeline.core.text import one_line, redact


@pytest.mark.parametrize(("text", "shown"), [
    ("https://user:s3cret@host:8443/a.csv.gz", "https://host:8443/a.csv.gz"),
    ("postgresql://taxi:pw@127.0.0.1:5432/db failed", "postgresql://127.0.0.1:5432/db failed"),
    ("gs://bucket/key?upload_id=AEnB2Uo&x=1", "gs://bucket/key?upload_id=***&x=1"),
    ("GET /o?X-Goog-Signature=abcdef123 403", "GET /o?X-Goog-Signature=*** 403"),
    ("https://host/a.parquet", "https://host/a.parquet"),
])
def test_credentials_never_reach_a_message(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_a_named_secret_is_masked_wherever_it_appears() -> None:
    assert redact("password hunter2 rejected", "hunter2") == "password *** rejected"
    assert redact("nothing to hide", None) == "nothing to hide"


def test_one_line_folds_white_space_cuts_and_redacts() -> None:
    error = ValueError("first line\n\tDETAIL:  second   line at http://u:p@h/x")
    assert one_line(error) == "first line DETAIL: second line at http://h/x"
    long = one_line("x" * 500, limit=50)
    assert len(long) == 50 and long.endswith("…")
    assert one_line(KeyError()) == "KeyError"
