"""The whole history as sources publish it: every month of every service's calendar, small.

``write_history`` lays out both sources of ``[source] kind = auto``: the CSV mirror's
months (``csv_first_month`` .. ``csv_last_month``, ``samples.write_month``) under
``release/{service}/`` and TLC's Parquet for every other month under ``tlc/``, each in the
schema of its era (``tlc_samples.ERAS``: the latest era that began by the month, its
values generated for the month itself). A month after a service's ``newest`` is not
written: the mirror answers it as TLC's CloudFront does (403), or as GitHub does (404).
For the tests and ``bench/bench_history.py``.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

from pipeline.core.datasets import SERVICES
from pipeline.core.months import month_key, months_between
from pipeline.demo import samples
from tests import tlc_samples

# The CSV mirror's months (luigi.cfg's [source] csv_first_month .. csv_last_month).
CSV_MONTHS = (date(2019, 1, 1), date(2021, 7, 1))
# 2011 on, yellow files have today's names: the 2009-2010 eras end there.
MODERN_YELLOW = date(2011, 1, 1)


def era_of(service: str, month: date) -> tlc_samples.Era:
    """The era whose schema ``service`` published ``month`` in (the first era known for a
    month before it, e.g. green 2013-08), dated ``month``."""
    eras = [e for e in tlc_samples.ERAS if e.service == service]
    if service == "yellow" and month >= MODERN_YELLOW:
        eras = [e for e in eras if e.month >= MODERN_YELLOW]
    era = max((e for e in eras if e.month <= month), key=lambda e: e.month, default=eras[0])
    return dataclasses.replace(era, month=month)


def write_history(root: Path, start: date, newest: dict[str, date], rows: int,
                  csv_months: tuple[date, date] = CSV_MONTHS) -> dict[tuple[str, str], int]:
    """Write every month from ``start`` (or the service's first month) to ``newest[service]``
    under ``root/release`` (CSV mirror, zones) and ``root/tlc`` (TLC Parquet); return the
    rows of each (service, YYYY-MM)."""
    release, tlc = root / "release", root / "tlc"
    samples.write_zones(release / "misc" / "taxi_zone_lookup.csv")
    tlc.mkdir(parents=True, exist_ok=True)
    written = {}
    for service, last in newest.items():
        registry = SERVICES[service]
        for month in months_between(max(start, registry.first_month), last):
            stem = registry.file_stem(month_key(month))
            if csv_months[0] <= month <= csv_months[1]:
                samples.write_month(release / service / f"{stem}.csv.gz", service, month, rows)
            else:
                tlc_samples.write_era_month(tlc / f"{stem}.parquet", era_of(service, month), rows)
            written[(service, month_key(month))] = rows
    return written
