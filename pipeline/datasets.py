"""The dataset registry: which services exist, where their files are, and their schemas.

Every month of a service is published with the one explicit Arrow schema registered here,
whatever the source file's header spelling or which optional columns it carries. Types
follow one rule: ids and codes int64, money and distances float64, timestamps
``timestamp[us]``, flags and base numbers string.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pyarrow as pa

from pipeline.errors import PipelineError

ID = pa.int64()
MONEY = pa.float64()
TIME = pa.timestamp("us")
TEXT = pa.string()


class UnknownService(PipelineError, ValueError):
    """A service name that the registry does not know."""


class HeaderMismatch(PipelineError, ValueError):
    """A CSV header that does not describe the service's columns."""


@dataclass(frozen=True)
class Service:
    """One trip-record service (yellow, green, fhv): its schema and source file names."""

    name: str
    schema: pa.Schema
    pickup_column: str
    # Columns a real month may lack in its header; they are published as all-null.
    optional: frozenset[str] = field(default_factory=frozenset)

    @property
    def columns(self) -> list[str]:
        return self.schema.names

    def file_stem(self, month_key: str) -> str:
        """``yellow_tripdata_2021-01``: the name every file of this month is derived from."""
        return f"{self.name}_tripdata_{month_key}"

    def source_url(self, base_url: str, month_key: str) -> str:
        """The CSV.gz of one month under the release layout ``{base}/{service}/{file}``."""
        return f"{base_url.rstrip('/')}/{self.name}/{self.file_stem(month_key)}.csv.gz"

    def canonical_header(self, header: list[str]) -> list[str]:
        """Map a file's header to canonical column names, matching case-insensitively.

        Raises HeaderMismatch naming the unknown or missing columns.
        """
        by_folded = {name.casefold(): name for name in self.columns}
        canonical = [by_folded.get(name.strip().casefold()) for name in header]
        unknown = [raw for raw, name in zip(header, canonical, strict=True) if name is None]
        missing = [c for c in self.columns if c not in canonical and c not in self.optional]
        duplicated = sorted({c for c in canonical if c is not None and canonical.count(c) > 1})
        problems = [f"{what} columns {_some(names)}" for what, names in
                    (("unknown", unknown), ("missing", missing), ("repeated", duplicated))
                    if names]
        if problems:
            raise HeaderMismatch(f"{self.name} header does not match the registry: "
                                 + "; ".join(problems))
        return [name for name in canonical if name is not None]

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


YELLOW = Service(
    name="yellow",
    pickup_column="tpep_pickup_datetime",
    optional=frozenset({"congestion_surcharge"}),
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
        ("fare_amount", MONEY),
        ("extra", MONEY),
        ("mta_tax", MONEY),
        ("tip_amount", MONEY),
        ("tolls_amount", MONEY),
        ("improvement_surcharge", MONEY),
        ("total_amount", MONEY),
        ("congestion_surcharge", MONEY),
    ),
)

GREEN = Service(
    name="green",
    pickup_column="lpep_pickup_datetime",
    optional=frozenset({"ehail_fee", "congestion_surcharge"}),
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
        ("fare_amount", MONEY),
        ("extra", MONEY),
        ("mta_tax", MONEY),
        ("tip_amount", MONEY),
        ("tolls_amount", MONEY),
        ("ehail_fee", MONEY),
        ("improvement_surcharge", MONEY),
        ("total_amount", MONEY),
        ("payment_type", ID),
        ("trip_type", ID),
        ("congestion_surcharge", MONEY),
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

SERVICES: dict[str, Service] = {s.name: s for s in (YELLOW, GREEN, FHV)}


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
