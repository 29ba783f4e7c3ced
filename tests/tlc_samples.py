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

Audited against ``../shared/real/SCHEMAS.md`` (issue 12): ``write_tlc_month`` keeps the
values of the CSV samples, so it simplifies the forms: its nanosecond timestamps are a
stress case (no TLC file with them is known; every one read is ``timestamp[us]``), its
2010 ``rate_code`` is always an integer and its 2010 flag a double (both text in most 2010
files). The exact forms, era by era, are ``ERAS`` below (``era_month``,
``write_era_month``): names, order and types of every era graded B or better, null-typed
columns included, with the value quirks of QUIRKS.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.core.datasets import SERVICES
from pipeline.demo.samples import CHUNK_ROWS, trip_chunks

ROW_GROUP_ROWS = 1 << 20


def write_tlc_month(path: Path, service: str, month: date, rows: int, seed: int = 0,
                    *, fractional: bool = False) -> pa.Schema:
    """Write ``rows`` trips of ``service`` for ``month`` as TLC would publish them; return
    the file's schema (TLC's names and types of that era)."""
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
    return schema


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
    if service == "yellow" and month.year <= 2010:
        return _yellow_legacy(c, rng, month.year)
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


# The 2009 and 2010 files' names for the same 18 columns, in the files' order.
_LEGACY_YELLOW_NAMES = {
    2009: "vendor_name Trip_Pickup_DateTime Trip_Dropoff_DateTime Passenger_Count "
          "Trip_Distance Start_Lon Start_Lat Rate_Code store_and_forward End_Lon End_Lat "
          "Payment_Type Fare_Amt surcharge mta_tax Tip_Amt Tolls_Amt Total_Amt",
    2010: "vendor_id pickup_datetime dropoff_datetime passenger_count trip_distance "
          "pickup_longitude pickup_latitude rate_code store_and_fwd_flag dropoff_longitude "
          "dropoff_latitude payment_type fare_amount surcharge mta_tax tip_amount "
          "tolls_amount total_amount",
}


def _yellow_legacy(c: dict[str, pa.Array], rng: np.random.Generator, year: int) -> pa.Table:
    """The 2009 or 2010 column set: text vendor and payment, text timestamps, coordinates,
    the store-and-forward flag as 0/1. 2009 capitalises most names and writes the rate
    code as a float; 2010 uses lower-case names (``vendor_id``, the flag under its
    canonical name), an integer rate code and two spellings of card and cash payments."""
    n = len(c["VendorID"])
    pickup = [_coordinate(-73.98, n, rng), _coordinate(40.75, n, rng)]
    dropoff = [_coordinate(-73.97, n, rng), _coordinate(40.76, n, rng)]
    if year <= 2009:
        rate_code = c["RatecodeID"].cast(pa.float64())
        payment = _text(c["payment_type"], PAYMENT_TEXT)
    else:
        rate_code = c["RatecodeID"]
        payment = _spelled(c["payment_type"], PAYMENT_TEXT_2010, rng)
    values = [
        _text(c["VendorID"], VENDOR_NAMES),
        _seconds_text(c["tpep_pickup_datetime"]), _seconds_text(c["tpep_dropoff_datetime"]),
        c["passenger_count"], c["trip_distance"], *pickup,
        rate_code, _flag_number(c["store_and_fwd_flag"]), *dropoff, payment,
        *(c[name] for name in ("fare_amount", "extra", "mta_tax", "tip_amount",
                               "tolls_amount", "total_amount")),
    ]
    names = _LEGACY_YELLOW_NAMES[min(year, 2010)].split()
    return pa.table(dict(zip(names, values, strict=True)))


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


# --------------------------------------------------------------------------- real eras
#
# Each era below is a form TLC's files really took: the exact Arrow schema (names, order,
# types; ``null`` is a null-typed column) that ``../shared/real/SCHEMAS.md`` lists for it,
# with its grade there (A: read from a real file's footer; B/B+: printed by real programs;
# eras graded C or D are left out). ``era_month`` fills one with the sample generator's
# values and the value quirks of QUIRKS.md (negative money, huge distances, NULL blocks,
# out-of-month pickups, yellow's VendorID 6 / payment_type 0 tail, passenger counts 0 and
# 7-9, RatecodeID 99), and gives the canonical table the registry must publish from it.
# Timestamps are ``timestamp[us]`` throughout, as in every TLC file read (no TLC file with
# nanoseconds is known; ``write_tlc_month`` above writes some to exercise that rule).
# Not known, hence assumed: the type of ``request_source`` (large_string, as the writer of
# 2023 on writes text) and its values; the 2010 text forms (timestamps as text, flags as
# ``0``/``1``).

