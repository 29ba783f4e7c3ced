"""The dataset registry: which services exist, where their files are, and their schemas.

Every month of a service is published with the one explicit Arrow schema registered here,
whatever the source file's header spelling or which optional columns it carries. Types
follow one rule: ids and codes int64, money and distances float64, timestamps
``timestamp[us]``, flags and base numbers string.
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


class UnknownService(PipelineError, ValueError):
    """A service name that the registry does not know."""


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
    # The first month the service published (the calendar, see CALENDAR below): months
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


def _table(table: str) -> tuple[pa.Schema, dict[str, list[str]]]:
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


def _service(name: str, first_month: str, table: str,
             aliases: dict[str, Alias] | None = None,
             dropped: frozenset[str] = frozenset()) -> Service:
    """A service first published in ``first_month`` (YYYY-MM) from its column table (one
    ``pickup`` column), with the older files' ``aliases`` and ``dropped`` columns."""
    schema, tagged = _table(table)
    (pickup,) = tagged["pickup"]
    year, month = (int(part) for part in first_month.split("-"))
    return Service(name=name, schema=schema, pickup_column=pickup,
                   first_month=date(year, month, 1),
                   optional=frozenset(tagged["optional"]),
                   parquet_only=frozenset(tagged["parquet-only"]),
                   aliases=aliases or {}, dropped=dropped)


# 2009-2010 yellow files: payment types written as text, in several spellings.
_PAYMENT_TEXT: dict[str, int | str] = {
    "credit": 1, "cre": 1, "crd": 1, "cash": 2, "cas": 2, "csh": 2, "no charge": 3,
    "noc": 3, "no": 3, "dispute": 4, "dis": 4, "unknown": 5, "unk": 5, "na": 5,
    "voided": 6, "voi": 6,
}
# 2009-2010 yellow vendors by name. DDS (Digital Dispatch Systems) left the market before
# TLC numbered vendors; it gets 3, a code TLC's dictionary does not use.
_VENDOR_TEXT: dict[str, int | str] = {"cmt": 1, "vts": 2, "dds": 3}
_FLAG_TEXT: dict[str, int | str] = {"0": "N", "1": "Y", "n": "N", "y": "Y"}

# The parts of a taxi fare, in the order yellow and green files both carry them.
_FARE_PARTS = """
    fare_amount   money
    extra         money
    mta_tax       money
    tip_amount    money
    tolls_amount  money
"""

# Older yellow files' names (2009 ``vendor_name``, 2010 ``vendor_id``...) for canonical
# columns, with the text values they spelled codes with.
_YELLOW_ALIASES = {
    "vendor_name": Alias("VendorID", _VENDOR_TEXT),
    "vendor_id": Alias("VendorID", _VENDOR_TEXT),
    "trip_pickup_datetime": Alias("tpep_pickup_datetime"),
    "pickup_datetime": Alias("tpep_pickup_datetime"),
    "trip_dropoff_datetime": Alias("tpep_dropoff_datetime"),
    "dropoff_datetime": Alias("tpep_dropoff_datetime"),
    "rate_code": Alias("RatecodeID"),
    "payment_type": Alias("payment_type", _PAYMENT_TEXT),
    "store_and_forward": Alias("store_and_fwd_flag", _FLAG_TEXT),
    # 2010 writes the flag as 0/1 under its canonical name.
    "store_and_fwd_flag": Alias("store_and_fwd_flag", _FLAG_TEXT),
    "fare_amt": Alias("fare_amount"),
    "surcharge": Alias("extra"),
    "tip_amt": Alias("tip_amount"),
    "tolls_amt": Alias("tolls_amount"),
    "total_amt": Alias("total_amount"),
}
# 2009-2010 yellow's coordinates: no place in the canonical schema.
_YELLOW_DROPPED = frozenset({"start_lon", "start_lat", "end_lon", "end_lat", "pickup_longitude",
                             "pickup_latitude", "dropoff_longitude", "dropoff_latitude"})

