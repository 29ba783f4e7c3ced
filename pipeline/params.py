"""Luigi parameters in the pipeline's terms: a month, a service, a list of names.

Each rejects bad input when the command line is parsed, with a message that names the
value and what was expected, so nothing is scheduled for an impossible month.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import luigi

from pipeline.datasets import SERVICES
from pipeline.errors import PipelineError


class BadParameter(PipelineError, ValueError):
    """A parameter value that names no month, service or sink the pipeline knows."""


class MonthParameter(luigi.MonthParameter):
    """A calendar month written ``YYYY-MM``."""

    def parse(self, s: str) -> date:
        try:
            return super().parse(s)
        except ValueError:
            raise BadParameter(f"invalid month {s!r}: expected YYYY-MM, e.g. 2021-01") from None


def month_key(month: date) -> str:
    """``2021-01``: how a month is written in file names and warehouse rows."""
    return f"{month:%Y-%m}"


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


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


class NameListParameter(luigi.Parameter):
    """A comma-separated list of names from a fixed vocabulary (``yellow,green``)."""

    def __init__(self, *args, choices: Iterable[str], what: str, **kwargs) -> None:
        self._choices = tuple(choices)
        self._what = what
        super().__init__(*args, **kwargs)

    def parse(self, x: str) -> tuple[str, ...]:
        return parse_names(x, self._choices, self._what)

    def normalize(self, x: str | Iterable[str]) -> tuple[str, ...]:
        if not x:
            return ()
        return self.parse(x) if isinstance(x, str) else self.parse(",".join(x))

    def serialize(self, x: Iterable[str]) -> str:
        return ",".join(x)


class ServiceParameter(luigi.Parameter):
    """One service of the registry: ``yellow``, ``green``, ``fhv`` or ``fhvhv``."""

    def normalize(self, x: str) -> str:
        if x not in SERVICES:
            raise BadParameter(f"unknown service {x!r}: expected one of {', '.join(SERVICES)}")
        return x
