"""Settings, one ``luigi.Config`` class per ``luigi.cfg`` section.

Class names are the section names (luigi's own convention: ``[core]`` is ``class core``),
so ``[source] timeout`` is ``source().timeout`` and ``--source-timeout`` on the command
line. The defaults work on a laptop with no cloud account; luigi.cfg documents each key.
"""

from __future__ import annotations

from datetime import date

import luigi

from pipeline.core.datasets import NEW_COLUMNS, SERVICES

RELEASES_URL = "https://github.com/DataTalksClub/nyc-tlc-data/releases/download"
TLC_PARQUET_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"
SOURCE_KINDS = ("csv", "parquet", "auto")


class pipeline(luigi.Config):
    services: str = luigi.Parameter(
        default="yellow,green",
        description=f"services IngestMonth covers, comma-separated: {', '.join(SERVICES)}",
    )
    sinks: str = luigi.Parameter(
        default="duckdb",
        description="where each month is published, comma-separated: duckdb, postgres, "
                    "gcs, bigquery (bigquery loads from the bucket, so it implies gcs)",
    )


class source(luigi.Config):
    base_url: str = luigi.Parameter(
        default=RELEASES_URL,
        description="release root: {base_url}/{service}/{service}_tripdata_{YYYY-MM}.csv.gz",
    )
    kind: str = luigi.ChoiceParameter(
        default="auto", choices=SOURCE_KINDS, var_type=str,
        description="csv (the CSV.gz mirror), parquet (TLC's own files) or auto: CSV for "
                    "the months csv_first_month .. csv_last_month, TLC Parquet otherwise",
    )
    parquet_base_url: str = luigi.Parameter(
        default=TLC_PARQUET_URL,
        description="TLC Parquet root: {parquet_base_url}/{service}_tripdata_{YYYY-MM}.parquet",
    )
    csv_first_month: str = luigi.Parameter(
        default="2019-01",
        description="with kind auto: the first month the CSV mirror publishes (YYYY-MM)",
    )
    csv_last_month: str = luigi.Parameter(
        default="2021-07",
        description="with kind auto: the last month the CSV mirror publishes (YYYY-MM)",
    )
    zones_url: str = luigi.Parameter(
        default=f"{RELEASES_URL}/misc/taxi_zone_lookup.csv",
        description="the taxi zone lookup CSV",
    )
    timeout: float = luigi.FloatParameter(
        default=60.0, description="seconds to wait for a connection and for each read"
    )
    retries: int = luigi.IntParameter(
        default=5, description="attempts per download, the first included"
    )
    backoff: float = luigi.FloatParameter(
        default=1.0,
        description="seconds before the first retry; doubles each time, with random jitter",
    )
    backoff_max: float = luigi.FloatParameter(
        default=60.0, description="longest wait between two attempts (Retry-After included)"
    )
    new_columns: str = luigi.ChoiceParameter(
        default="keep-raw", choices=NEW_COLUMNS, var_type=str,
        description="a TLC Parquet column the registry does not know: keep-raw (publish the "
                    "month with the registry's columns, name it in the manifest, keep it in "
                    "the raw file) or refuse (fail the month)",
    )

    def format_of(self, month: date) -> str:
        """``csv`` or ``parquet``: the source a month is fetched from. With ``auto`` the rule
        is fixed, not probed: CSV for the months the mirror publishes (``csv_first_month`` ..
        ``csv_last_month``), Parquet before and after, so every process (and every re-run)
        agrees on a month's raw file."""
        if self.kind != "auto":
            return self.kind
        mirrored = self.csv_first_month.strip() <= f"{month:%Y-%m}" <= self.csv_last_month.strip()
        return "csv" if mirrored else "parquet"


class lake(luigi.Config):
    root: str = luigi.Parameter(
        default="data/lake",
        description="the lake: a local directory, or gs://bucket/prefix (everything the lake "
                    "holds in the bucket; local disk only scratch); any other URL is refused",
    )
    scratch: str = luigi.Parameter(
        default="",
        description="local directory where tasks stage files (a bucket lake's downloads, "
                    "Parquet before its upload, months loaded into DuckDB or PostgreSQL); "
                    "empty = taxi-pipeline-scratch under the system temp dir",
    )


class duckdb(luigi.Config):
    path: str = luigi.Parameter(
        default="data/warehouse.duckdb", description="embedded warehouse file"
    )
    memory_limit: str = luigi.Parameter(
        default="512MB", description="DuckDB memory_limit while loading (bounds the worker's RSS)"
    )
    threads: int = luigi.IntParameter(default=2, description="DuckDB threads while loading")
    lock_timeout: float = luigi.FloatParameter(
        default=120.0,
        description="seconds to wait for another process that holds the file's write lock",
    )


class postgres(luigi.Config):
    url: str = luigi.Parameter(
        default="",
        # Hidden from the visualiser: a url may carry a password.
        visibility=luigi.parameter.ParameterVisibility.PRIVATE,
        description="postgresql://user@host:port/db (password: PGPASSWORD or ~/.pgpass)",
    )
    connect_timeout: int = luigi.IntParameter(
        default=10, description="seconds to wait for a connection to the server"
    )


class gcs(luigi.Config):
    bucket: str = luigi.Parameter(
        default="",
        description="bucket a local lake's Parquet months are copied to (sink gcs, and the "
                    "bigquery sink's source when the lake is local)",
    )
    prefix: str = luigi.Parameter(
        default="nyc-tlc", description="folder in the bucket: {prefix}/parquet/{service}/..."
    )
    chunk_mib: float = luigi.FloatParameter(
        default=100.0,
        description="resumable upload chunk in MiB, a multiple of 0.25 (every upload: the "
                    "gcs sink's and a bucket lake's)",
    )
    timeout: float = luigi.FloatParameter(
        default=60.0, description="seconds to connect, and for each request to GCS"
    )


class bigquery(luigi.Config):
    project: str = luigi.Parameter(default="", description="Google Cloud project of the dataset")
    dataset: str = luigi.Parameter(default="", description="BigQuery dataset of the tables")
    location: str = luigi.Parameter(
        default="", description="the dataset's location (US, EU, europe-west1...); empty = any"
    )
    endpoint: str = luigi.Parameter(
        default="", description="API endpoint; empty = Google's; an emulator's URL in tests"
    )


class retry_backoff(luigi.Config):
    """``taxi-pipeline scheduler``: how far the growing retry delay may grow."""

    max_delay: float = luigi.FloatParameter(
        default=300.0, description="longest pause before a failed task is retried (seconds)"
    )


class luigid(luigi.Config):
    """``taxi-pipeline scheduler``: where luigid writes its log."""

    logdir: str = luigi.Parameter(
        default="data/scheduler/logs", description="directory of luigid's log file"
    )
