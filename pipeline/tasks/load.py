"""The tasks every warehouse sink shares in shape: the zone lookup, loaded once, and a
month, loaded from the lake. A sink subclasses them and names its two functions:
``loaded(table, month)`` (what its load log and table hold) and ``load(...)``. Both are
complete when the sink's load log and its table hold what the lake says."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import luigi
import pyarrow as pa

from pipeline.core.datasets import Service
from pipeline.core.manifest import Manifest
from pipeline.tasks.base import MonthTask, PipelineTask
from pipeline.tasks.lake_month import ParquetizeMonth, Zones
from pipeline.warehouses.base import ZONES_TABLE, LoadedTarget, read_zones, trips_table

Loaded = Callable[[str, date | None], tuple[int, str, int] | None]


class ZonesLoad(PipelineTask):
    """Table ``zones`` in a warehouse; complete when it holds the lake's lookup (its rows
    and checksum)."""

    @staticmethod
    def loaded(table: str, month: date | None) -> tuple[int, str, int] | None:
        raise NotImplementedError

    @staticmethod
    def load(zones: pa.Table, checksum: str) -> None:
        raise NotImplementedError

    def requires(self) -> Zones:
        return Zones()

    def output(self) -> LoadedTarget:
        return LoadedTarget(lambda: self.loaded(ZONES_TABLE, None), self._expected)

    def _expected(self) -> tuple[int, str] | None:
        path = Path(self.input().path)
        if not path.exists():
            return None
        table, checksum = read_zones(path)
        return table.num_rows, checksum

    def run(self) -> None:
        self.load(*read_zones(Path(self.input().path)))


def month_target(loaded: Loaded, service: Service, month: date) -> LoadedTarget:
    """Exists when the warehouse holds the rows (and checksum) of the month's manifest."""
    manifest = ParquetizeMonth(service=service.name, month=month).output()
    return LoadedTarget(
        lambda: loaded(trips_table(service), month),
        lambda: (m.rows, m.parquet_sha256) if (m := manifest.read()) else None,
    )


class MonthLoad(MonthTask):
    """The month's rows in table ``{service}_tripdata`` of a warehouse, loaded from the local
    lake's Parquet; complete when the load log and the table both hold the manifest's rows."""

    warehouse = "the warehouse"
    zones_task: type[ZonesLoad] = ZonesLoad

    @staticmethod
    def loaded(table: str, month: date | None) -> tuple[int, str, int] | None:
        raise NotImplementedError

    @staticmethod
    def load(service: Service, month: date, parquet: Path, manifest: Manifest) -> int:
        raise NotImplementedError

    def requires(self) -> dict[str, luigi.Task]:
        return {
            "parquet": ParquetizeMonth(service=self.service, month=self.month),
            "zones": self.zones_task(),
        }

    def output(self) -> LoadedTarget:
        return month_target(self.loaded, self.dataset, self.month)

    def run(self) -> None:
        parquet = self.input()["parquet"]
        manifest = parquet.read()
        self.report(f"loading {manifest.rows:,} rows into {self.warehouse}", 0)
        rows = self.load(self.dataset, self.month, parquet.parquet, manifest)
        self.report(f"loaded {rows:,} rows into {trips_table(self.dataset)}", 100)
