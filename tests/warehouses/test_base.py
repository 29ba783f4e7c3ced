"""The warehouses' shared base without a database: the column check every engine runs on an
existing table, the final row check of a month load, and the load-log row."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pyarrow as pa
import pytest

from pipeline.core.datasets import YELLOW
from pipeline.core.manifest import Manifest
from pipeline.core.version import __version__
from pipeline.warehouses.base import (
    LOAD_LOG_SCHEMA,
    SOURCE_MONTH,
    Dialect,
    WarehouseError,
    check_rows,
    load_log_row,
)

TYPES = {pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.timestamp("us"): "TIMESTAMP",
         pa.string(): "VARCHAR", pa.date32(): "DATE"}
DIALECT = Dialect("TestSQL", ddl_types=TYPES, reported_types=TYPES)
SCHEMA = DIALECT.trips_schema(YELLOW)


def reported(schema: pa.Schema) -> list[tuple[str, str]]:
    """A table's columns as information_schema reports them (lower case, as some do)."""
    return [(f.name, TYPES[f.type].lower()) for f in schema]


def test_a_table_as_the_registry_says_needs_nothing() -> None:
    assert DIALECT.check_columns("yellow_tripdata", SCHEMA, reported(SCHEMA)) == []


def test_a_table_made_before_the_registry_gained_columns_gets_them_added() -> None:
    older = [f for f in YELLOW.schema][:-2]  # before airport_fee, cbd_congestion_fee
    found = reported(pa.schema([*older, pa.field(SOURCE_MONTH, pa.date32())]))
    missing = DIALECT.check_columns("yellow_tripdata", SCHEMA, found)
    assert [f.name for f in missing] == YELLOW.columns[-2:]
    # Added after source_month, the next check takes the table as it now is.
    grown = found + reported(pa.schema(missing))
    assert DIALECT.check_columns("yellow_tripdata", SCHEMA, grown) == []


@pytest.mark.parametrize(("change", "named"), [
    (lambda cols: cols[1:], "VendorID"),                        # a column missing
    (lambda cols: [("VendorID", "double"), *cols[1:]], "VendorID bigint"),  # retyped
    (lambda cols: [cols[1], cols[0], *cols[2:]], "VendorID"),   # reordered
    (lambda cols: [*cols, ("extra", "bigint")], "columns instead of"),  # one too many
])
def test_any_other_difference_refuses_the_table_and_names_it(change, named: str) -> None:
    with pytest.raises(WarehouseError, match=named) as refused:
        DIALECT.check_columns("yellow_tripdata", SCHEMA, change(reported(SCHEMA)))
    assert "left as it is" in str(refused.value)
    assert "\n" not in str(refused.value)


MANIFEST = Manifest(
    service="yellow", month="2021-01", source_url="http://x/y.csv.gz", source_bytes=1,
    source_sha256="a" * 64, rows=1_369_765, rows_outside_month=3, schema_fingerprint="f",
    parquet_bytes=1, parquet_sha256="b" * 64, row_groups=2, pipeline_version="0",
    created_at="2026-01-01T00:00:00+00:00")


def test_the_final_row_check_passes_only_on_the_manifests_count() -> None:
    check_rows("TestSQL", YELLOW, date(2021, 1, 1), 1_369_765, MANIFEST)
    with pytest.raises(WarehouseError, match="TestSQL holds 1369764 rows after the load, "
                                             "the manifest 1369765; rolled back"):
        check_rows("TestSQL", YELLOW, date(2021, 1, 1), 1_369_764, MANIFEST)
    with pytest.raises(WarehouseError, match=r"; left alone$"):
        check_rows("TestSQL", YELLOW, date(2021, 1, 1), 0, replace(MANIFEST, rows=5),
                   then="left alone")


def test_a_load_log_row_has_the_load_log_columns() -> None:
    row = load_log_row("yellow_tripdata", date(2021, 1, 1), 10, "c" * 64)
    assert len(row) == len(LOAD_LOG_SCHEMA)
    assert row[:5] == ["yellow_tripdata", date(2021, 1, 1), 10, "c" * 64, __version__]
    assert pa.table({n: [v] for n, v in zip(LOAD_LOG_SCHEMA.names, row, strict=True)},
                    schema=LOAD_LOG_SCHEMA).num_rows == 1


def test_every_engine_names_a_sql_type_for_every_column_of_every_service() -> None:
    from pipeline.core.datasets import SERVICES, ZONES
    from pipeline.warehouses import bigquery, duckdb, postgres

    for dialect in (duckdb.DIALECT, postgres.DIALECT, bigquery.DIALECT):
        for schema in [dialect.trips_schema(s) for s in SERVICES.values()] + [ZONES.schema]:
            assert len(dialect.columns(schema)) == len(schema), dialect.name
            assert {f.type for f in schema} <= dialect.reported_types.keys()
    assert dict(postgres.DIALECT.columns(SCHEMA))[SOURCE_MONTH] == "DATE"
    assert postgres.DIALECT.reported_types[pa.timestamp("us")] == "timestamp without time zone"
    assert dict(bigquery.DIALECT.columns(SCHEMA))["fare_amount"] == "FLOAT64"


def test_a_lower_case_dialect_names_columns_and_renames_tlc_spelling_once() -> None:
    lower = replace(DIALECT, lower_case=True)
    assert [n for n, _ in lower.columns(SCHEMA)][:3] == [
        "vendorid", "tpep_pickup_datetime", "tpep_dropoff_datetime"]
    assert 'ADD COLUMN "airport_fee"' in lower.add_column("t", YELLOW.schema.field("airport_fee"))
    assert '"ratecodeid" BIGINT' in lower.create_table("yellow_tripdata", SCHEMA)
    # An earlier version's table: every mixed-case name is renamed, the rest left.
    old = [f.name for f in SCHEMA]
    renames = lower.renames(old)
    assert ("VendorID", "vendorid") in renames and ("PULocationID", "pulocationid") in renames
    assert all(old_name != new for old_name, new in renames)
    assert len(renames) == sum(n != n.lower() for n in old)
    # Renamed once: nothing more to do; a lower-case name already taken is not renamed onto.
    assert lower.renames([new for _, new in renames]) == []
    assert lower.renames(["VendorID", "vendorid"]) == []
    # The columns check expects the lower-case names.
    assert lower.check_columns("t", SCHEMA, [(n.lower(), TYPES[f.type]) for n, f in
                                             zip(old, SCHEMA, strict=True)]) == []
    with pytest.raises(WarehouseError, match="vendorid bigint is VendorID bigint"):
        lower.check_columns("t", SCHEMA, reported(SCHEMA))
    # TLC's spelling elsewhere: no renames.
    assert DIALECT.renames(old) == []