NUL = pa.null()
I32, I64, F64, STR, LSTR = pa.int32(), pa.int64(), pa.float64(), pa.string(), pa.large_string()
TS = pa.timestamp("us")


@dataclass(frozen=True)
class Era:
    """One real schema era of one service, written as ``month``."""

    service: str
    month: date
    grade: str
    what: str
    schema: pa.Schema

    @property
    def key(self) -> str:
        return f"{self.service}-{self.month:%Y-%m}"


def _era(service: str, key: str, grade: str, what: str,
         *columns: tuple[str, pa.DataType]) -> Era:
    year, month = (int(part) for part in key.split("-"))
    return Era(service, date(year, month, 1), grade, what, pa.schema(list(columns)))


def _yellow(counts: pa.DataType, congestion: pa.DataType, airport: pa.DataType,
            improvement: pa.DataType = F64, ids: pa.DataType = I64, text: pa.DataType = STR,
            airport_name: str = "airport_fee") -> list[tuple[str, pa.DataType]]:
    """The 19 columns every yellow file from 2011 on has, typed as in its era."""
    return [("VendorID", ids), ("tpep_pickup_datetime", TS), ("tpep_dropoff_datetime", TS),
            ("passenger_count", counts), ("trip_distance", F64), ("RatecodeID", counts),
            ("store_and_fwd_flag", text), ("PULocationID", ids), ("DOLocationID", ids),
            ("payment_type", I64), ("fare_amount", F64), ("extra", F64), ("mta_tax", F64),
            ("tip_amount", F64), ("tolls_amount", F64), ("improvement_surcharge", improvement),
            ("total_amount", F64), ("congestion_surcharge", congestion),
            (airport_name, airport)]


def _green(ids: pa.DataType, codes: pa.DataType, ehail: pa.DataType,
           text: pa.DataType = STR) -> list[tuple[str, pa.DataType]]:
    """Green's 20 columns, in the order of every green file, typed as in its era."""
    return [("VendorID", ids), ("lpep_pickup_datetime", TS), ("lpep_dropoff_datetime", TS),
            ("store_and_fwd_flag", text), ("RatecodeID", codes), ("PULocationID", ids),
            ("DOLocationID", ids), ("passenger_count", codes), ("trip_distance", F64),
            ("fare_amount", F64), ("extra", F64), ("mta_tax", F64), ("tip_amount", F64),
            ("tolls_amount", F64), ("ehail_fee", ehail), ("improvement_surcharge", F64),
            ("total_amount", F64), ("payment_type", codes), ("trip_type", codes),
            ("congestion_surcharge", F64)]


def _fhv(pu: pa.DataType, do: pa.DataType, flag: pa.DataType,
         text: pa.DataType = STR) -> list[tuple[str, pa.DataType]]:
    return [("dispatching_base_num", text), ("pickup_datetime", TS), ("dropOff_datetime", TS),
            ("PUlocationID", pu), ("DOlocationID", do), ("SR_Flag", flag),
            ("Affiliated_base_number", text)]


def _fhvhv(airport: pa.DataType, wav_match: pa.DataType, text: pa.DataType = STR,
           ids: pa.DataType = I64) -> list[tuple[str, pa.DataType]]:
    return [("hvfhs_license_num", text), ("dispatching_base_num", text),
            ("originating_base_num", text), ("request_datetime", TS), ("on_scene_datetime", TS),
            ("pickup_datetime", TS), ("dropoff_datetime", TS), ("PULocationID", ids),
            ("DOLocationID", ids), ("trip_miles", F64), ("trip_time", I64),
            ("base_passenger_fare", F64), ("tolls", F64), ("bcf", F64), ("sales_tax", F64),
            ("congestion_surcharge", F64), ("airport_fee", airport), ("tips", F64),
            ("driver_pay", F64), ("shared_request_flag", text), ("shared_match_flag", text),
            ("access_a_ride_flag", text), ("wav_request_flag", text),
            ("wav_match_flag", wav_match)]


