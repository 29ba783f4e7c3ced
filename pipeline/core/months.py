"""Months and name lists in the pipeline's terms: how a month is written, ranges of months,
and a comma-separated list of names checked against a vocabulary. No luigi here."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from pipeline.core.errors import PipelineError


class BadParameter(PipelineError, ValueError):
    """A parameter value that names no month, service or sink the pipeline knows."""


def month_key(month: date) -> str:
    """``2021-01``: how a month is written in file names and warehouse rows."""
    return f"{month:%Y-%m}"


def month_of(key: str) -> date:
    """``2021-01`` -> the month's date: the inverse of ``month_key``."""
    try:
        year, month = (int(part) for part in key.split("-"))
        return date(year, month, 1)
    except ValueError:
        raise BadParameter(f"{key!r} is not a month (YYYY-MM)") from None


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def previous_month(month: date) -> date:
    return date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)


def months_between(start: date, end: date) -> list[date]:
    """Every month from start to end, both included."""
    months, month = [], date(start.year, start.month, 1)
    while month <= end:
        months.append(month)
        month = next_month(month)
    return months


def parse_names(text: str, allowed: Iterable[str], what: str) -> tuple[str, ...]:
    """``"yellow, green"`` -> ``("yellow", "green")``, refusing names not in ``allowed``."""
    allowed = list(allowed)
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise BadParameter(
            f"unknown {what} {', '.join(map(repr, unknown))}: expected any of {', '.join(allowed)}"
        )
    if not names:
        raise BadParameter(f"no {what} given: expected any of {', '.join(allowed)}")
    return names
