"""Sample months in TLC's own Parquet form, with the drifts of the real files (DATA.md).

The values are those of ``pipeline.demo.samples`` for the same (service, month, rows, seed), so
a month written both as the mirror's CSV.gz and as TLC Parquet must normalise to the same
canonical table. What drifts is the form, by year, as in TLC's files:

- yellow/green 2011-2022: ``passenger_count``, ``RatecodeID`` (green ``trip_type``) as
  doubles, nanosecond timestamps; from 2023 ids as int32 and microsecond timestamps;
- yellow ``airport_fee``: absent before 2021, ``airport_fee`` 2021-2022 (all null up to
  2021-07, the months the CSV mirror also has), ``Airport_fee`` from 2023;
  ``cbd_congestion_fee`` from 2025 (yellow, green, fhvhv);
- yellow 2009: the old column set (``vendor_name`` as text, ``Trip_Pickup_DateTime``
  as text, coordinates instead of zone ids, ``Payment_Type`` as text, ``Fare_Amt``...);
- yellow 2010: another old column set (``vendor_id`` as text, ``pickup_datetime`` as
  text, coordinates, ``rate_code``, ``store_and_fwd_flag`` as 0/1, ``payment_type`` as
  text in two spellings: ``CRD``/``Cre``, ``CAS``/``Cas``, ``surcharge``...);
- fhv: ``dropOff_datetime``, ``PUlocationID`` and ``DOlocationID`` as doubles, ``SR_Flag``
  as a double;
- fhvhv: its own columns (no ``SR_Flag``, which only the CSV months carry), nanosecond
  timestamps.

``fractional`` puts one passenger_count of 1.5 into the file (a drift that must be refused).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.core.datasets import SERVICES
from pipeline.core.months import month_key
from pipeline.demo.samples import CHUNK_ROWS, trip_chunks

ROW_GROUP_ROWS = 1 << 20


@dataclass(frozen=True)
class TlcFacts:
    """What a generated TLC Parquet file holds, for exact assertions."""

    service: str
    month: str
    rows: int
    columns: tuple[str, ...]
    types: dict[str, str]


def write_tlc_month(path: Path, service: str, month: date, rows: int, seed: int = 0,
                    *, fractional: bool = False) -> TlcFacts:
    """Write ``rows`` trips of ``service`` for ``month`` as TLC would publish them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    extras = np.random.default_rng([seed, month.year, month.month, 99])
    chunks = (_hv_chunks(month, rows, extras) if service == "fhvhv"
              else (c for c, _, _ in trip_chunks(service, month, rows, seed)))
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    try:
        for i, columns in enumerate(chunks):
            table = _drifted(service, month, columns, extras)
            if fractional and i == 0:
                table = _with_fraction(table)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(tmp, schema, compression="snappy")
            writer.write_table(table.cast(schema), row_group_size=ROW_GROUP_ROWS)
        if writer is None:
            raise ValueError("a TLC sample month needs at least one row")
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)
    assert schema is not None
    return TlcFacts(service, month_key(month), rows, tuple(schema.names),
                    {f.name: str(f.type) for f in schema})


def _drifted(service: str, month: date, c: dict[str, pa.Array],
             rng: np.random.Generator) -> pa.Table:
    n = len(next(iter(c.values())))
    if service == "fhv":
        return pa.table({
            "dispatching_base_num": c["dispatching_base_num"],
            "pickup_datetime": _ns(c["pickup_datetime"]),
            "dropOff_datetime": _ns(c["dropoff_datetime"]),
            "PUlocationID": c["PULocationID"].cast(pa.float64()),
            "DOlocationID": c["DOLocationID"].cast(pa.float64()),
            "SR_Flag": c["SR_Flag"].cast(pa.int64()).cast(pa.float64()),
            "Affiliated_base_number": c["Affiliated_base_number"],
        })
    if service == "fhvhv":
        return pa.table(c)
    if service == "yellow" and month.year <= 2009:
        return _yellow_2009(c, rng)
    if service == "yellow" and month.year == 2010:
        return _yellow_2010(c, rng)
    modern = month.year >= 2023
    ids = pa.int32() if modern else pa.int64()
    time = (lambda a: a) if modern else _ns
    out: dict[str, pa.Array] = {}
    for f in SERVICES[service].schema:
        if f.name not in c:
            continue
        value = c[f.name]
        if f.name in ("passenger_count", "RatecodeID", "trip_type"):
            value = value.cast(pa.float64())
        elif f.type == pa.int64():
            value = value.cast(ids)
        elif f.type == pa.timestamp("us"):
            value = time(value.cast(pa.timestamp("us")))
        out[f.name] = value
    if service == "yellow" and month.year >= 2021:
        name = "Airport_fee" if month.year >= 2023 else "airport_fee"
        late = month > date(2021, 7, 1)
        fee = np.where(rng.random(n) < 0.1, 1.25, 0.0)
        out[name] = pa.array(fee, pa.float64(), mask=np.full(n, not late))
    if service in ("yellow", "green") and month.year >= 2025:
        out["cbd_congestion_fee"] = pa.array(np.where(rng.random(n) < 0.6, 0.75, 0.0))
    return pa.table(out)