_YELLOW_2009_COLUMNS = [("vendor_name", STR), ("Trip_Pickup_DateTime", STR),
                ("Trip_Dropoff_DateTime", STR), ("Passenger_Count", I64),
                ("Trip_Distance", F64), ("Start_Lon", F64), ("Start_Lat", F64),
                ("Rate_Code", F64), ("store_and_forward", F64), ("End_Lon", F64),
                ("End_Lat", F64), ("Payment_Type", STR), ("Fare_Amt", F64), ("surcharge", F64),
                ("mta_tax", F64), ("Tip_Amt", F64), ("Tolls_Amt", F64), ("Total_Amt", F64)]


def _yellow_2010_columns(rate_code: pa.DataType) -> list[tuple[str, pa.DataType]]:
    return [("vendor_id", STR), ("pickup_datetime", STR), ("dropoff_datetime", STR),
            ("passenger_count", I64), ("trip_distance", F64), ("pickup_longitude", F64),
            ("pickup_latitude", F64), ("rate_code", rate_code), ("store_and_fwd_flag", STR),
            ("dropoff_longitude", F64), ("dropoff_latitude", F64), ("payment_type", STR),
            ("fare_amount", F64), ("surcharge", F64), ("mta_tax", F64), ("tip_amount", F64),
            ("tolls_amount", F64), ("total_amount", F64)]


ERAS: tuple[Era, ...] = (
    _era("yellow", "2009-01", "B+", "2009 names, text vendor/payment/timestamps, coordinates",
         *_YELLOW_2009_COLUMNS),
    _era("yellow", "2010-01", "B", "2010 names, rate_code as text", *_yellow_2010_columns(STR)),
    _era("yellow", "2010-02", "B+", "rate_code int64 and a pandas __index_level_0__",
         *_yellow_2010_columns(I64), ("__index_level_0__", I64)),
    _era("yellow", "2012-06", "B", "int64 counts, null-typed congestion and airport fees",
         *_yellow(I64, NUL, NUL)),
    _era("yellow", "2014-08", "B", "null-typed improvement_surcharge too",
         *_yellow(I64, NUL, NUL, improvement=NUL)),
    _era("yellow", "2018-01", "B", "int64 counts, both fees typed double",
         *_yellow(I64, F64, F64)),
    _era("yellow", "2018-07", "B", "double counts, null-typed fees", *_yellow(F64, NUL, NUL)),
    _era("yellow", "2020-10", "B+", "double counts, airport_fee null-typed",
         *_yellow(F64, F64, NUL)),
    _era("yellow", "2022-01", "B+", "the pyarrow print of 2022-01", *_yellow(F64, F64, F64)),
    _era("yellow", "2023-05", "B+", "new writer: int32 ids, large_string, Airport_fee",
         *_yellow(I64, F64, F64, ids=I32, text=LSTR, airport_name="Airport_fee")),
    _era("yellow", "2025-01", "B+", "+ cbd_congestion_fee",
         *_yellow(I64, F64, F64, ids=I32, text=LSTR, airport_name="Airport_fee"),
         ("cbd_congestion_fee", F64)),
    _era("yellow", "2026-06", "B", "+ request_source (type assumed large_string)",
         *_yellow(I64, F64, F64, ids=I32, text=LSTR, airport_name="Airport_fee"),
         ("cbd_congestion_fee", F64), ("request_source", LSTR)),
    _era("green", "2019-03", "B", "old writer, ehail_fee double with values",
         *_green(I64, F64, F64)),
    _era("green", "2022-06", "A", "old writer (as green 2023-01's footer), ehail_fee null",
         *_green(I64, F64, NUL)),
    _era("green", "2023-12", "A", "new writer (as green 2023-12's footer)",
         *_green(I32, I64, F64, text=LSTR)),
    _era("green", "2025-01", "B", "+ cbd_congestion_fee", *_green(I32, I64, F64, text=LSTR),
         ("cbd_congestion_fee", F64)),
    _era("green", "2026-06", "B", "+ request_source (type assumed large_string)",
         *_green(I32, I64, F64, text=LSTR), ("cbd_congestion_fee", F64),
         ("request_source", LSTR)),
    _era("fhv", "2019-01", "B", "double location ids, SR_Flag double", *_fhv(F64, F64, F64)),
    _era("fhv", "2019-05", "B", "int64 location ids, SR_Flag null-typed", *_fhv(I64, I64, NUL)),
    _era("fhv", "2020-07", "B", "PUlocationID double, DOlocationID int64",
         *_fhv(F64, I64, NUL)),
    _era("fhv", "2021-03", "B", "double location ids, SR_Flag null-typed",
         *_fhv(F64, F64, NUL)),
    _era("fhv", "2023-02", "B", "new writer: int64 ids and SR_Flag, large_string",
         *_fhv(I64, I64, I64, text=LSTR)),
    _era("fhvhv", "2019-02", "B", "wav_match_flag and airport_fee null-typed",
         *_fhvhv(NUL, NUL)),
    _era("fhvhv", "2020-10", "B", "airport_fee null-typed", *_fhvhv(NUL, STR)),
    _era("fhvhv", "2022-06", "B", "old writer, every column typed", *_fhvhv(F64, STR)),
    _era("fhvhv", "2024-01", "B", "new writer: large_string, int32 location ids",
         *_fhvhv(F64, LSTR, text=LSTR, ids=I32)),
    _era("fhvhv", "2025-01", "B", "+ cbd_congestion_fee (double assumed)",
         *_fhvhv(F64, LSTR, text=LSTR, ids=I32), ("cbd_congestion_fee", F64)),
)

