"""A month's data-quality report: how many rows break each plausibility rule, counted while
the month is converted (``MonthWriter`` hands every canonical table over), never by a second
read of the file.

The checks, and the columns they read in each service (a check a service has no column for
is not applicable to it, and reported as ``None``):

===========================  =====================================  ==============================
check                        yellow, green                          fhv / fhvhv
===========================  =====================================  ==============================
negative_fare_or_total       ``fare_amount`` < 0 or                 - / ``base_passenger_fare`` < 0
                             ``total_amount`` < 0                   (fhvhv has no total)
dropoff_before_pickup        dropoff < pickup                       the same
pickup_outside_month         pickup before or after the file's month  the same
zone_id_invalid              ``PU``/``DOLocationID`` outside         fhv: outside 1..265 only (its
                             1..265 or null                         bases often report no zone);
                                                                    fhvhv: as yellow
distance_over_1000_miles     ``trip_distance`` > 1,000              - / ``trip_miles`` > 1,000
passenger_count_invalid      ``passenger_count`` 0 or over 9        - / - (not recorded)
null_id                      ``VendorID`` null                      ``dispatching_base_num`` /
                                                                    ``hvfhs_license_num`` null
===========================  =====================================  ==============================

A month whose zone ids are null in every row (2009-2010 yellow: its source has coordinates,
not zones) reports ``zone_id_invalid`` as not applicable rather than counting every row.

``judge`` weighs the counts against ``[quality]`` thresholds, each a share of the month's
rows: above it a check warns, and a check named in ``[quality] blocking`` fails the month
(``QualityBlocked``) before anything is committed to the lake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.errors import PipelineError
from pipeline.core.months import next_month
from pipeline.core.service import Service

ZONES = (1, 265)
MAX_MILES = 1_000.0
MAX_PASSENGERS = 9

# Every check, in report order, with what it counts (for messages, status and the page).
CHECKS: dict[str, str] = {
    "negative_fare_or_total": "negative fare or total",
    "dropoff_before_pickup": "dropoff before the pickup",
    "pickup_outside_month": "pickup outside the file's month",
    "zone_id_invalid": "zone id outside 1..265 or null",
    "distance_over_1000_miles": "trip distance over 1,000 miles",
    "passenger_count_invalid": "passenger count 0 or over 9",
    "null_id": "null id (vendor, base or licence)",
}

Counts = dict[str, int | None]


class QualityBlocked(PipelineError):
    """A blocking quality check failed the month; nothing was committed to the lake."""


@dataclass(frozen=True)
class Columns:
    """Which canonical columns of a service each check reads (None: no such column); the
    pickup is the registry's ``pickup_column``."""

    dropoff: str
    money: tuple[str, ...] = ()
    zones: tuple[str, ...] = ("PULocationID", "DOLocationID")
    null_zone_is_invalid: bool = True
    distance: str | None = None
    passengers: str | None = None
    id: str | None = None


COLUMNS: dict[str, Columns] = {
    "yellow": Columns("tpep_dropoff_datetime",
                      money=("fare_amount", "total_amount"), distance="trip_distance",
                      passengers="passenger_count", id="VendorID"),
    "green": Columns("lpep_dropoff_datetime",
                     money=("fare_amount", "total_amount"), distance="trip_distance",
                     passengers="passenger_count", id="VendorID"),
    "fhv": Columns("dropoff_datetime", null_zone_is_invalid=False,
                   id="dispatching_base_num"),
    "fhvhv": Columns("dropoff_datetime", money=("base_passenger_fare",),
                     distance="trip_miles", id="hvfhs_license_num"),
}


