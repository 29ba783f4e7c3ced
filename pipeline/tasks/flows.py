"""The wrapper tasks people run: a month of every service into every configured sink, and
a range of months."""

from __future__ import annotations

import logging
from datetime import date

import luigi

from pipeline import config
from pipeline.core.datasets import SERVICES
from pipeline.core.months import BadParameter, month_key, months_between, parse_names
from pipeline.tasks.params import MonthParameter, NameListParameter
from pipeline.tasks.sinks import configured_sinks, month_tasks
from pipeline.tasks.storage import lake

log = logging.getLogger("luigi-interface")


def configured_services() -> tuple[str, ...]:
    return parse_names(config.pipeline().services, SERVICES, "services")


def services_parameter() -> NameListParameter:
    """``--services``: which services a flow covers; empty: ``[pipeline] services``."""
    return NameListParameter(
        default=(), choices=SERVICES, what="services",
        description="services, comma-separated (default: [pipeline] services)",
    )


class IngestMonth(luigi.WrapperTask):
    """Done when every configured sink (``[pipeline] sinks``) holds the month for every
    service (``--services``, else ``[pipeline] services``) that had begun by then (the
    registry's calendar: green 2010-01 is outside the dataset, never asked for)."""

    month: date = MonthParameter(description="the month, YYYY-MM")
    services: tuple[str, ...] = services_parameter()

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # Settings are checked now, so a bad one fails before anything is scheduled.
        lake()
        self.sinks = configured_sinks()
        config.quality().blocking_checks()
        self.selected_services = self.services or configured_services()

    def requires(self) -> list[luigi.Task]:
        return [
            task
            for service in self.selected_services if SERVICES[service].began(self.month)
            for task in month_tasks(self.sinks, service, self.month)
        ]


class Backfill(luigi.WrapperTask):
    """Done when every month from ``start`` to ``end`` (both included) is ingested, for each
    service from its first month on (the calendar: the months before are outside the
    dataset). No month is dropped, however long the range; a month that fails does not
    stop the others."""

    start: date = MonthParameter(description="first month, YYYY-MM")
    end: date = MonthParameter(description="last month, YYYY-MM (included)")
    services: tuple[str, ...] = services_parameter()

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        lake()  # a lake root the pipeline cannot use fails here, before anything is scheduled
        if self.end < self.start:
            raise BadParameter(
                f"backfill ends ({month_key(self.end)}) before it starts ({month_key(self.start)})"
            )
        # One line per service the calendar clips (luigi keeps one instance per parameters).
        for service in self.services or configured_services():
            note = SERVICES[service].clip_note(self.start, self.end)
            if note:
                log.info("Backfill: %s", note)

    def requires(self) -> list[IngestMonth]:
        services = [SERVICES[name] for name in self.services or configured_services()]
        return [IngestMonth(month=month, services=self.services)
                for month in months_between(self.start, self.end)
                if any(service.began(month) for service in services)]