REQUEST_SOURCES = ("app", "street-hail", "phone")


@dataclass(frozen=True)
class EraMonth:
    """A month of an era: the file as TLC writes it, and what the registry publishes."""

    era: Era
    source: pa.Table
    expected: pa.Table


def era_month(era: Era, rows: int, seed: int = 0) -> EraMonth:
    """``rows`` trips of ``era``'s month in the era's exact schema, with the canonical table
    they must normalise to."""
    registry = SERVICES[era.service]
    rng = np.random.default_rng([seed, era.month.year, era.month.month, 7])
    canonical = _canonical(era, rows, seed, rng)
    old = _old_yellow(era, canonical, rng) if era.service == "yellow" and \
        era.month.year <= 2010 else {}
    by_folded = {f.name.casefold(): f.name for f in registry.schema}
    arrays, fed = [], set()
    for f in era.schema:
        if f.name in old:
            values, feeds = old[f.name]
        elif f.name.startswith("__index_level_"):
            values, feeds = pa.array(np.arange(rows)), None
        else:
            feeds = by_folded[f.name.casefold()]
            values = canonical[feeds]
        if pa.types.is_null(f.type):
            arrays.append(pa.nulls(rows, NUL))
            continue
        arrays.append(values.cast(f.type))
        if feeds:
            fed.add(feeds)
    expected = pa.Table.from_arrays(
        [canonical[f.name].cast(f.type) if f.name in fed else pa.nulls(rows, f.type)
         for f in registry.schema], schema=registry.schema)
    return EraMonth(era, pa.Table.from_arrays(arrays, schema=era.schema), expected)


