"""What every task of the pipeline shares: the (service, month) key, progress reports to
the visualiser, and a one-line failure explanation for expected errors."""

from __future__ import annotations

from datetime import date

import luigi

# pyarrow imports pandas (0.2-0.5 s) the first time it turns a Python value into Arrow
# (``pa.scalar``, ``pc.less(column, 0.0)``), which every conversion does. luigi.cfg runs
# each task in a process forked from the one that scheduled it: imported here, once, the
# forked tasks inherit it instead of each importing it again (issue 15).
import pandas  # noqa: F401

from pipeline.core.datasets import SERVICES
from pipeline.core.errors import PipelineError
from pipeline.core.months import month_key
from pipeline.core.service import Service
from pipeline.tasks.params import MonthParameter, ServiceParameter
from pipeline.tasks.storage import lake


class PipelineTask(luigi.Task):
    _last_percentage = -1

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # A lake root or scratch the pipeline cannot use fails here, before anything runs.
        lake()

    def on_failure(self, exception: BaseException) -> str:
        # Shown in the visualiser: the message alone for an expected failure.
        if isinstance(exception, PipelineError):
            return f"{type(exception).__name__}: {exception}"
        return super().on_failure(exception)

    def report_progress(self, done: int, total: int | None, message: str) -> None:
        """Send progress to the scheduler, at most once per percent (each call is an RPC)."""
        percentage = min(100, done * 100 // total) if total else 0
        if percentage != self._last_percentage:
            self._last_percentage = percentage
            self.report(message, percentage)

    def store_progress(self, done: int, total: int | None) -> None:
        """Progress of storing a staged file in the lake (an upload, for a bucket lake)."""
        self.report_progress(done, total,
                             f"stored {megabytes(done)} of {megabytes(total)} in the lake")

    def report(self, message: str, percentage: int | None = None) -> None:
        """Status message (and percentage) for the visualiser; a no-op outside a worker."""
        if self.set_status_message:
            self.set_status_message(message)
        if percentage is not None and self.set_progress_percentage:
            self.set_progress_percentage(percentage)


class MonthTask(PipelineTask):
    """A task keyed by one service and one month."""

    service: str = ServiceParameter(description="yellow, green, fhv or fhvhv")
    month: date = MonthParameter(description="the month, YYYY-MM")

    @property
    def dataset(self) -> Service:
        return SERVICES[self.service]

    @property
    def label(self) -> str:
        return f"{self.service} {month_key(self.month)}"


def megabytes(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:,.1f} MB"