# The calendar: the first month each service published (TLC's trip record page and
# ../shared/real: yellow from 2009-01, green (boro taxis) from 2013-08, fhv from 2015-01,
# fhvhv from 2019-02, when the high-volume licences began).
YELLOW = _service("yellow", "2009-01", f"""
    VendorID               id
    tpep_pickup_datetime   time   pickup
    tpep_dropoff_datetime  time
    passenger_count        id
    trip_distance          money
    RatecodeID             id
    store_and_fwd_flag     text
    # 2009-2010 files lack the zone ids and the surcharges introduced later.
    PULocationID           id     optional
    DOLocationID           id     optional
    payment_type           id
    {_FARE_PARTS}
    improvement_surcharge  money  optional
    total_amount           money
    congestion_surcharge   money  optional
    # Added by the Parquet source (issue 8): always last, so that warehouses can add
    # them to existing tables.
    airport_fee            money  optional parquet-only
    cbd_congestion_fee     money  optional parquet-only
    # From 2026-06 (issue 12); TLC has not said what it holds: text, null before.
    request_source         text   optional parquet-only
""", aliases=_YELLOW_ALIASES, dropped=_YELLOW_DROPPED)

GREEN = _service("green", "2013-08", f"""
    VendorID               id
    lpep_pickup_datetime   time   pickup
    lpep_dropoff_datetime  time
    store_and_fwd_flag     text
    RatecodeID             id
    PULocationID           id
    DOLocationID           id
    passenger_count        id
    trip_distance          money
    {_FARE_PARTS}
    ehail_fee              money  optional
    improvement_surcharge  money
    total_amount           money
    payment_type           id
    trip_type              id
    congestion_surcharge   money  optional
    cbd_congestion_fee     money  optional parquet-only
    request_source         text   optional parquet-only
""")

FHV = _service("fhv", "2015-01", """
    dispatching_base_num    text
    pickup_datetime         time  pickup
    dropoff_datetime        time
    PULocationID            id
    DOLocationID            id
    SR_Flag                 text
    Affiliated_base_number  text
""")

# High-volume for-hire trips (Uber, Lyft...) come in two forms. TLC's Parquet files carry
# every column below but SR_Flag (24 of them; ``cbd_congestion_fee`` only from 2025); the
# CSV mirror's months (2019-02 .. 2021-07) carry the old 7-column form, FHVHV_CSV_COLUMNS.
# The schema is their union: SR_Flag (shared ride: empty or 1, as fhv's) is null in
# Parquet months, the other 19 columns are null in CSV months.
FHVHV = _service("fhvhv", "2019-02", """
    hvfhs_license_num     text
    dispatching_base_num  text
    originating_base_num  text   optional parquet-only
    request_datetime      time   parquet-only
    on_scene_datetime     time   optional parquet-only
    pickup_datetime       time   pickup
    dropoff_datetime      time
    PULocationID          id
    DOLocationID          id
    trip_miles            money  parquet-only
    trip_time             id     parquet-only  # seconds
    base_passenger_fare   money  parquet-only
    tolls                 money  parquet-only
    bcf                   money  parquet-only
    sales_tax             money  parquet-only
    congestion_surcharge  money  optional parquet-only
    airport_fee           money  optional parquet-only
    tips                  money  parquet-only
    driver_pay            money  parquet-only
    shared_request_flag   text   parquet-only
    shared_match_flag     text   parquet-only
    access_a_ride_flag    text   parquet-only
    wav_request_flag      text   parquet-only
    wav_match_flag        text   parquet-only
    cbd_congestion_fee    money  optional parquet-only
    # The CSV months' column: last, so that warehouses add it to existing tables.
    SR_Flag               text   optional
""")
FHVHV_CSV_COLUMNS = tuple(c for c in FHVHV.columns if c not in FHVHV.parquet_only)

SERVICES: dict[str, Service] = {s.name: s for s in (YELLOW, GREEN, FHV, FHVHV)}


def service(name: str) -> Service:
    try:
        return SERVICES[name]
    except KeyError:
        raise UnknownService(
            f"unknown service {name!r}: expected one of {', '.join(SERVICES)}"
        ) from None


@dataclass(frozen=True)
class Lookup:
    """A small reference table published once, not per month (the taxi zones)."""

    name: str
    file_name: str
    schema: pa.Schema


ZONES = Lookup(
    name="zones",
    file_name="taxi_zone_lookup.csv",
    schema=_table("""
        LocationID    id
        Borough       text
        Zone          text
        service_zone  text
    """)[0],
)
