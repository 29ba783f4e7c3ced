"""The service calendar (issue 27): the first month each service published, and the range
of any job clipped to it, on one line, down to the Backfill task itself."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from pipeline.core.datasets import SERVICES
from pipeline.tasks.flows import Backfill, IngestMonth
from tests.conftest import Env


def test_each_service_begins_in_its_first_published_month() -> None:
    assert {name: f"{s.first_month:%Y-%m}" for name, s in SERVICES.items()} == {
        "yellow": "2009-01", "green": "2013-08", "fhv": "2015-01", "fhvhv": "2019-02"}
    green = SERVICES["green"]
    assert not green.began(date(2013, 7, 1)) and green.began(date(2013, 8, 1))
    assert green.clip(date(2009, 1, 1), date(2026, 10, 1)) == (date(2013, 8, 1),
                                                               date(2026, 10, 1))
    assert green.clip(date(2009, 1, 1), date(2013, 7, 1)) is None
    assert green.clip_note(date(2013, 8, 1), date(2014, 1, 1)) is None
    assert green.clip_note(date(2009, 1, 1), date(2026, 10, 1)) == (
        "green: begins 2013-08: 2009-01 .. 2013-07 skipped (before the service began)")
    assert SERVICES["fhvhv"].clip_note(date(2018, 1, 1), date(2018, 12, 1)) == (
        "fhvhv: 2018-01 .. 2018-12 is before the service began (2019-02): nothing to do")


def test_backfill_and_ingest_month_leave_out_the_months_before_a_service_began(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="luigi-interface"):
        task = Backfill(start=date(2013, 6, 1), end=date(2013, 9, 1), services=("green", "fhv"))
    assert [r.getMessage() for r in caplog.records if "Backfill" in r.getMessage()] == [
        "Backfill: green: begins 2013-08: 2013-06 .. 2013-07 skipped (before the service "
        "began)",
        "Backfill: fhv: 2013-06 .. 2013-09 is before the service began (2015-01): nothing to do"]
    assert [t.month for t in task.requires()] == [date(2013, 8, 1), date(2013, 9, 1)]
    month = IngestMonth(month=date(2013, 8, 1), services=("green", "fhv"))
    assert {t.service for t in month.requires()} == {"green"}
    assert IngestMonth(month=date(2010, 1, 1), services=("green",)).requires() == []
