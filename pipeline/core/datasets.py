"""The dataset registry: which services exist, where their files are, and their schemas.

Every month of a service is published with the one explicit Arrow schema registered here,
whatever the source file's header spelling or which optional columns it carries. Types
follow one rule: ids and codes int64, money and distances float64, timestamps
``timestamp[us]``, flags and base numbers string.

This module holds the services' column tables and the calendar of their first months; the
``Service`` type and how it reads a source file's columns are ``pipeline.core.service``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from pipeline.core.errors import PipelineError
from pipeline.core.months import month_of
from pipeline.core.service import Alias, Service, column_table


class UnknownService(PipelineError, ValueError):
    """A service name that the registry does not know."""


def _service(name: str, first_month: str, table: str,
             aliases: dict[str, Alias] | None = None,
             dropped: frozenset[str] = frozenset()) -> Service:
    """A service first published in ``first_month`` (YYYY-MM) from its column table (one
    ``pickup`` column), with the older files' ``aliases`` and ``dropped`` columns."""
    schema, tagged = column_table(table)
    (pickup,) = tagged["pickup"]
    return Service(name=name, schema=schema, pickup_column=pickup,
                   first_month=month_of(first_month),
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
    schema=column_table("""
        LocationID    id
        Borough       text
        Zone          text
        service_zone  text
    """)[0],
)
