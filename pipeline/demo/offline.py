"""The offline demo: realistic sample months served on 127.0.0.1 like the real releases,
ingested by IngestMonth into the local lake and DuckDB, then a look at the result."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import luigi

from pipeline import config
from pipeline.core.months import month_key
from pipeline.demo import samples
from pipeline.demo.mirror import ReleaseMirror
from pipeline.lake.keys import PARQUET_PREFIX
from pipeline.tasks.flows import IngestMonth
from pipeline.tasks.storage import lake

SERVICES = ("yellow", "green", "fhv")
ROWS = {"yellow": 200_000, "green": 40_000, "fhv": 100_000}


def make_source(root: Path, months: list[date], scale: float) -> None:
    """Generate the sample release once; later demos reuse it."""
    if (root / "misc" / "taxi_zone_lookup.csv").exists():
        return
    print(f"generating sample months {', '.join(map(month_key, months))} in {root}")
    rows = {s: max(1000, int(n * scale)) for s, n in ROWS.items()}
    samples.write_release(root, {s: months for s in SERVICES}, rows)


def run(months: list[date], source_dir: Path, scale: float = 1.0, workers: int = 1) -> bool:
    make_source(source_dir, months, scale)
    with ReleaseMirror(source_dir) as mirror:
        settings = luigi.configuration.get_config()
        settings.set("source", "base_url", mirror.base_url)
        settings.set("source", "zones_url", mirror.zones_url)
        # Offline: a month after the CSV mirror's last one is asked of the local server too.
        settings.set("source", "parquet_base_url", mirror.parquet_base_url)
        print(f"serving it at {mirror.base_url}")
        result = luigi.build(
            [IngestMonth(month=m, services=SERVICES) for m in months],
            local_scheduler=True, detailed_summary=True, workers=workers, log_level="WARNING",
        )
    print(result.summary_text)
    if not result.scheduling_succeeded or result.status.name.startswith("FAIL"):
        return False
    show(months)
    return True


def show(months: list[date]) -> None:
    the_lake = lake()
    warehouse = Path(config.duckdb().path).absolute()
    print(f"lake:      {the_lake.url_root}")
    for key in the_lake.keys(PARQUET_PREFIX):
        if key.endswith(".parquet"):
            print(f"           {key}  ({(the_lake.target(key).size() or 0) / 1e6:.1f} MB)")
    print(f"warehouse: {warehouse}")
    # DuckDB prints its own tables: no dataframe library needed to show a result.
    with duckdb.connect(str(warehouse), read_only=True) as con:
        counts = con.sql(" UNION ALL ".join(
            f"(SELECT '{s}' AS service, source_month, count(*) AS trips "
            f"FROM {s}_tripdata GROUP BY ALL ORDER BY 2)" for s in SERVICES))
        print("\ntrips per service and month:")
        print(counts)
        top = con.sql(
            "SELECT z.Borough, z.Zone, count(*) AS trips, round(avg(t.total_amount), 2) AS "
            "avg_total FROM yellow_tripdata t JOIN zones z ON z.LocationID = t.PULocationID "
            "WHERE t.source_month = ? GROUP BY ALL ORDER BY trips DESC LIMIT 5",
            params=[months[0]],
        )
        print(f"\nbusiest yellow pickup zones in {month_key(months[0])}:")
        print(top)