def _ns(a: pa.Array) -> pa.Array:
    return a.cast(pa.timestamp("us")).cast(pa.timestamp("ns"))


VENDOR_NAMES = {1: "CMT", 2: "VTS"}
PAYMENT_TEXT = {1: "Credit", 2: "CASH", 3: "No Charge", 4: "Dispute"}
# 2010 spells card and cash payments two ways within one file.
PAYMENT_TEXT_2010 = {1: ("CRD", "Cre"), 2: ("CAS", "Cas"), 3: ("No Charge",),
                     4: ("Dispute",)}


def _yellow_2009(c: dict[str, pa.Array], rng: np.random.Generator) -> pa.Table:
    """The 2009 column set: text vendor and payment, text timestamps, coordinates."""
    n = len(c["VendorID"])
    return pa.table({
        "vendor_name": _text(c["VendorID"], VENDOR_NAMES),
        "Trip_Pickup_DateTime": _seconds_text(c["tpep_pickup_datetime"]),
        "Trip_Dropoff_DateTime": _seconds_text(c["tpep_dropoff_datetime"]),
        "Passenger_Count": c["passenger_count"],
        "Trip_Distance": c["trip_distance"],
        "Start_Lon": _coordinate(-73.98, n, rng),
        "Start_Lat": _coordinate(40.75, n, rng),
        "Rate_Code": c["RatecodeID"].cast(pa.float64()),
        "store_and_forward": _flag_number(c["store_and_fwd_flag"]),
        "End_Lon": _coordinate(-73.97, n, rng),
        "End_Lat": _coordinate(40.76, n, rng),
        "Payment_Type": _text(c["payment_type"], PAYMENT_TEXT),
        "Fare_Amt": c["fare_amount"],
        "surcharge": c["extra"],
        "mta_tax": c["mta_tax"],
        "Tip_Amt": c["tip_amount"],
        "Tolls_Amt": c["tolls_amount"],
        "Total_Amt": c["total_amount"],
    })


def _yellow_2010(c: dict[str, pa.Array], rng: np.random.Generator) -> pa.Table:
    """The 2010 column set: lower-case names, ``vendor_id`` and ``payment_type`` as text
    (card and cash in two spellings), text timestamps, ``rate_code`` as an integer, the
    store-and-forward flag as 0/1 under its canonical name, coordinates."""
    n = len(c["VendorID"])
    return pa.table({
        "vendor_id": _text(c["VendorID"], VENDOR_NAMES),
        "pickup_datetime": _seconds_text(c["tpep_pickup_datetime"]),
        "dropoff_datetime": _seconds_text(c["tpep_dropoff_datetime"]),
        "passenger_count": c["passenger_count"],
        "trip_distance": c["trip_distance"],
        "pickup_longitude": _coordinate(-73.98, n, rng),
        "pickup_latitude": _coordinate(40.75, n, rng),
        "rate_code": c["RatecodeID"],
        "store_and_fwd_flag": _flag_number(c["store_and_fwd_flag"]),
        "dropoff_longitude": _coordinate(-73.97, n, rng),
        "dropoff_latitude": _coordinate(40.76, n, rng),
        "payment_type": _spelled(c["payment_type"], PAYMENT_TEXT_2010, rng),
        "fare_amount": c["fare_amount"],
        "surcharge": c["extra"],
        "mta_tax": c["mta_tax"],
        "tip_amount": c["tip_amount"],
        "tolls_amount": c["tolls_amount"],
        "total_amount": c["total_amount"],
    })


