"""The contenders of ``bench_month.py``, each a child function that runs in a fresh
interpreter (``bench_month.py _child NAME ARGS_JSON RESULT_FILE``, ``measure.run_child``),
imports only what its contender needs and returns a JSON result: the sample month's
generator, the three converters, issue 15's hand-written script (one month, and month
after month), a warehouse's row count, and the release mirror (served from its own process
so that it never counts in a measured RSS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from measure import (
    Args,
    child,
    own_peak_rss_mb,
)

SERVICE = "yellow"
MONTH = "2021-01"
FILE_NAME = f"{SERVICE}_tripdata_{MONTH}.csv.gz"


def _sql_str(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


@child("generate")
def child_generate(a: Args) -> Args:
    """Write the sample month with ``pipeline.demo.samples.write_month`` (tmp name, then rename)."""
    from datetime import date

    from pipeline.demo.samples import write_month

    path = Path(a["path"])
    tmp = path.with_name(f".{path.name}.tmp")
    year, month = (int(x) for x in a.get("month", MONTH).split("-"))
    started = time.perf_counter()
    facts = write_month(tmp, SERVICE, date(year, month, 1), a["rows"], a["seed"])
    os.replace(tmp, path)
    return {"work_s": time.perf_counter() - started, "rows": facts.rows, "facts": asdict(facts)}


@child("schema")
def child_schema(a: Args) -> Args:
    """The CSV month's columns (the registry's yellow schema but the Parquet-only fee
    columns) as DuckDB column types, in file order."""
    import pyarrow as pa

    from pipeline.core.datasets import SERVICES

    names = {pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR",
             pa.timestamp("us"): "TIMESTAMP"}
    service = SERVICES[SERVICE]
    return {"columns": [[f.name, names[f.type]] for f in service.schema
                        if f.name not in service.parquet_only]}


def _columns_sql(columns: list[list[str]]) -> str:
    return "{" + ", ".join(f"{_sql_str(n)}: {_sql_str(t)}" for n, t in columns) + "}"


def _duckdb_copy_sql(raw: str, out: str, columns: list[list[str]]) -> str:
    return (f"COPY (SELECT * FROM read_csv({_sql_str(raw)}, header=true, "
            f"columns={_columns_sql(columns)})) TO {_sql_str(out)} (FORMAT parquet)")


@child("parquetize")
def child_parquetize(a: Args) -> Args:
    """The project's conversion step."""
    from datetime import date

    from pipeline.convert.parquetize import parquetize
    from pipeline.core.datasets import SERVICES

    import_rss = own_peak_rss_mb()
    started = time.perf_counter()
    stats = parquetize(SERVICES[SERVICE], date(2021, 1, 1), Path(a["raw"]), Path(a["out"]))
    return {"work_s": time.perf_counter() - started, "rows": stats.rows,
            "import_rss_mb": import_rss, "parquet_bytes": stats.parquet_bytes,
            "row_groups": stats.row_groups}


@child("duckdb")
def child_duckdb(a: Args) -> Args:
    """DuckDB's CSV reader with explicit types, straight into Parquet."""
    import duckdb

    con = duckdb.connect()
    for statement in script_sql("", "", [], a["threads"], "")[:2]:  # the script's settings
        con.execute(statement)
    import_rss = own_peak_rss_mb()
    started = time.perf_counter()
    (rows,) = con.execute(_duckdb_copy_sql(a["raw"], a["out"], a["columns"])).fetchone()
    work = time.perf_counter() - started
    con.close()
    return {"work_s": work, "rows": rows, "import_rss_mb": import_rss,
            "parquet_bytes": Path(a["out"]).stat().st_size}


