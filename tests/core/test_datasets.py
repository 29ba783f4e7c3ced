from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.core.datasets import FHV, FHVHV, FHVHV_CSV_COLUMNS, GREEN, SERVICES, YELLOW, service
from pipeline.core.service import HeaderMismatch, schema_fingerprint
from pipeline.demo.samples import header_for


def test_fhv_headers_of_every_year_map_to_one_canonical_spelling() -> None:
    from datetime import date

    odd = header_for("fhv", date(2019, 1, 1))
    assert "dropOff_datetime" in odd and "PUlocationID" in odd
    assert FHV.canonical_header(odd) == FHV.columns
    assert FHV.canonical_header(header_for("fhv", date(2020, 1, 1))) == FHV.columns
    assert FHV.canonical_header([c.upper() for c in FHV.columns]) == FHV.columns


def test_types_follow_the_registry_rule() -> None:
    for s in SERVICES.values():
        for f in s.schema:
            if f.name.endswith(("ID", "_type", "_count")):
                assert f.type == pa.int64(), f.name
            if f.name.endswith("_datetime"):
                assert f.type == pa.timestamp("us"), f.name
    assert GREEN.schema.field("ehail_fee").type == pa.float64()
    assert YELLOW.schema.field("store_and_fwd_flag").type == pa.string()


def test_optional_column_may_be_missing_but_required_may_not() -> None:
    without_fee = [c for c in GREEN.columns if c != "ehail_fee"]
    assert GREEN.canonical_header(without_fee) == without_fee
    with pytest.raises(HeaderMismatch, match="missing columns lpep_pickup_datetime"):
        GREEN.canonical_header([c for c in GREEN.columns if c != "lpep_pickup_datetime"])
    with pytest.raises(HeaderMismatch, match="unknown columns surprise"):
        YELLOW.canonical_header([*YELLOW.columns, "surprise"])
    with pytest.raises(HeaderMismatch, match="repeated columns VendorID"):
        YELLOW.canonical_header([*YELLOW.columns, "vendorid"])


def test_unknown_service_is_named() -> None:
    with pytest.raises(ValueError, match="unknown service 'purple'"):
        service("purple")


def test_schema_fingerprints_are_stable_and_distinct() -> None:
    # Stable: the same names and types give the same fingerprint, whatever object holds them
    # (a manifest written by an earlier run is compared with a schema built anew).
    rebuilt = pa.schema([pa.field(f.name, f.type) for f in YELLOW.schema])
    assert rebuilt is not YELLOW.schema
    assert schema_fingerprint(rebuilt) == YELLOW.fingerprint
    # Sensitive to every change that makes a published file differ.
    renamed = rebuilt.set(0, pa.field("vendorid", pa.int64()))
    retyped = rebuilt.set(0, pa.field("VendorID", pa.int32()))
    reordered = pa.schema([rebuilt.field(1), rebuilt.field(0), *list(rebuilt)[2:]])
    fingerprints = {schema_fingerprint(s) for s in (rebuilt, renamed, retyped, reordered)}
    assert len(fingerprints) == 4
    assert len({s.fingerprint for s in SERVICES.values()}) == len(SERVICES)


def test_fhvhv_takes_the_csv_mirrors_seven_columns_and_tlcs_parquet_columns() -> None:
    from datetime import date

    header = header_for("fhvhv", date(2019, 2, 1))
    assert ",".join(header) == ("hvfhs_license_num,dispatching_base_num,pickup_datetime,"
                                "dropoff_datetime,PULocationID,DOLocationID,SR_Flag")
    assert FHVHV.canonical_header(header) == list(FHVHV_CSV_COLUMNS)
    assert FHVHV.canonical_header([c.lower() for c in header]) == list(FHVHV_CSV_COLUMNS)
    # SR_Flag comes last (warehouses add it to tables made before it), typed as fhv's.
    assert FHVHV.columns[-1] == "SR_Flag" and "SR_Flag" in FHVHV.optional
    assert FHVHV.schema.field("SR_Flag").type == FHV.schema.field("SR_Flag").type
    assert len(FHVHV.parquet_only) == len(FHVHV.columns) - 7
    # TLC's 24 columns (no SR_Flag) still plan; a Parquet file lacking trip_miles does not.
    tlc = [c for c in FHVHV.columns if c not in ("SR_Flag", "cbd_congestion_fee")]
    assert len(tlc) == 24 and set(FHVHV.source_plan(tlc).feeds) == set(tlc)
    with pytest.raises(HeaderMismatch, match="missing columns trip_miles"):
        FHVHV.source_plan([c for c in tlc if c != "trip_miles"])
    # The seven-column form is not a licence to lose a column both forms carry.
    with pytest.raises(HeaderMismatch, match="missing columns PULocationID"):
        FHVHV.canonical_header([c for c in header if c != "PULocationID"])
    with pytest.raises(HeaderMismatch, match="unknown columns Affiliated_base_number"):
        FHVHV.canonical_header([*header, "Affiliated_base_number"])


def test_schema_fingerprints_are_those_every_published_manifest_records() -> None:
    """The column tables are the registry's source: a change to a name, a type or the order
    changes the fingerprint, which a lake's existing manifests would no longer match."""
    assert {s.name: s.fingerprint for s in SERVICES.values()} == {
        "yellow": "19ce5436c9672f77", "green": "1cf72365b479e320",
        "fhv": "98dcd2523241df26", "fhvhv": "4ded51e56387a0f4",
    }


def test_column_table_tags_give_pickup_optional_and_parquet_only_columns() -> None:
    assert (YELLOW.pickup_column, GREEN.pickup_column, FHV.pickup_column,
            FHVHV.pickup_column) == ("tpep_pickup_datetime", "lpep_pickup_datetime",
                                     "pickup_datetime", "pickup_datetime")
    assert YELLOW.parquet_only == {"airport_fee", "cbd_congestion_fee", "request_source"}
    assert YELLOW.parquet_only <= YELLOW.optional
    assert {"PULocationID", "improvement_surcharge"} <= YELLOW.optional
    assert not FHV.optional and not FHV.parquet_only
    assert "trip_miles" in FHVHV.parquet_only and "trip_miles" not in FHVHV.optional


def test_a_column_table_with_an_unknown_kind_or_tag_fails_at_import() -> None:
    from pipeline.core.service import column_table

    assert column_table("a id  # note\n\n b money optional")[1]["optional"] == ["b"]
    with pytest.raises(KeyError):
        column_table("a number")
    with pytest.raises(KeyError):
        column_table("a id mandatory")
