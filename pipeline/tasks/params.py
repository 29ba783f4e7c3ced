"""Luigi parameters in the pipeline's terms: a month, a service, a list of names.

Each rejects bad input when the command line is parsed, with a message that names the
value and what was expected, so nothing is scheduled for an impossible month.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import luigi

from pipeline.core.datasets import SERVICES
from pipeline.core.months import BadParameter, parse_names


class MonthParameter(luigi.MonthParameter):
    """A calendar month written ``YYYY-MM``."""

    def parse(self, s: str) -> date:
        try:
            return super().parse(s)
        except ValueError:
            raise BadParameter(f"invalid month {s!r}: expected YYYY-MM, e.g. 2021-01") from None


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
