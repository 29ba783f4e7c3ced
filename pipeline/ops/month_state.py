"""A month's state as a value: what ``status``, the coverage page and the plans of
``--dry-run`` say of one month of one service, in words that say what to do.

The views render it (the table's state column, the JSON's ``state`` string, the page's
cell colour); nothing reads a state back out of text. The members are listed most urgent
first: a month with several problems takes the first that applies (``most_urgent``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class MonthState(enum.StrEnum):
    """The value is the word the JSON and the table show (unchanged since they were
    strings: ``taxi-pipeline status --format json`` users see the same)."""

    COULD_NOT_TELL = "could not tell"
    MISMATCH = "mismatch"
    REPUBLISHED = "re-published upstream"
    STAGE_MISSING = "a stage missing"
    NOT_INGESTED = "not ingested"
    NOT_PUBLISHED = "not published yet"
    BEFORE_START = "before the service began"
    COMPLETE = "complete"

    @property
    def what_to_do(self) -> str:
        return _WHAT_TO_DO[self]

    @property
    def fine(self) -> bool:
        """Not a problem: the month is complete, or does not exist (yet)."""
        return self in FINE

    @property
    def to_run(self) -> bool:
        """A state a backfill or catch-up works on."""
        return self in TO_RUN


_WHAT_TO_DO = {
    MonthState.COULD_NOT_TELL: "the source or a warehouse did not answer: check it, then ask "
                               "again",
    MonthState.MISMATCH: "a sink or the Parquet disagrees with the manifest: run backfill (or "
                         "refresh)",
    MonthState.REPUBLISHED: "TLC re-wrote the month since it was fetched: run refresh",
    MonthState.STAGE_MISSING: "the month is partly ingested: run backfill for it",
    MonthState.NOT_INGESTED: "published but not in the lake: run backfill or catch-up",
    MonthState.NOT_PUBLISHED: "nothing to do: catch-up takes it once TLC publishes it",
    MonthState.BEFORE_START: "outside the dataset: the service had not begun",
    MonthState.COMPLETE: "nothing to do",
}
FINE = frozenset({MonthState.COMPLETE, MonthState.NOT_PUBLISHED, MonthState.BEFORE_START})
TO_RUN = frozenset({MonthState.MISMATCH, MonthState.REPUBLISHED, MonthState.STAGE_MISSING,
                    MonthState.NOT_INGESTED})


def most_urgent(states: Iterable[MonthState]) -> MonthState:
    """The most urgent of ``states``; COMPLETE when there are none."""
    found = set(states)
    return next((state for state in MonthState if state in found), MonthState.COMPLETE)
