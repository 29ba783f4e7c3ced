"""The registry's contract with the source's columns, and what a manifest records of the
source (issue 12)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import pyarrow as pa
import pytest

from pipeline.core.datasets import FHV, GREEN, SERVICES, YELLOW
from pipeline.core.manifest import Manifest, NewColumn, SourceIdentity
from pipeline.core.service import HeaderMismatch
from pipeline.demo.samples import header_for

MODERN = [c for c in YELLOW.columns if c not in ("cbd_congestion_fee", "request_source")]


def test_unknown_columns_are_named_not_refused_and_artefacts_are_dropped() -> None:
    plan = YELLOW.source_plan([*MODERN, "__index_level_0__", "tip_source", "__index_level_12__",
                               "__index_level_x__"])
    assert plan.new == ("tip_source", "__index_level_x__")
    assert plan.dropped == ("__index_level_0__", "__index_level_12__")
    assert set(plan.feeds) == set(MODERN)
    # Missing and repeated columns are still refused.
    with pytest.raises(HeaderMismatch, match="missing columns tpep_pickup_datetime"):
        YELLOW.source_plan([c for c in MODERN if c != "tpep_pickup_datetime"])
    with pytest.raises(HeaderMismatch, match="repeated columns airport_fee"):
        YELLOW.source_plan([*MODERN, "Airport_fee"])
    # A CSV header is held to the registry (the mirror is frozen).
    with pytest.raises(HeaderMismatch, match="unknown columns tip_source"):
        YELLOW.canonical_header([*header_for("yellow", date(2021, 1, 1)), "tip_source"])


def test_request_source_is_appended_last_as_optional_text() -> None:
    for service in (YELLOW, GREEN):
        assert service.schema[-1] == pa.field("request_source", pa.string())
        assert service.columns[-2] == "cbd_congestion_fee"
        assert "request_source" in service.optional and "request_source" in service.parquet_only
        # The CSV mirror's months never have it.
        assert "request_source" not in header_for(service.name, date(2021, 1, 1))
    assert "request_source" not in FHV.columns
    assert len({s.fingerprint for s in SERVICES.values()}) == len(SERVICES)


def test_a_change_upstream_is_told_by_etag_else_date_else_length() -> None:
    fetched = SourceIdentity('"a1"', "Mon, 01 Jun 2026 00:00:00 GMT", 100)
    assert fetched.change_from(fetched) is None
    assert SourceIdentity('"b2"', fetched.last_modified, 100).change_from(fetched) == \
        'ETag "a1" -> "b2"'
    # The same bytes written again (same ETag, later date) are not a change.
    assert replace(fetched, last_modified="Tue, 02 Jun 2026 00:00:00 GMT").change_from(
        fetched) is None
    no_etag = SourceIdentity(None, "Tue, 02 Jun 2026 00:00:00 GMT", 100)
    assert no_etag.change_from(replace(fetched, etag=None)) == (
        "Last-Modified Mon, 01 Jun 2026 00:00:00 GMT -> Tue, 02 Jun 2026 00:00:00 GMT")
    # A month fetched before identities were recorded: its length is all there is.
    legacy = SourceIdentity(None, None, 100)
    assert SourceIdentity('"b2"', None, 100).change_from(legacy) is None
    assert SourceIdentity('"b2"', None, 120).change_from(legacy) == "length 100 -> 120"


def manifest(**changes: object) -> Manifest:
    base = Manifest(service="yellow", month="2026-07", source_url="http://x/y.parquet",
                    source_bytes=100, source_sha256="s" * 64, rows=3, rows_outside_month=0,
                    schema_fingerprint=YELLOW.fingerprint, parquet_bytes=10,
                    parquet_sha256="p" * 64, row_groups=1, pipeline_version="1",
                    created_at="2026-12-02T00:00:00+00:00")
    return replace(base, **changes)


def test_the_manifest_records_the_source_and_its_new_columns() -> None:
    written = manifest(new_columns=(NewColumn("tip_source", "large_string", 5),),
                       dropped_columns=("__index_level_0__",), source_etag='"a1"',
                       source_last_modified="Mon, 01 Jun 2026 00:00:00 GMT")
    text = written.to_json()
    assert json.loads(text)["new_columns"] == [
        {"name": "tip_source", "type": "large_string", "non_null": 5}]
    assert Manifest.from_json(text) == written
    assert written.source_identity == SourceIdentity('"a1"', "Mon, 01 Jun 2026 00:00:00 GMT",
                                                     100)
    # A manifest written before issue 12 reads, with nothing recorded of the source.
    old = json.loads(manifest().to_json())
    for key in ("new_columns", "source_etag", "source_last_modified"):
        del old[key]
    assert Manifest.from_json(json.dumps(old)) == manifest()


def test_a_manifest_matches_only_the_raw_file_it_was_made_from() -> None:
    made = manifest(source_etag='"a1"', source_last_modified="Mon, 01 Jun 2026 00:00:00 GMT")
    record = made.source_identity
    assert made.made_from(100, record)
    assert made.made_from(100, None)  # no record beside the raw file: its length decides
    assert not made.made_from(101, record)
    assert not made.made_from(100, replace(record, etag='"b2"'))
    assert not made.made_from(100, replace(record, last_modified="Tue, 02 Jun 2026 x"))
