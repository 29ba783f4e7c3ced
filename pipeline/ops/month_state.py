"""A month's state as a value: what ``status``, the coverage page and the plans of
``--dry-run`` say of one month of one service, in words that say what to do.

The views render it (the table's state column, the JSON's ``state`` string, the page's
cell colour); nothing reads a state back out of text. The members are listed most urgent
first: a month with several problems takes the first that applies (``most_urgent``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from pipeline.lake.month_facts import LakeFacts


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


# A problem found with a month: its kind and what exactly, in words (``detail``).
Problem = tuple[MonthState, str]


def lake_problems(facts: LakeFacts) -> list[Problem]:
    """What the lake's own facts say is wrong with a month it holds (none for a month it
    does not hold: why it lacks one is the source's to tell)."""
    problems: list[Problem] = []
    if facts.absent:
        return problems
    if facts.valid_manifest is None:
        # Absent, truncated or replaced: the manifest does not describe what is there.
        problems.append((MonthState.STAGE_MISSING,
                         "parquet missing (run ingest: it converts the month again)"))
    elif not facts.made_from_raw:
        problems.append((MonthState.MISMATCH, "parquet older than the raw file (run ingest: it "
                                              "converts the month again)"))
    if facts.raw_bytes is not None and not facts.raw_matches_record:
        problems.append((MonthState.MISMATCH, "raw file is not the one its source record "
                                              "describes (run ingest: it downloads the month "
                                              "again)"))
    return problems


def sink_problems(sinks: dict[str, int | None], facts: LakeFacts) -> list[Problem]:
    """What each sink's rows of the month (None: it holds none) say against the manifest."""
    manifest = facts.valid_manifest
    problems: list[Problem] = []
    for sink, rows in sinks.items():
        if rows is None:
            if not facts.absent:  # a month the lake lacks is in no sink: that goes unsaid
                problems.append((MonthState.STAGE_MISSING, f"{sink} missing"))
        elif manifest is not None and rows != manifest.rows:
            problems.append((MonthState.MISMATCH,
                             f"MISMATCH {sink} {rows:,} != manifest {manifest.rows:,}"))
        elif manifest is None:
            problems.append((MonthState.MISMATCH, f"{sink} has {rows:,} rows without a manifest"))
    return problems
