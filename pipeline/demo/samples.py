"""Realistic sample months, for the demo, the tests and the benchmarks (no internet here).

The files look like the real releases: the same headers and text forms, and
the quirks that break naive pipelines:

- the **empty tail**: from 2020 on, the last ~7.2 % of yellow and green rows have
  VendorID, passenger_count, RatecodeID, store_and_fwd_flag and payment_type empty
  (yellow 2021-01: 98,352 of 1,369,765 rows);
- **refunds**: about 1 % of rows with negative money columns;
- **out-of-month pickups**: the previous day, the next month, and a few in 2008/2009;
- **FHV header case** changes by year (2019 and 2021 write ``dropOff_datetime``,
  ``PUlocationID``, ``DOlocationID``; 2020 the canonical spelling), and many FHV rows
  have no location;
- **green ``ehail_fee``**: with some values (2019), entirely empty (2020), or not in the
  header at all (2021 on);
- **fhvhv** (2019-02 on): the mirror's old 7-column form (``hvfhs_license_num`` HV0002
  Juno until 2019-11, HV0003 Uber, HV0004 Via, HV0005 Lyft, each with its own ``B0xxxx``
  bases; ``SR_Flag`` 1 for a shared ride, else empty: about one trip in ten until pooled
  rides were suspended in March 2020, rare after).

Each call returns the facts the file was made with, so tests can assert exact figures.
Generation is vectorised and chunked: 10 M rows take tens of seconds and little memory.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from isal import igzip

from pipeline.core.datasets import SERVICES, YELLOW, ZONES
from pipeline.core.months import month_key, next_month

CHUNK_ROWS = 500_000
EMPTY_TAIL_SHARE = 98_352 / 1_369_765
REFUND_SHARE = 0.01
OUTSIDE_SHARE = 0.0005
EMPTY_TAIL_COLUMNS = ("VendorID", "passenger_count", "RatecodeID", "store_and_fwd_flag",
                      "payment_type")
FHV_ODD_CASE = {"dropoff_datetime": "dropOff_datetime", "PULocationID": "PUlocationID",
                "DOLocationID": "DOlocationID"}


@dataclass(frozen=True)
class SampleFacts:
    """What a generated file holds, for exact assertions."""

    service: str
    month: str
    rows: int
    empty_tail_rows: int
    rows_outside_month: int
    refund_rows: int
    header: tuple[str, ...]
    ehail_fee: str  # "values", "empty", "absent" or "" for other services


def empty_tail_rows(service: str, month: date, rows: int) -> int:
    if service in ("yellow", "green") and month >= date(2020, 1, 1):
        return round(rows * EMPTY_TAIL_SHARE)
    return 0


def ehail_fee_mode(month: date) -> str:
    if month.year <= 2019:
        return "values"
    return "empty" if month.year == 2020 else "absent"


# Yellow's registry columns that only TLC's Parquet files carry, in registry order.
PARQUET_ONLY = tuple(n for n in YELLOW.columns if n in YELLOW.parquet_only)


def header_for(service: str, month: date) -> list[str]:
    """The CSV header of ``service`` in ``month`` as the mirror publishes it."""
    registry = SERVICES[service]
    names = [n for n in registry.columns if n not in registry.parquet_only]
    if service == "fhv" and month.year in (2019, 2021):
        return [FHV_ODD_CASE.get(n, n) for n in names]
    if service == "green" and ehail_fee_mode(month) == "absent":
        return [n for n in names if n != "ehail_fee"]
    return list(names)


def write_month(path: Path, service: str, month: date, rows: int, seed: int = 0) -> SampleFacts:
    """Write ``rows`` realistic trips of ``service`` for ``month`` as CSV.gz at ``path``."""
    header = header_for(service, month)
    tail = empty_tail_rows(service, month, rows)
    outside = refunds = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with igzip.open(path, "wb", compresslevel=2) as out:
        out.write((",".join(header) + "\n").encode())
        for columns, chunk_outside, chunk_refunds in trip_chunks(service, month, rows, seed):
            outside += chunk_outside
            refunds += chunk_refunds
            table = pa.table([columns[_canonical(name)] for name in header], names=header)
            out.write(_csv_text(table))
    return SampleFacts(
        service=service, month=month_key(month), rows=rows, empty_tail_rows=tail,
        rows_outside_month=outside, refund_rows=refunds, header=tuple(header),
        ehail_fee=ehail_fee_mode(month) if service == "green" else "",
    )


def trip_chunks(service: str, month: date, rows: int, seed: int = 0
                ) -> Iterator[tuple[dict[str, pa.Array], int, int]]:
    """The month's trips by chunk, as canonical columns (with out-of-month and refund
    counts): the same values for the same (service, month, rows, seed), whatever format
    they are then written in."""
    rng = np.random.default_rng([seed, month.year, month.month, list(SERVICES).index(service)])
    tail = empty_tail_rows(service, month, rows)
    for start in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - start)
        tail_in_chunk = max(0, min(n, start + n - (rows - tail)))
        yield _trips(service, month, n, tail_in_chunk, rng)


def _canonical(name: str) -> str:
    return _FHV_CANONICAL.get(name, name)


_FHV_CANONICAL = {odd: canonical for canonical, odd in FHV_ODD_CASE.items()}


def _csv_text(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return buf.getvalue()


def _pickups(month: date, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    start = np.datetime64(datetime(month.year, month.month, 1), "s")
    end = np.datetime64(datetime(*next_month(month).timetuple()[:3]), "s")
    span = int((end - start) / np.timedelta64(1, "s"))
    pickups = np.sort(start + rng.integers(0, span, n).astype("timedelta64[s]"))
    outside = rng.random(n) < OUTSIDE_SHARE
    k = int(outside.sum())
    if k:
        choice = rng.integers(0, 3, k)
        day = np.timedelta64(86400, "s")
        before = start - day + rng.integers(0, 86400, k).astype("timedelta64[s]")
        after = end + rng.integers(0, 86400 * 3, k).astype("timedelta64[s]")
        ancient = np.datetime64("2008-12-31T00:00:00") + rng.integers(0, 86400 * 400, k).astype(
            "timedelta64[s]")
        pickups[outside] = np.where(choice == 0, before, np.where(choice == 1, after, ancient))
    return pickups, k


def _ids(rng: np.random.Generator, values: list[int], p: list[float], n: int) -> np.ndarray:
    return rng.choice(np.array(values, dtype=np.int64), n, p=p)


# High Volume FHV licences and some of their bases: Juno, Uber, Via, Lyft.
HV_BASES = {
    "HV0002": ("B02907", "B02914", "B03035"),
    "HV0003": ("B02764", "B02765", "B02835", "B02836", "B02864", "B02869", "B02871",
               "B02875", "B02877", "B02882", "B02887", "B02889"),
    "HV0004": ("B02800", "B03136"),
    "HV0005": ("B02510", "B02844"),
}
HV_SHARES = (0.03, 0.71, 0.04, 0.22)
JUNO_LAST_MONTH = date(2019, 11, 1)
POOLING_SUSPENDED = date(2020, 3, 1)


def shared_ride_share(month: date) -> float:
    """The share of fhvhv trips flagged as shared rides (SR_Flag 1) in ``month``."""
    return 0.1 if month < POOLING_SUSPENDED else 0.005


def _hv_trips(month: date, n: int, rng: np.random.Generator
              ) -> tuple[dict[str, pa.Array], int, int]:
    """High-volume FHV trips in the CSV mirror's 7 columns, with out-of-month pickups."""
    pickups, outside = _pickups(month, n, rng)
    minutes = np.clip(rng.lognormal(2.7, 0.6, n), 2, 240)
    shares = np.array(HV_SHARES)
    if month > JUNO_LAST_MONTH:
        shares[0] = 0.0
    licences = np.array(list(HV_BASES))[rng.choice(len(HV_BASES), n, p=shares / shares.sum())]
    bases = np.empty(n, dtype=object)
    for licence, its_bases in HV_BASES.items():
        mine = licences == licence
        bases[mine] = rng.choice(np.array(its_bases), int(mine.sum()))
    shared = rng.random(n) < shared_ride_share(month)
    return {
        "hvfhs_license_num": pa.array(licences),
        "dispatching_base_num": pa.array(bases, pa.string()),
        "pickup_datetime": pa.array(pickups),
        "dropoff_datetime": pa.array(pickups + (minutes * 60).astype("timedelta64[s]")),
        "PULocationID": pa.array(rng.choice(LOCATION_IDS, n, p=LOCATION_WEIGHTS)),
        "DOLocationID": pa.array(rng.choice(LOCATION_IDS, n, p=LOCATION_WEIGHTS)),
        "SR_Flag": pa.array(np.where(shared, "1", None), pa.string()),
    }, outside, 0


