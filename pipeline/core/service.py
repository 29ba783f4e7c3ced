"""A trip-record service as a type: its Arrow schema read from a column table, its calendar
(the first month it published), the names of its files, and how a source file's columns
map onto the schema (header spellings, aliases, dropped legacy columns, new columns).

The services themselves (yellow, green, fhv, fhvhv) and their column tables are the
registry, ``pipeline.core.datasets``, which builds them with this module's ``Service``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa

from pipeline.core.errors import PipelineError
from pipeline.core.months import previous_month

# The four kinds of column, each with its one Arrow type.
KINDS: dict[str, pa.DataType] = {
    "id": pa.int64(), "money": pa.float64(), "time": pa.timestamp("us"), "text": pa.string(),
}


# What the conversion does with a source column the registry does not know
# (``[source] new_columns``): keep it in the raw file only and publish the month with the
# registry's columns, naming it in the manifest; or refuse the month.
NEW_COLUMNS = ("keep-raw", "refuse")


class HeaderMismatch(PipelineError, ValueError):
    """A CSV header that does not describe the service's columns."""


@dataclass(frozen=True)
class Alias:
    """An older file's name for a canonical column, and how its text values map to codes."""

    column: str
    values: dict[str, int | str] | None = field(default=None, hash=False, compare=False)


# Known artefacts of the writers TLC used: a pandas index written into the file (yellow
# 2010-02 and 2010-03 carry ``__index_level_0__``). Never data: dropped, and named.
ARTEFACT = re.compile(r"__index_level_\d+__")