class QualityCounter:
    """Counts, table by table, the rows of one month that break each check."""

    def __init__(self, service: Service, month: date) -> None:
        self.columns = COLUMNS[service.name]
        self._pickup = service.pickup_column
        self.rows = 0
        self._window = (_at(month), _at(next_month(month)))
        self._counts: dict[str, int] = dict.fromkeys(self._applicable(), 0)
        self._zones_seen = False  # a zone id that is not null, somewhere in the month

    def _applicable(self) -> list[str]:
        c = self.columns
        skip = {"negative_fare_or_total": not c.money, "distance_over_1000_miles": not c.distance,
                "passenger_count_invalid": not c.passengers, "null_id": not c.id}
        return [name for name in CHECKS if not skip.get(name, False)]

    @property
    def rows_outside_month(self) -> int:
        return self._counts["pickup_outside_month"]

    def add(self, table: pa.Table) -> None:
        c, counts = self.columns, self._counts
        self.rows += table.num_rows
        pickup = table.column(self._pickup)
        counts["pickup_outside_month"] += count_outside(pickup, *self._window)
        counts["dropoff_before_pickup"] += _true(pc.less(table.column(c.dropoff), pickup))
        if c.money:
            counts["negative_fare_or_total"] += _true(_any(
                pc.less(table.column(name), 0.0) for name in c.money))
        zones = [table.column(name) for name in c.zones]
        self._zones_seen = self._zones_seen or any(z.null_count < len(z) for z in zones)
        counts["zone_id_invalid"] += _true(_any(
            _outside(z, *ZONES, null=c.null_zone_is_invalid) for z in zones))
        if c.distance:
            counts["distance_over_1000_miles"] += _true(
                pc.greater(table.column(c.distance), MAX_MILES))
        if c.passengers:
            counts["passenger_count_invalid"] += _true(
                _outside(table.column(c.passengers), 1, MAX_PASSENGERS, null=False))
        if c.id:
            counts["null_id"] += table.column(c.id).null_count

    def counts(self) -> Counts:
        """Rows per check, in ``CHECKS`` order; None where a check does not apply."""
        counts: Counts = {name: self._counts.get(name) for name in CHECKS}
        if self.rows and not self._zones_seen and self.columns.null_zone_is_invalid:
            counts["zone_id_invalid"] = None  # the source has no zone ids at all
        return counts


@dataclass(frozen=True)
class Finding:
    """A check above its threshold in one month."""

    check: str
    count: int
    rows: int
    threshold: float

    def describe(self) -> str:
        return (f"{self.check} {self.count:,} of {self.rows:,} rows "
                f"({_percent(self.count / self.rows)} > threshold {self.threshold:g})")


def judge(counts: Mapping[str, int | None], rows: int,
          thresholds: Mapping[str, float]) -> list[Finding]:
    """The checks whose count exceeds their threshold's share of ``rows``."""
    findings = []
    for check, count in counts.items():
        threshold = thresholds.get(check)
        if count and rows and threshold is not None and count > threshold * rows:
            findings.append(Finding(check, count, rows, threshold))
    return findings


def enforce(label: str, counts: Mapping[str, int | None], rows: int,
            thresholds: Mapping[str, float], blocking: frozenset[str]) -> list[Finding]:
    """Raise QualityBlocked (one line) when a blocking check is over its threshold; else
    return the findings, which only warn."""
    findings = judge(counts, rows, thresholds)
    blocked = [f for f in findings if f.check in blocking]
    if blocked:
        raise QualityBlocked(
            f"{label}: blocking quality check failed: "
            + "; ".join(f.describe() for f in blocked) + "; nothing was published")
    return findings


def warning_line(label: str, findings: list[Finding]) -> str:
    return (f"{label}: quality warning: " + "; ".join(f.describe() for f in findings)
            + " (published; [quality] blocking would fail the month)")


def count_outside(pickup: pa.ChunkedArray, start: pa.Scalar, end: pa.Scalar) -> int:
    """Rows whose pickup lies before the month or after it; null pickups are not counted."""
    inside = pc.sum(pc.and_(pc.greater_equal(pickup, start), pc.less(pickup, end))).as_py()
    return len(pickup) - pickup.null_count - (inside or 0)


def _at(month: date) -> pa.Scalar:
    return pa.scalar(datetime(month.year, month.month, 1), pa.timestamp("us"))


def _outside(values: pa.ChunkedArray, low: float, high: float, *, null: bool) -> pa.ChunkedArray:
    """Which values lie outside low..high; a null value counts as outside when ``null``."""
    out = pc.or_(pc.less(values, low), pc.greater(values, high))
    return pc.fill_null(out, null) if null else out


def _any(masks: object) -> pa.ChunkedArray:
    """Row by row: any of the masks true (a null mask value is not true)."""
    result = None
    for mask in masks:  # type: ignore[attr-defined]
        result = mask if result is None else pc.or_kleene(result, mask)
    assert result is not None
    return result


def _true(mask: pa.ChunkedArray) -> int:
    return int(pc.sum(pc.fill_null(mask, False)).as_py() or 0)


def _percent(share: float) -> str:
    return f"{share * 100:.2g}%" if share < 0.01 else f"{share * 100:.1f}%"
