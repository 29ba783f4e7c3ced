"""A month damaged in a bucket lake after its load is named by ``status`` and repaired by
the next ``ingest`` (issue 26, Build 3), as in a local lake
(``tests/tasks/test_lake_integrity.py``): the GCS emulator, real commands, exact rows."""

from __future__ import annotations

import hashlib
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import Env, Release
from tests.lake.test_bucket_lake import Bucket, bucket, month_keys  # noqa: F401 (fixture)

KEY = "2021-01"


def ingest(env: Env) -> object:
    return env.command("taxi-pipeline", "ingest", "--month", KEY, "--services", "yellow",
                       "--local-scheduler")


def status_of(env: Env) -> tuple[int, str]:
    """``status``'s exit code and what exactly it found (its ``detail``)."""
    run = env.command("taxi-pipeline", "status", "--start", KEY, "--end", KEY, "--services",
                      "yellow", "--no-source-check", "--format", "json")
    (record,) = json.loads(run.stdout)
    assert (record["state"] == "complete") == (run.returncode == 0), record
    return run.returncode, record["detail"]


@pytest.mark.parametrize("damage", ["truncated", "replaced"])
def test_a_damaged_parquet_object_is_named_by_status_and_repaired_by_ingest(
        env: Env, bucket: Bucket, release: Release, damage: str) -> None:  # noqa: F811
    first = ingest(env)
    assert first.returncode == 0, first.stderr[-3000:]
    manifest_key, parquet_key = month_keys("yellow")[:2]
    blob = bucket.client().bucket(bucket.name).blob(f"{bucket.root.split('/', 3)[3]}/"
                                                    f"{parquet_key}")
    whole = bucket.read(parquet_key)
    if damage == "truncated":
        blob.upload_from_string(whole[: len(whole) // 2])
    else:  # another file of the same rows: written again, with another codec
        table = pq.read_table(pa.BufferReader(whole))
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="gzip")
        blob.upload_from_string(sink.getvalue().to_pybytes())
    code, state = status_of(env)
    assert code == 1
    assert state.startswith("parquet missing (run ingest: it converts the month again)")
    again = ingest(env)
    assert again.returncode == 0, again.stderr[-3000:]
    manifest = json.loads(bucket.read(manifest_key))
    assert hashlib.sha256(bucket.read(parquet_key)).hexdigest() == manifest["parquet_sha256"]
    assert status_of(env) == (0, "complete")
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM yellow_tripdata").fetchone()[0] == \
            release.of("yellow", KEY).rows
