"""The DuckDB warehouse's answer to "is this month loaded?", checked against the rows a real
warehouse file holds while another connection changes them."""

from __future__ import annotations

from datetime import date

import duckdb
from luigi.execution_summary import LuigiStatusCode

from pipeline import IngestMonth
from pipeline.core.months import month_key
from pipeline.tasks.load import duckdb_settings
from pipeline.warehouses import duckdb as warehouse
from tests.conftest import MONTHS, Env, Release

TABLE = "green_tripdata"


def delete_rows(env: Env, month: date, rows: int) -> None:
    """Another writer (as another process would) takes ``rows`` rows of the month away."""
    with duckdb.connect(str(env.duckdb_path)) as con:
        con.execute(f"DELETE FROM {TABLE} WHERE rowid IN (SELECT rowid FROM {TABLE} "
                    f"WHERE source_month = ? LIMIT {rows})", [month])


def test_loaded_counts_each_month_and_is_never_stale(env: Env, release: Release) -> None:
    months = MONTHS["green"]
    for month in months:
        result = env.build(IngestMonth(month=month, services=("green",)))
        assert result.status == LuigiStatusCode.SUCCESS
    rows = {month: release.of("green", month_key(month)).rows for month in months}
    first, *others = months
    settings = duckdb_settings()

    def loaded(month: date) -> tuple[int, str, int] | None:
        return warehouse.loaded(TABLE, month, settings)

    # A task's process asks about one month: counted alone, right beside the others.
    logged, checksum, there = loaded(first)
    assert (logged, there) == (rows[first], rows[first]) and len(checksum) == 64
    delete_rows(env, first, 7)
    assert loaded(first) == (rows[first], checksum, rows[first] - 7)

    # A scheduling process asks about every month: from the second on, all are counted.
    assert [loaded(m)[2] for m in months] == [
        rows[first] - 7, *(rows[m] for m in others)]
    delete_rows(env, others[-1], 3)
    assert [loaded(m)[2] for m in months] == [
        rows[first] - 7, *(rows[m] for m in others[:-1]), rows[others[-1]] - 3]
    assert loaded(date(2018, 1, 1)) is None  # never loaded

    # And luigi sees it: the damaged months are loaded again.
    result = env.build(*(IngestMonth(month=m, services=("green",)) for m in months))
    assert result.status == LuigiStatusCode.SUCCESS
    assert [loaded(m)[2] for m in months] == [rows[m] for m in months]