@child("reference")
def child_reference(a: Args) -> Args:
    """The course's way: the whole file into one Arrow table, then one Parquet write."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    import_rss = own_peak_rss_mb()
    started = time.perf_counter()
    table = pacsv.read_csv(a["raw"])
    pq.write_table(table, a["out"])
    return {"work_s": time.perf_counter() - started, "rows": table.num_rows,
            "import_rss_mb": import_rss, "parquet_bytes": Path(a["out"]).stat().st_size}


def _curl(url: str, dest: Path) -> None:
    """The script's download: ``curl -sSf -o dest url``, with ``-L``: the mirror, like
    GitHub's release host, answers a month's URL with a redirect."""
    subprocess.run(["curl", "-sSfL", "-o", str(dest), url], check=True)


def script_sql(raw: str, parquet: str, columns: list[list[str]], threads: int,
               table: str, *, create: bool = True) -> list[str]:
    """The issue's script, statement by statement: an expert's bulk settings, ``COPY`` of
    the CSV.gz (explicit types) to Parquet, then ``CREATE TABLE ... AS SELECT`` from it
    (``INSERT INTO`` for the next months of a backfill, when ``create`` is false)."""
    load = (f"CREATE TABLE {table} AS SELECT * FROM read_parquet({_sql_str(parquet)})"
            if create else f"INSERT INTO {table} SELECT * FROM read_parquet({_sql_str(parquet)})")
    return [f"SET threads={int(threads)}", "SET preserve_insertion_order=false",
            _duckdb_copy_sql(raw, parquet, columns), load]


def run_script(url: str, work: Path, db: Path, columns: list[list[str]], threads: int,
               name: str, *, create: bool = True) -> Args:
    """One month through the script: curl, then one DuckDB session on the warehouse file
    (settings, ``COPY``, ``CTAS``); the seconds of each stage and the table's rows."""
    import duckdb

    raw, parquet = work / f"{name}.csv.gz", work / f"{name}.parquet"
    t = time.perf_counter()
    _curl(url, raw)
    fetch = time.perf_counter() - t
    *settings, copy, load = script_sql(str(raw), str(parquet), columns, threads,
                                       f"{SERVICE}_tripdata", create=create)
    con = duckdb.connect(str(db))
    try:
        for statement in settings:
            con.execute(statement)
        t = time.perf_counter()
        con.execute(copy)
        copy_s = time.perf_counter() - t
        t = time.perf_counter()
        con.execute(load)
        ctas_s = time.perf_counter() - t
        (rows,) = con.execute(f"SELECT count(*) FROM {SERVICE}_tripdata").fetchone()
    finally:
        con.close()
    return {"fetch_s": fetch, "copy_s": copy_s, "ctas_s": ctas_s, "rows": rows}


@child("handwritten")
def child_handwritten(a: Args) -> Args:
    """The issue's script: ``curl -sSf -o``, then in DuckDB ``SET threads``, ``SET
    preserve_insertion_order=false``, ``COPY (SELECT * FROM read_csv(..., header=true,
    columns={...})) TO 'y.parquet' (FORMAT parquet)`` and ``CREATE TABLE yellow_tripdata AS
    SELECT * FROM read_parquet('y.parquet')`` in the warehouse file."""
    work = Path(a["dir"])
    started = time.perf_counter()
    result = run_script(a["url"], work, work / "warehouse.duckdb", a["columns"], a["threads"],
                        "y")
    return {"work_s": time.perf_counter() - started, **result}


@child("script_backfill")
def child_script_backfill(a: Args) -> Args:
    """The issue's script run month after month into one warehouse file: ``CREATE TABLE ...
    AS`` for the first month, ``INSERT INTO`` for the next (the same statements otherwise)."""
    work = Path(a["dir"])
    stages = {"fetch_s": 0.0, "copy_s": 0.0, "ctas_s": 0.0}
    started = time.perf_counter()
    rows = 0
    for i, url in enumerate(a["urls"]):
        result = run_script(url, work, work / "warehouse.duckdb", a["columns"], a["threads"],
                            f"m{i:02d}", create=i == 0)
        rows = result.pop("rows")
        for key, value in result.items():
            stages[key] += value
    return {"work_s": time.perf_counter() - started, "rows": rows, **stages}


@child("count")
def child_count(a: Args) -> Args:
    """Rows of the trips table in a warehouse file (checks an IngestMonth run)."""
    import duckdb

    con = duckdb.connect(a["db"], read_only=True)
    (rows,) = con.execute(f"SELECT count(*) FROM {SERVICE}_tripdata").fetchone()
    con.close()
    return {"rows": rows}


@child("mirror")
def child_mirror(a: Args) -> Args:
    """Serve the release dir until stdin closes; the URLs go to ``a['ready']``."""
    from tests.mirror import ReleaseMirror

    mirror = ReleaseMirror(Path(a["root"]), bandwidth=int(a.get("bandwidth", 0))).start()
    ready = Path(a["ready"])
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps({"base_url": mirror.base_url, "zones_url": mirror.zones_url}))
    os.replace(tmp, ready)
    sys.stdin.read()
    mirror.stop()
    return {}