def _trips(service: str, month: date, n: int, tail: int, rng: np.random.Generator
           ) -> tuple[dict[str, pa.Array], int, int]:
    if service == "fhvhv":
        return _hv_trips(month, n, rng)
    pickups, outside = _pickups(month, n, rng)
    minutes = np.clip(rng.lognormal(2.4, 0.7, n), 1, 240)
    dropoffs = pickups + (minutes * 60).astype("timedelta64[s]")
    locations = lambda: rng.choice(LOCATION_IDS, n, p=LOCATION_WEIGHTS)  # noqa: E731
    if service == "fhv":
        no_location = rng.random(n) < 0.4
        bases = np.array([f"B{i:05d}" for i in rng.integers(1, 3500, 200)])
        base = bases[rng.integers(0, 200, n)]
        affiliated = np.where(rng.random(n) < 0.15, None, bases[rng.integers(0, 200, n)])
        return {
            "dispatching_base_num": pa.array(base),
            "pickup_datetime": pa.array(pickups),
            "dropoff_datetime": pa.array(dropoffs),
            "PULocationID": pa.array(locations(), mask=no_location),
            "DOLocationID": pa.array(locations(), mask=no_location & (rng.random(n) < 0.9)),
            "SR_Flag": pa.array(np.where(rng.random(n) < 0.05, "1", None)),
            "Affiliated_base_number": pa.array(affiliated),
        }, outside, 0

    distance = np.round(rng.lognormal(0.6, 0.9, n), 2)
    fare = np.round(2.5 + distance * 2.5 + minutes * 0.35, 2)
    extra = rng.choice([0.0, 0.5, 1.0, 2.5, 3.0], n)
    mta = np.full(n, 0.5)
    tip = np.round(np.where(rng.random(n) < 0.6, fare * rng.uniform(0.1, 0.3, n), 0.0), 2)
    tolls = np.where(rng.random(n) < 0.05, 6.12, 0.0)
    improvement = np.full(n, 0.3)
    congestion = np.where(rng.random(n) < 0.7, 2.5, 0.0)
    refund = rng.random(n) < REFUND_SHARE
    sign = np.where(refund, -1.0, 1.0)
    fare, extra, mta, tip, improvement, congestion = (
        fare * sign, extra * sign, mta * sign, tip * np.where(refund, 0.0, 1.0),
        improvement * sign, congestion * sign)
    total = np.round(fare + extra + mta + tip + tolls + improvement + congestion, 2)
    payment = np.where(refund, rng.choice([3, 4], n),
                       _ids(rng, [1, 2, 3, 4], [.7, .27, .02, .01], n))
    in_tail = np.zeros(n, dtype=bool)
    if tail:
        in_tail[n - tail:] = True
    money = lambda a: pa.array(a, pa.float64())  # noqa: E731
    masked = lambda a: pa.array(a, pa.int64(), mask=in_tail)  # noqa: E731
    columns = {
        "VendorID": masked(_ids(rng, [1, 2], [0.35, 0.65], n)),
        "passenger_count": masked(_ids(rng, [0, 1, 2, 3, 4, 5, 6],
                                       [.02, .7, .14, .04, .02, .05, .03], n)),
        "trip_distance": money(distance),
        "RatecodeID": masked(_ids(rng, [1, 2, 3, 4, 5, 99], [.96, .025, .005, .004, .005, .001],
                                  n)),
        "store_and_fwd_flag": pa.array(np.where(rng.random(n) < 0.01, "Y", "N"), mask=in_tail),
        "PULocationID": pa.array(locations()),
        "DOLocationID": pa.array(locations()),
        "payment_type": masked(payment),
        "fare_amount": money(fare),
        "extra": money(extra),
        "mta_tax": money(mta),
        "tip_amount": money(tip),
        "tolls_amount": money(tolls),
        "improvement_surcharge": money(improvement),
        "total_amount": money(total),
        "congestion_surcharge": money(congestion),
    }
    if service == "yellow":
        columns["tpep_pickup_datetime"] = pa.array(pickups)
        columns["tpep_dropoff_datetime"] = pa.array(dropoffs)
    else:
        columns["lpep_pickup_datetime"] = pa.array(pickups)
        columns["lpep_dropoff_datetime"] = pa.array(dropoffs)
        columns["trip_type"] = masked(_ids(rng, [1, 2], [0.97, 0.03], n))
        has_fee = rng.random(n) < (0.02 if ehail_fee_mode(month) == "values" else 0.0)
        columns["ehail_fee"] = pa.array(np.round(1.5 * rng.random(n), 2), pa.float64(),
                                        mask=~has_fee)
    return columns, outside, int(refund.sum())


