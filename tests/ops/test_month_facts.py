"""A month's lake facts (``pipeline.lake.month_facts``), read without building a task, agree
with the month tasks' own completeness, whole or damaged (issue 29, item 1)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from luigi.execution_summary import LuigiStatusCode

from pipeline.core.datasets import SERVICES
from pipeline.core.manifest import SourceIdentity
from pipeline.lake.month_facts import LakeFacts, month_facts
from pipeline.lake.root import Lake
from pipeline.ops.facts import lake_facts
from pipeline.ops.month_state import MonthState, lake_problems, most_urgent, sink_problems
from pipeline.tasks.download import DownloadMonth
from pipeline.tasks.parquetize import ParquetizeMonth
from pipeline.tasks.parquetize import ParquetizeMonth as Parquetize
from tests.conftest import Env, Release

JAN = date(2021, 1, 1)


def facts(env: Env) -> LakeFacts:
    # The plain function, given the lake and the source format: no config is read.
    return month_facts(Lake(str(env.lake)), SERVICES["yellow"], JAN, "csv")


def agrees_with_the_tasks(found: LakeFacts) -> None:
    parquetize = Parquetize(service="yellow", month=JAN)
    download = DownloadMonth(service="yellow", month=JAN)
    assert found.parquet_complete == parquetize.complete()
    assert found.raw_complete == download.complete()
    assert found.raw_record == download.recorded_source()
    assert found.valid_manifest == parquetize.output().valid()
    assert found.manifest == parquetize.output().read()
    assert found == lake_facts("yellow", JAN)  # the ops edge reads the same lake


def test_month_facts_agree_with_the_tasks_whole_and_damaged(env: Env, release: Release) -> None:
    assert env.build(ParquetizeMonth(service="yellow", month=JAN)).status == \
        LuigiStatusCode.SUCCESS
    whole = facts(env)
    rows = release.of("yellow", "2021-01").rows
    assert (whole.parquet_complete, whole.raw_complete) == (True, True)
    assert whole.manifest is not None and whole.manifest.rows == rows
    assert whole.raw_record is not None and whole.raw_record.length == whole.raw_bytes
    assert whole.recorded_source == whole.manifest.source_identity
    agrees_with_the_tasks(whole)
    # The state is judged from the facts and the sinks' rows as values.
    assert lake_problems(whole) == [] and sink_problems({"duckdb": rows}, whole) == []
    assert sink_problems({"duckdb": rows - 1, "postgres": None}, whole) == [
        (MonthState.MISMATCH, f"MISMATCH duckdb {rows - 1:,} != manifest {rows:,}"),
        (MonthState.STAGE_MISSING, "postgres missing")]
    assert most_urgent([MonthState.STAGE_MISSING, MonthState.MISMATCH]) is MonthState.MISMATCH
    assert most_urgent([]) is MonthState.COMPLETE

    parquet = Path(ParquetizeMonth(service="yellow", month=JAN).output().parquet.path)
    raw = Path(DownloadMonth(service="yellow", month=JAN).output().path)
    record = Path(DownloadMonth(service="yellow", month=JAN).source_record.path)
    kept = parquet.read_bytes()

    # A truncated Parquet: the manifest is there but describes another file.
    parquet.write_bytes(kept[: len(kept) // 2])
    damaged = facts(env)
    assert (damaged.parquet_described, damaged.parquet_complete) == (False, False)
    assert damaged.valid_manifest is None and damaged.manifest == whole.manifest
    assert [kind for kind, _ in lake_problems(damaged)] == [MonthState.STAGE_MISSING]
    agrees_with_the_tasks(damaged)
    parquet.write_bytes(kept)

    # A source record of another version (a month re-published and fetched again): the
    # manifest was not made from the raw file there.
    kept_record = record.read_text()
    record.write_text(SourceIdentity('"other"', "then", whole.raw_bytes).to_json())
    refetched = facts(env)
    assert refetched.raw_complete and refetched.raw_record is not None
    assert (refetched.made_from_raw, refetched.parquet_complete) == (False, False)
    agrees_with_the_tasks(refetched)
    # A source record naming another length: the raw file is not the one it describes.
    record.write_text(SourceIdentity("other", "then", 12).to_json())
    swapped = facts(env)
    assert (swapped.raw_matches_record, swapped.raw_complete, swapped.raw_record) == (
        False, False, None)
    assert [kind for kind, _ in lake_problems(swapped)] == [MonthState.MISMATCH]
    agrees_with_the_tasks(swapped)
    record.write_text(kept_record)
    assert facts(env) == whole

    # The raw file deleted to save room contradicts nothing; without a manifest nothing is
    # complete and the lake records no source.
    raw.unlink()
    record.unlink()
    pruned = facts(env)
    assert (pruned.raw_bytes, pruned.made_from_raw, pruned.parquet_complete) == (None, True, True)
    agrees_with_the_tasks(pruned)
    shutil.rmtree(parquet.parent)
    gone = facts(env)
    assert (gone.manifest, gone.recorded_source, gone.parquet_complete) == (None, None, False)
    assert gone.absent and lake_problems(gone) == [] and sink_problems({"duckdb": None}, gone) == []
    assert sink_problems({"duckdb": rows}, gone) == [
        (MonthState.MISMATCH, f"duckdb has {rows:,} rows without a manifest")]
    agrees_with_the_tasks(gone)
