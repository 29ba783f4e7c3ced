"""Which months are done: months x services x stages (raw, parquet, each sink), with row
counts from the manifests and the warehouses, what the source says, and every
inconsistency named.

Row counts come from one query per sink and service, not one per month. The source is
asked (an HTTP HEAD) about months the lake does not have, to tell "not published" from
"not downloaded", and with ``compare_source`` about the months it has, to find the ones
re-published upstream since they were fetched. What the source says is added to what the
lake and the sinks say, never put in its place: a warehouse still holding a month whose
lake files are gone says so. The lake is read through ``pipeline.ops.facts`` (the lake's
key functions and the same checks as the tasks' completeness; no task is built). A month's
state is a ``MonthState`` value, rendered by the table, the JSON and the coverage page.
Each month's quality counts come from its manifest, weighed against today's ``[quality]``
thresholds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime

from pipeline import config
from pipeline.convert.quality import judge
from pipeline.core.datasets import SERVICES
from pipeline.core.errors import PipelineError
from pipeline.core.months import month_key, month_of, months_between
from pipeline.core.text import one_line
from pipeline.lake.targets import file_digests
from pipeline.ops.facts import lake_facts, lake_files, published
from pipeline.ops.month_state import FINE as FINE  # importable from here, as before
from pipeline.ops.month_state import TO_RUN as TO_RUN
from pipeline.ops.month_state import (
    MonthState,
    Problem,
    lake_problems,
    most_urgent,
    sink_problems,
)
from pipeline.ops.upstream import check_source
from pipeline.source.download import NotPublished
from pipeline.tasks.sinks import SINKS
from pipeline.tasks.storage import lake

# The states of a month of a service (``pipeline.ops.month_state``), by their old names
# here too: the plans of --dry-run, the coverage page and the CLI use them.
COULD_NOT_TELL = MonthState.COULD_NOT_TELL
MISMATCH = MonthState.MISMATCH
REPUBLISHED = MonthState.REPUBLISHED
STAGE_MISSING = MonthState.STAGE_MISSING
NOT_INGESTED = MonthState.NOT_INGESTED
NOT_PUBLISHED = MonthState.NOT_PUBLISHED
BEFORE_START = MonthState.BEFORE_START
COMPLETE = MonthState.COMPLETE
# state: what to do about it, most urgent first.
STATES: dict[MonthState, str] = {state: state.what_to_do for state in MonthState}

# `taxi-pipeline status` exit codes (40, bad input, is luigi.cfg's [retcode]).
EXIT_COMPLETE = 0
EXIT_INCOMPLETE = 1
EXIT_UNKNOWN = 3


@dataclass
class MonthStatus:
    month: str
    service: str
    raw_bytes: int | None
    parquet_rows: int | None
    sinks: dict[str, int | None] = field(default_factory=dict)
    state: MonthState = MonthState.COMPLETE
    # Source columns the registry does not know, kept in the raw file only (manifest).
    new_columns: list[str] = field(default_factory=list)
    # What the source said when asked (a HEAD request); None when it was not asked.
    source: str | None = None
    # Rows per quality check (from the manifest; None without one), and the checks above
    # their [quality] threshold.
    quality: dict[str, int | None] | None = None
    quality_warnings: list[str] = field(default_factory=list)
    # With ``verify``: bytes read in full to check the files against their manifest.
    verified_bytes: int | None = None
    # Every problem found, in words (``state`` is the most urgent one's kind).
    detail: str = ""
    # The source's Last-Modified for the month when it was asked (a HEAD request).
    published_at: str | None = None
    # With status --stale-after: published longer ago than that and still not complete.
    stale: bool = False
    # The Parquet at the month's key is the one converted while its raw file downloaded,
    # as the raw file's source record says (ParquetizeMonth takes it: no conversion again).
    converted_while_downloading: bool = False

    @property
    def complete(self) -> bool:
        return self.state == COMPLETE

    @property
    def fine(self) -> bool:
        """Complete, or not a month that exists (not published yet, before the service)."""
        return self.state.fine


def report(months: list[date], services: tuple[str, ...], sinks: tuple[str, ...],
           check_source: bool = True, compare_source: bool = False,
           verify: bool = False) -> list[MonthStatus]:
    """The status of every month x service; ``check_source`` asks the source about months
    the lake lacks, ``compare_source`` about the months it holds (re-published ones);
    ``verify`` reads every lake file in full and checks its sha256 against the manifest
    (otherwise a complete month's check reads sizes, footers and records only)."""
    counts = {(sink, service): SINKS[sink].rows_by_month(SERVICES[service])
              for sink in sinks for service in services}
    thresholds = config.quality().thresholds()
    statuses = []
    for month in months:
        for service in services:
            if not SERVICES[service].began(month):
                statuses.append(MonthStatus(month_key(month), service, None, None,
                                            dict.fromkeys(sinks), state=BEFORE_START))
                continue
            status = _month_status(month, service, sinks, counts, check_source,
                                   compare_source, thresholds)
            if verify:
                _verify(status, month)
            statuses.append(status)
    return statuses


def _verify(status: MonthStatus, month: date) -> None:
    """Read the month's lake files in full: the Parquet file's sha256 against its manifest,
    the raw file's against the manifest's record of the file it was made from. A file that
    differs is named with the command that repairs it."""
    facts = lake_facts(status.service, month)
    manifest = facts.valid_manifest
    if manifest is None:
        return  # already reported: the cheap checks found it incomplete
    files = lake_files(status.service, month)
    problems: list[tuple[MonthState, str]] = []  # (state, what exactly)
    read = 0
    try:
        with files.parquet.local_file() as path:
            found = file_digests(path)
        read += found.size
        if found.sha256 != manifest.parquet_sha256:
            problems.append((MISMATCH, f"parquet differs from its manifest's sha256 (remove "
                                       f"{files.manifest.path} and run ingest: it converts "
                                       "the month again)"))
        raw = files.raw
        if raw.exists() and facts.made_from_raw:
            with raw.local_file() as path:
                found = file_digests(path)
            read += found.size
            if found.sha256 != manifest.source_sha256:
                # The Parquet is whole: only the raw file is fetched again (ingest would
                # not, a month's raw file being optional once converted).
                problems.append((MISMATCH,
                    f"raw file differs from the one the parquet was made from (remove "
                    f"{raw.path} and run `luigi --module pipeline DownloadMonth --service "
                    f"{status.service} --month {status.month} --local-scheduler`: it "
                    "downloads it again)"))
    except (OSError, PipelineError) as e:
        problems.append((COULD_NOT_TELL, f"not verified: {one_line(e)}"))
    status.verified_bytes = read
    if problems:
        found_before = [] if status.complete else [(status.state, status.detail)]
        problems = found_before + problems
        status.detail = "; ".join(what for _, what in problems)
        status.state = most_urgent(kind for kind, _ in problems)


def exit_code(statuses: list[MonthStatus]) -> int:
    """0: everything that exists is complete; 1: some month is not; 3: could not tell."""
    if any(not s.fine and s.state != COULD_NOT_TELL for s in statuses):
        return EXIT_INCOMPLETE
    if any(s.state == COULD_NOT_TELL for s in statuses):
        return EXIT_UNKNOWN
    return EXIT_COMPLETE


def mark_stale(statuses: list[MonthStatus], days: float, now: datetime | None = None
               ) -> list[MonthStatus]:
    """Mark (and return) the months not complete whose source published them more than
    ``days`` ago (their Last-Modified, asked for with a HEAD request when not known yet);
    the others that are not complete stop counting as problems (``fine`` by freshness)."""
    now = now or datetime.now(UTC)
    stale = []
    for status in statuses:
        if status.fine or status.state == COULD_NOT_TELL:
            continue
        if status.published_at is None:
            _ask_published(status)
        published = _when(status.published_at)
        if published is None:
            continue
        if (now - published).total_seconds() > days * 86_400:
            status.stale = True
            stale.append(status)
    return stale


def _ask_published(status: MonthStatus) -> None:
    try:
        status.published_at = published(status.service, month_of(status.month)).last_modified
    except NotPublished:
        status.source = "not published"
    except PipelineError as e:
        status.source = f"unreachable: {one_line(e)}"


def _when(text: str | None) -> datetime | None:
    try:
        return parsedate_to_datetime(text) if text else None
    except (TypeError, ValueError):
        return None


def _month_status(month: date, service: str, sinks: tuple[str, ...],
                  counts: dict[tuple[str, str], dict[date, int]], ask_missing: bool,
                  compare: bool, thresholds: dict[str, float]) -> MonthStatus:
    facts = lake_facts(service, month)
    manifest = facts.valid_manifest
    status = MonthStatus(
        month=month_key(month), service=service,
        raw_bytes=facts.raw_bytes,
        parquet_rows=manifest.rows if manifest else None,
        sinks={sink: counts[(sink, service)].get(month) for sink in sinks},
        new_columns=[c.describe() for c in manifest.new_columns] if manifest else [],
        converted_while_downloading=bool(facts.converted_described),
    )
    if manifest is not None and manifest.quality:
        status.quality = dict(manifest.quality)
        status.quality_warnings = [f.check for f in judge(manifest.quality, manifest.rows,
                                                          thresholds)]
    problems: list[Problem] = []  # (state, what exactly)
    if facts.absent:
        problems.append(_missing_month(status, month) if ask_missing
                        else (NOT_INGESTED, "not downloaded"))
    problems += lake_problems(facts) + sink_problems(status.sinks, facts)
    if compare and manifest is not None:
        try:
            checked = check_source(service, month, facts)
        except PipelineError as e:
            status.source = f"unreachable: {one_line(e)}"
            problems.append((COULD_NOT_TELL, "source not checked (unreachable)"))
        else:
            if checked is not None:
                status.source = checked.describe()
                if checked.published is not None:
                    status.published_at = checked.published.last_modified
                if checked.republished:
                    problems.append((REPUBLISHED, status.source))
    status.detail = "; ".join(what for _, what in problems) or COMPLETE.value
    status.state = most_urgent(kind for kind, _ in problems)
    return status


def _missing_month(status: MonthStatus, month: date) -> Problem:
    """Why the lake lacks a month, as the source tells (a HEAD request)."""
    try:
        identity = published(status.service, month)
    except NotPublished:
        status.source = "not published"
        return NOT_PUBLISHED, "not published"
    except PipelineError as e:
        status.source = f"unreachable: {one_line(e)}"
        return COULD_NOT_TELL, "not downloaded (source unreachable)"
    status.source = "published"
    status.published_at = identity.last_modified
    return NOT_INGESTED, "not downloaded"


def lake_months(services: tuple[str, ...]) -> list[date]:
    """Every month from the first to the last one the lake holds for ``services``: a raw
    file or a manifest (from one listing of each per service)."""
    the_lake = lake()
    found = [month for service in services
             for month in (*the_lake.raw_months(SERVICES[service]),
                           *the_lake.manifest_months(SERVICES[service]))]
    return months_between(min(found), max(found)) if found else []


def as_records(statuses: list[MonthStatus]) -> list[dict[str, object]]:
    """The JSON view: one record per month and service, the state as its word."""
    # ``verified_bytes`` appears only in the records of a ``status --verify``.
    return [{k: v for k, v in asdict(s).items() if k != "verified_bytes"
             or v is not None} | {"state": s.state.value, "complete": s.complete}
            for s in statuses]


def quality_cell(record: dict) -> str:
    """The status table's quality column: ``-`` (not counted), ``ok`` or the warnings."""
    if record["quality"] is None:
        return "-"
    warnings = record["quality_warnings"]
    return "warn: " + ",".join(warnings) if warnings else "ok"


def state_cell(record: dict) -> str:
    """The table's state column: the state, what exactly when it says more, stale or not."""
    state, detail = record["state"], record.get("detail") or ""
    text = state if detail in ("", state) else f"{state}: {detail}"
    return text + (" (STALE: published " + str(record["published_at"]) + ")"
                   if record.get("stale") else "")


def as_table(records: list[dict]) -> str:
    """The status table as text: a header, one line per month and service (months before
    a service began left out); numbers right-aligned, the state last and left-aligned."""
    records = [r for r in records if r["state"] != BEFORE_START]
    sinks = list(records[0]["sinks"]) if records else []
    # Columns the source added that the registry does not know: shown when any month has one.
    noted = any(r.get("new_columns") for r in records)
    header = ["month", "service", "raw MB", "parquet rows",
              *(f"{sink} rows" for sink in sinks), *(["new columns"] if noted else []),
              "quality", "state"]
    rows = [[r["month"], r["service"],
             "-" if r["raw_bytes"] is None else f"{r['raw_bytes'] / 1e6:,.1f}",
             _count(r["parquet_rows"]), *(_count(r["sinks"][sink]) for sink in sinks),
             *([", ".join(c.split(" (")[0] for c in r["new_columns"]) or "-"] if noted else []),
             quality_cell(r), state_cell(r)] for r in records]
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]
    last = len(header) - 1
    text_columns = {0, 1, last - 1, last} | ({last - 2} if noted else set())
    lines = []
    for line in [header, *rows]:
        cells = [str(cell).ljust(width) if i in text_columns
                 else str(cell).rjust(width)
                 for i, (cell, width) in enumerate(zip(line, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _count(rows: object) -> str:
    return "-" if rows is None else f"{rows:,}"