BOROUGHS = ["Manhattan", "Queens", "Brooklyn", "Bronx", "Staten Island"]
NAMED_ZONES = {
    1: ("EWR", "Newark Airport", "EWR"),
    132: ("Queens", "JFK Airport", "Airports"),
    138: ("Queens", "LaGuardia Airport", "Airports"),
    161: ("Manhattan", "Midtown Center", "Yellow Zone"),
    237: ("Manhattan", "Upper East Side South", "Yellow Zone"),
    264: ("Unknown", "NV", "N/A"),
    265: ("Unknown", "NA", "N/A"),
}


def _zone(location: int) -> tuple[str, str, str]:
    borough = BOROUGHS[location % len(BOROUGHS)]
    default = (borough, f"{borough} Zone {location}",
               "Yellow Zone" if borough == "Manhattan" else "Boro Zone")
    return NAMED_ZONES.get(location, default)


# Trips start mostly in Manhattan and at the airports, as in the real data.
LOCATION_IDS = np.arange(1, 266)
_weights = np.array([{"Manhattan": 12.0, "Airports": 30.0, "N/A": 0.5}.get(
    _zone(i)[0] if _zone(i)[0] == "Manhattan" else _zone(i)[2], 1.0) for i in LOCATION_IDS])
LOCATION_WEIGHTS = _weights / _weights.sum()


def write_zones(path: Path) -> int:
    """Write the 265-row zone lookup in the real file's form (quoted header and strings)."""
    lines = ['"LocationID","Borough","Zone","service_zone"']
    for location in range(1, 266):
        borough, zone, service_zone = _zone(location)
        lines.append(f'{location},"{borough}","{zone}","{service_zone}"')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return len(lines) - 1


def write_release(root: Path, months: dict[str, list[date]], rows: dict[str, int],
                  seed: int = 0) -> list[SampleFacts]:
    """A directory laid out like the releases: ``{service}/{file}.csv.gz``, ``misc/zones``."""
    facts = []
    for service, service_months in months.items():
        for month in service_months:
            stem = SERVICES[service].file_stem(month_key(month))
            facts.append(write_month(root / service / f"{stem}.csv.gz", service, month,
                                     rows[service], seed))
    write_zones(root / "misc" / ZONES.file_name)
    return facts