def write_era_month(path: Path, era: Era, rows: int, seed: int = 0) -> EraMonth:
    """Write ``era_month(era, rows, seed)`` as TLC's file at ``path``."""
    month = era_month(era, rows, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # The writer generations compress differently: GZIP before 2023-02, ZSTD after.
    new_writer = era.month >= date(2023, 2, 1)
    pq.write_table(month.source, tmp, compression="zstd" if new_writer else "gzip")
    tmp.replace(path)
    return month


def _canonical(era: Era, rows: int, seed: int, rng: np.random.Generator
               ) -> dict[str, pa.Array]:
    """The month's values under canonical names and types, quirks included."""
    service, month = era.service, era.month
    if service == "fhvhv":
        columns = next(_hv_chunks(month, rows, rng))
        values = {n: (a.cast(TS) if pa.types.is_timestamp(a.type) else a)
                  for n, a in columns.items()}
    else:
        values = dict(next(c for c, _, _ in trip_chunks(service, month, rows, seed)))
    if service in ("yellow", "green"):
        n = rows
        if service == "yellow":
            fee = np.where(rng.random(n) < 0.1, 1.25, 0.0)
            values["airport_fee"] = pa.array(fee, F64, mask=np.full(n, month.year < 2021))
        if month.year >= 2025:
            values["cbd_congestion_fee"] = pa.array(np.where(rng.random(n) < 0.6, 0.75, 0.0))
        if month >= date(2026, 6, 1):
            picks = rng.integers(0, len(REQUEST_SOURCES) + 1, n)
            values["request_source"] = pa.array(
                [REQUEST_SOURCES[p] if p < len(REQUEST_SOURCES) else None for p in picks], STR)
        _money_quirks(service, month, values, rng)
    return values


def _set(values: dict[str, pa.Array], name: str, rows: np.ndarray | list[int],
         value: object) -> None:
    column = values[name].to_pylist()
    for row in rows:
        column[int(row)] = value
    values[name] = pa.array(column, values[name].type)


def _money_quirks(service: str, month: date, values: dict[str, pa.Array],
                  rng: np.random.Generator) -> None:
    """QUIRKS.md's value ranges and NULL blocks, on top of the generator's refunds,
    out-of-month pickups and RatecodeID 99."""
    n = len(values["trip_distance"])
    pickup = "tpep_pickup_datetime" if service == "yellow" else "lpep_pickup_datetime"
    _set(values, "trip_distance", [1, 2], 201_421.68)  # real green 2024-01's maximum
    _set(values, "passenger_count", [3, 4], 9)
    # Out-of-month pickups: 2009-01-01 (green 2023-01 has one) and the month before.
    _set(values, pickup, [5], datetime(2009, 1, 1, 20, 21, 27))
    _set(values, pickup, [6], datetime(month.year, month.month, 1) - timedelta(hours=3))
    if service == "yellow" and month.year >= 2021:
        # The tail of a real yellow month: VendorID 6, payment_type 0, NULL counts and fees.
        tail = list(range(n - 4, n))
        _set(values, "VendorID", tail, 6)
        _set(values, "payment_type", tail, 0)
        for name in ("passenger_count", "RatecodeID", "store_and_fwd_flag",
                     "congestion_surcharge", "airport_fee"):
            _set(values, name, tail, None)
    if service == "green":
        # Green's NULL block: 5-7 % of rows lack these together; trip_type a few more.
        block = rng.choice(np.arange(10, n), max(1, n * 6 // 100), replace=False)
        for name in ("passenger_count", "RatecodeID", "store_and_fwd_flag", "payment_type",
                     "congestion_surcharge", "trip_type"):
            _set(values, name, block, None)
        _set(values, "trip_type", [7, 8, 9], None)


def _old_yellow(era: Era, c: dict[str, pa.Array], rng: np.random.Generator
                ) -> dict[str, tuple[pa.Array, str | None]]:
    """2009-2010 columns (source name -> values, the canonical column they feed or None)."""
    n = len(c["VendorID"])
    coordinates = {name: (_coordinate(-73.98 if "lon" in name.lower() else 40.75, n, rng), None)
                   for name in ("Start_Lon", "Start_Lat", "End_Lon", "End_Lat",
                                "pickup_longitude", "pickup_latitude", "dropoff_longitude",
                                "dropoff_latitude")}
    if era.month.year == 2009:
        return coordinates | {
            "vendor_name": (_text(c["VendorID"], VENDOR_NAMES), "VendorID"),
            "Trip_Pickup_DateTime": (_seconds_text(c["tpep_pickup_datetime"]),
                                     "tpep_pickup_datetime"),
            "Trip_Dropoff_DateTime": (_seconds_text(c["tpep_dropoff_datetime"]),
                                      "tpep_dropoff_datetime"),
            "Passenger_Count": (c["passenger_count"], "passenger_count"),
            "Trip_Distance": (c["trip_distance"], "trip_distance"),
            "Rate_Code": (c["RatecodeID"], "RatecodeID"),
            "store_and_forward": (_flag_number(c["store_and_fwd_flag"]), "store_and_fwd_flag"),
            "Payment_Type": (_text(c["payment_type"], PAYMENT_TEXT), "payment_type"),
            "Fare_Amt": (c["fare_amount"], "fare_amount"),
            "surcharge": (c["extra"], "extra"),
            "Tip_Amt": (c["tip_amount"], "tip_amount"),
            "Tolls_Amt": (c["tolls_amount"], "tolls_amount"),
            "Total_Amt": (c["total_amount"], "total_amount"),
        }
    return coordinates | {
        "vendor_id": (_text(c["VendorID"], VENDOR_NAMES), "VendorID"),
        "pickup_datetime": (_seconds_text(c["tpep_pickup_datetime"]), "tpep_pickup_datetime"),
        "dropoff_datetime": (_seconds_text(c["tpep_dropoff_datetime"]),
                             "tpep_dropoff_datetime"),
        "rate_code": (c["RatecodeID"], "RatecodeID"),
        # 0/1 as text (the file's column is text, its values unknown: 0/1 as in the CSVs).
        "store_and_fwd_flag": (_flag_number(c["store_and_fwd_flag"]).cast(I64).cast(STR),
                               "store_and_fwd_flag"),
        "payment_type": (_spelled(c["payment_type"], PAYMENT_TEXT_2010, rng), "payment_type"),
        "surcharge": (c["extra"], "extra"),
    }
