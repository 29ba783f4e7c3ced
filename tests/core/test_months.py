"""How a month is written and read back: ``month_key`` and its inverse ``month_of``."""

from __future__ import annotations

from datetime import date

import pytest

from pipeline.core.months import BadParameter, month_key, month_of, months_between


def test_a_month_key_reads_back_as_its_month() -> None:
    for month in months_between(date(2009, 1, 1), date(2026, 12, 1)):
        assert month_of(month_key(month)) == month
    assert month_of("2021-1") == date(2021, 1, 1)


@pytest.mark.parametrize("text", ["2021-13", "2021", "2021-01-05", "january", ""])
def test_text_that_is_not_a_month_is_refused_on_one_line(text: str) -> None:
    with pytest.raises(BadParameter, match=r"is not a month \(YYYY-MM\)$"):
        month_of(text)