@dataclass(frozen=True)
class SourcePlan:
    """Canonical column -> the source file's column that feeds it; legacy columns and
    writer artefacts dropped; ``new``: columns the registry does not know (yet)."""

    feeds: dict[str, str] = field(hash=False, compare=False)
    dropped: tuple[str, ...] = ()
    new: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    """One trip-record service (yellow, green, fhv): its schema and source file names."""

    name: str
    schema: pa.Schema
    pickup_column: str
    # The first month the service published (the registry's calendar): months
    # before it are outside the dataset, never asked for.
    first_month: date = date(2009, 1, 1)
    # Columns a real month may lack in its header; they are published as all-null.
    optional: frozenset[str] = field(default_factory=frozenset)
    # Columns only TLC's Parquet files carry: the CSV mirror's months lack them (fhvhv's
    # CSV months have 7 columns), so a CSV header may too; they are null in those months.
    parquet_only: frozenset[str] = field(default_factory=frozenset)
    # Other names of a column in older files (folded case), e.g. 2009 yellow's
    # ``trip_pickup_datetime``, with the map of text values when the old file spelled a
    # code as text (``vendor_name`` CMT -> VendorID 1).
    aliases: dict[str, Alias] = field(default_factory=dict, hash=False, compare=False)
    # Columns of older files with no place in the canonical schema (2009-2010 yellow's
    # coordinates): dropped, and named in the month's manifest. Folded case.
    dropped: frozenset[str] = field(default_factory=frozenset)

    @property
    def columns(self) -> list[str]:
        return self.schema.names

    def began(self, month: date) -> bool:
        """True when ``month`` is in the service's calendar (not before its first month)."""
        return month >= self.first_month

    def clip(self, start: date, end: date) -> tuple[date, date] | None:
        """The part of ``start`` .. ``end`` from the service's first month on; None when
        the whole range is before the service began."""
        first = max(start, self.first_month)
        return (first, end) if first <= end else None

    def clip_note(self, start: date, end: date) -> str | None:
        """One line saying what a range loses to the calendar, or None when nothing."""
        if start >= self.first_month:
            return None
        first = f"{self.first_month:%Y-%m}"
        if end < self.first_month:
            return (f"{self.name}: {start:%Y-%m} .. {end:%Y-%m} is before the service began "
                    f"({first}): nothing to do")
        return (f"{self.name}: begins {first}: {start:%Y-%m} .. "
                f"{previous_month(self.first_month):%Y-%m} skipped (before the service began)")

    def file_stem(self, month_key: str) -> str:
        """``yellow_tripdata_2021-01``: the name every file of this month is derived from."""
        return f"{self.name}_tripdata_{month_key}"

    def source_url(self, base_url: str, month_key: str) -> str:
        """The CSV.gz of one month under the release layout ``{base}/{service}/{file}``."""
        return f"{base_url.rstrip('/')}/{self.name}/{self.file_stem(month_key)}.csv.gz"

    def parquet_url(self, base_url: str, month_key: str) -> str:
        """TLC's own Parquet of one month: ``{base}/{service}_tripdata_{YYYY-MM}.parquet``."""
        return f"{base_url.rstrip('/')}/{self.file_stem(month_key)}.parquet"

    def canonical_header(self, header: list[str]) -> list[str]:
        """Map a CSV file's header to canonical column names, matching case-insensitively;
        optional and Parquet-only columns may be absent.

        Raises HeaderMismatch naming the unknown or missing columns.
        """
        by_folded = {name.casefold(): name for name in self.columns}
        canonical = [by_folded.get(name.strip().casefold()) for name in header]
        unknown = [raw for raw, name in zip(header, canonical, strict=True) if name is None]
        missing = [c for c in self.columns if c not in canonical and c not in self.optional
                   and c not in self.parquet_only]
        duplicated = sorted({c for c in canonical if c is not None and canonical.count(c) > 1})
        problems = [f"{what} columns {_some(names)}" for what, names in
                    (("unknown", unknown), ("missing", missing), ("repeated", duplicated))
                    if names]
        if problems:
            raise HeaderMismatch(f"{self.name} header does not match the registry: "
                                 + "; ".join(problems))
        return [name for name in canonical if name is not None]

    def source_column(self, name: str) -> str | None:
        """The canonical column a source file's column feeds, case-insensitively (aliases
        included); None for a column the registry does not know."""
        folded = name.strip().casefold()
        by_folded = {c.casefold(): c for c in self.columns}
        if folded in by_folded:
            return by_folded[folded]
        alias = self.aliases.get(folded)
        return alias.column if alias else None

    def source_plan(self, names: list[str]) -> SourcePlan:
        """Which column of a Parquet file feeds each canonical column (case-insensitive
        names and aliases), which known legacy columns and writer artefacts are dropped,
        and which columns the registry does not know (``new``: the caller's contract
        decides whether they are refused or kept in the raw file only).

        Raises HeaderMismatch naming missing or repeated columns.
        """
        feeds: dict[str, str] = {}
        dropped, new, repeated = [], [], []
        for name in names:
            canonical = self.source_column(name)
            if canonical is None:
                known = name.strip().casefold() in self.dropped or ARTEFACT.fullmatch(name)
                (dropped if known else new).append(name)
            elif canonical in feeds:
                repeated.append(canonical)
            else:
                feeds[canonical] = name
        missing = [c for c in self.columns if c not in feeds and c not in self.optional]
        problems = [f"{what} columns {_some(found)}" for what, found in
                    (("missing", missing), ("repeated", repeated)) if found]
        if problems:
            raise HeaderMismatch(f"{self.name} Parquet columns do not match the registry: "
                                 + "; ".join(problems))
        return SourcePlan(feeds, tuple(dropped), tuple(new))

    @property
    def fingerprint(self) -> str:
        """A short hash of the schema's names and types, recorded in every manifest."""
        return schema_fingerprint(self.schema)


def _some(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(n[:40] for n in names[:shown]) + more


def schema_fingerprint(schema: pa.Schema) -> str:
    text = ";".join(f"{f.name}:{f.type}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# What a column table may say of a column beside its kind:
# - ``pickup``: the trip's pickup time, which the month's rows are checked against;
# - ``optional``: a real month may lack the column in its header; it is published all-null;
# - ``parquet-only``: only TLC's Parquet files carry it; CSV months lack it (null there).
TAGS = ("pickup", "optional", "parquet-only")


def column_table(table: str) -> tuple[pa.Schema, dict[str, list[str]]]:
    """Read a column table: a line per column, in the files' order, of ``name kind [tag...]``.
    ``kind`` is one of ``KINDS``; the tags are ``TAGS``; ``#`` starts a comment."""
    fields: list[pa.Field] = []
    tagged: dict[str, list[str]] = {tag: [] for tag in TAGS}
    for line in table.splitlines():
        words = line.partition("#")[0].split()
        if words:
            column, kind, *tags = words
            fields.append(pa.field(column, KINDS[kind]))
            for tag in tags:
                tagged[tag].append(column)
    return pa.schema(fields), tagged
