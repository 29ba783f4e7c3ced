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

import pyarrow as pa

from pipeline.core.errors import PipelineError

ID = pa.int64()
MONEY = pa.float64()
TIME = pa.timestamp("us")
TEXT = pa.string()


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


def _schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in columns])


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
_FARE_PARTS = (
    ("fare_amount", MONEY),
    ("extra", MONEY),
    ("mta_tax", MONEY),
    ("tip_amount", MONEY),
    ("tolls_amount", MONEY),
)

YELLOW = Service(
    name="yellow",
    pickup_column="tpep_pickup_datetime",
    # The CSV months (2019-2021) lack the last two; 2009-2010 files lack the zone ids and
    # the surcharges introduced later.
    optional=frozenset({"congestion_surcharge", "airport_fee", "cbd_congestion_fee",
                        "request_source", "PULocationID", "DOLocationID",
                        "improvement_surcharge"}),
    parquet_only=frozenset({"airport_fee", "cbd_congestion_fee", "request_source"}),
    aliases={
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
    },
    dropped=frozenset({"start_lon", "start_lat", "end_lon", "end_lat", "pickup_longitude",
                       "pickup_latitude", "dropoff_longitude", "dropoff_latitude"}),
    schema=_schema(
        ("VendorID", ID),
        ("tpep_pickup_datetime", TIME),
        ("tpep_dropoff_datetime", TIME),
        ("passenger_count", ID),
        ("trip_distance", MONEY),
        ("RatecodeID", ID),
        ("store_and_fwd_flag", TEXT),
        ("PULocationID", ID),
        ("DOLocationID", ID),
        ("payment_type", ID),
        *_FARE_PARTS,
        ("improvement_surcharge", MONEY),
        ("total_amount", MONEY),
        ("congestion_surcharge", MONEY),
        # Added by the Parquet source (issue 8): always last, so that warehouses can add
        # them to existing tables.
        ("airport_fee", MONEY),
        ("cbd_congestion_fee", MONEY),
        # From 2026-06 (issue 12); TLC has not said what it holds: text, null before.
        ("request_source", TEXT),
    ),
)

GREEN = Service(
    name="green",
    pickup_column="lpep_pickup_datetime",
    optional=frozenset({"ehail_fee", "congestion_surcharge", "cbd_congestion_fee",
                        "request_source"}),
    parquet_only=frozenset({"cbd_congestion_fee", "request_source"}),
    schema=_schema(
        ("VendorID", ID),
        ("lpep_pickup_datetime", TIME),
        ("lpep_dropoff_datetime", TIME),
        ("store_and_fwd_flag", TEXT),
        ("RatecodeID", ID),
        ("PULocationID", ID),
        ("DOLocationID", ID),
        ("passenger_count", ID),
        ("trip_distance", MONEY),
        *_FARE_PARTS,
        ("ehail_fee", MONEY),
        ("improvement_surcharge", MONEY),
        ("total_amount", MONEY),
        ("payment_type", ID),
        ("trip_type", ID),
        ("congestion_surcharge", MONEY),
        ("cbd_congestion_fee", MONEY),
        ("request_source", TEXT),
    ),
)

FHV = Service(
    name="fhv",
    pickup_column="pickup_datetime",
    schema=_schema(
        ("dispatching_base_num", TEXT),
        ("pickup_datetime", TIME),
        ("dropoff_datetime", TIME),
        ("PULocationID", ID),
        ("DOLocationID", ID),
        ("SR_Flag", TEXT),
        ("Affiliated_base_number", TEXT),
    ),
)

# High-volume for-hire trips (Uber, Lyft...) come in two forms. TLC's Parquet files carry
# every column below but SR_Flag (24 of them; ``cbd_congestion_fee`` only from 2025); the
# CSV mirror's months (2019-02 .. 2021-07) carry the old 7-column form, FHVHV_CSV_COLUMNS.
# The schema is their union: SR_Flag (shared ride: empty or 1, as fhv's) is null in
# Parquet months, the other 19 columns are null in CSV months.
FHVHV_CSV_COLUMNS = ("hvfhs_license_num", "dispatching_base_num", "pickup_datetime",
                     "dropoff_datetime", "PULocationID", "DOLocationID", "SR_Flag")
_HV_SCHEMA = _schema(
    ("hvfhs_license_num", TEXT),
    ("dispatching_base_num", TEXT),
    ("originating_base_num", TEXT),
    ("request_datetime", TIME),
    ("on_scene_datetime", TIME),
    ("pickup_datetime", TIME),
    ("dropoff_datetime", TIME),
    ("PULocationID", ID),
    ("DOLocationID", ID),
    ("trip_miles", MONEY),
    ("trip_time", ID),  # seconds
    ("base_passenger_fare", MONEY),
    ("tolls", MONEY),
    ("bcf", MONEY),
    ("sales_tax", MONEY),
    ("congestion_surcharge", MONEY),
    ("airport_fee", MONEY),
    ("tips", MONEY),
    ("driver_pay", MONEY),
    ("shared_request_flag", TEXT),
    ("shared_match_flag", TEXT),
    ("access_a_ride_flag", TEXT),
    ("wav_request_flag", TEXT),
    ("wav_match_flag", TEXT),
    ("cbd_congestion_fee", MONEY),
    # The CSV months' column: last, so that warehouses add it to existing tables.
    ("SR_Flag", TEXT),
)

FHVHV = Service(
    name="fhvhv",
    pickup_column="pickup_datetime",
    optional=frozenset({"originating_base_num", "on_scene_datetime", "airport_fee",
                        "cbd_congestion_fee", "congestion_surcharge", "SR_Flag"}),
    parquet_only=frozenset(_HV_SCHEMA.names) - set(FHVHV_CSV_COLUMNS),
    schema=_HV_SCHEMA,
)

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
    schema=_schema(
        ("LocationID", ID),
        ("Borough", TEXT),
        ("Zone", TEXT),
        ("service_zone", TEXT),
    ),
)