def _text(codes: pa.Array, names: dict[int, str]) -> pa.Array:
    """Integer codes as the old files' text names (an unnamed code as its digits)."""
    return pa.array([None if v is None else names.get(v, str(v)) for v in codes.to_pylist()],
                    pa.string())


def _spelled(codes: pa.Array, spellings: dict[int, tuple[str, ...]],
             rng: np.random.Generator) -> pa.Array:
    """Integer codes as text, each row taking one of its code's spellings at random."""
    picks = rng.integers(0, 2, len(codes))
    return pa.array([None if v is None else spellings[v][pick % len(spellings[v])]
                     for v, pick in zip(codes.to_pylist(), picks, strict=True)], pa.string())


def _seconds_text(times: pa.Array) -> pa.Array:
    return pc.strftime(times, "%Y-%m-%d %H:%M:%S")


def _flag_number(flag: pa.Array) -> pa.Array:
    """The store-and-forward flag Y/N as 1.0/0.0 (null stays null)."""
    return pc.if_else(pc.equal(flag, "Y"), 1.0, 0.0)


def _coordinate(centre: float, n: int, rng: np.random.Generator) -> pa.Array:
    return pa.array(centre + rng.normal(0, 0.05, n))


def _with_fraction(table: pa.Table) -> pa.Table:
    name = next(n for n in table.column_names if n.casefold() == "passenger_count")
    values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
    values[0] = 1.5
    index = table.column_names.index(name)
    return table.set_column(index, name, pa.array(values, mask=np.isnan(values)))


def _hv_chunks(month: date, rows: int, rng: np.random.Generator
               ) -> Iterator[dict[str, pa.Array]]:
    """fhvhv trips by chunk, in TLC's form (nanosecond timestamps)."""
    start = np.datetime64(f"{month:%Y-%m}-01T00:00:00", "s")
    for first in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - first)
        request = np.sort(start + rng.integers(0, 28 * 86400, n).astype("timedelta64[s]"))
        wait = rng.integers(60, 900, n).astype("timedelta64[s]")
        seconds = rng.integers(120, 3600, n)
        pickup = request + wait
        fare = np.round(5 + seconds / 60 * 0.9, 2)

        def flag(p: float, n: int = n) -> pa.Array:
            return pa.array(np.where(rng.random(n) < p, "Y", "N"))

        lyft = rng.random(n) < 0.25
        yield {
            "hvfhs_license_num": pa.array(np.where(lyft, "HV0005", "HV0003")),
            "dispatching_base_num": pa.array(np.where(lyft, "B03406", "B03404")),
            "originating_base_num": pa.array(np.where(lyft, None, "B03404")),
            "request_datetime": _ns(pa.array(request)),
            "on_scene_datetime": _ns(pa.array(request + wait // 2, mask=lyft)),
            "pickup_datetime": _ns(pa.array(pickup)),
            "dropoff_datetime": _ns(pa.array(pickup + seconds.astype("timedelta64[s]"))),
            "PULocationID": pa.array(rng.integers(1, 266, n)),
            "DOLocationID": pa.array(rng.integers(1, 266, n)),
            "trip_miles": pa.array(np.round(seconds / 300, 2)),
            "trip_time": pa.array(seconds),
            "base_passenger_fare": pa.array(fare),
            "tolls": pa.array(np.where(rng.random(n) < 0.05, 6.55, 0.0)),
            "bcf": pa.array(np.round(fare * 0.025, 2)),
            "sales_tax": pa.array(np.round(fare * 0.08875, 2)),
            "congestion_surcharge": pa.array(np.where(rng.random(n) < 0.6, 2.75, 0.0)),
            "airport_fee": pa.array(np.where(rng.random(n) < 0.05, 2.5, 0.0)),
            "tips": pa.array(np.where(rng.random(n) < 0.2, 3.0, 0.0)),
            "driver_pay": pa.array(np.round(fare * 0.7, 2)),
            "shared_request_flag": flag(0.02),
            "shared_match_flag": flag(0.01),
            "access_a_ride_flag": pa.array(np.full(n, " ")),
            "wav_request_flag": flag(0.01),
            "wav_match_flag": flag(0.05),
            **({"cbd_congestion_fee": pa.array(np.where(rng.random(n) < 0.5, 1.5, 0.0))}
               if month.year >= 2025 else {}),
        }
