"""Settings, one ``luigi.Config`` class per ``luigi.cfg`` section.

Class names are the section names (luigi's own convention: ``[core]`` is ``class core``),
so ``[source] timeout`` is ``source().timeout`` and ``--source-timeout`` on the command
line. The defaults work on a laptop with no cloud account; luigi.cfg documents each key.
"""

from __future__ import annotations

from datetime import date

import luigi

from pipeline.core.datasets import SERVICES
from pipeline.core.errors import SettingsError
from pipeline.core.months import BadParameter, parse_names
from pipeline.core.service import NEW_COLUMNS

RELEASES_URL = "https://github.com/DataTalksClub/nyc-tlc-data/releases/download"
TLC_PARQUET_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"
SOURCE_KINDS = ("csv", "parquet", "auto")


class pipeline(luigi.Config):
    """``[pipeline]``: what IngestMonth covers: which services, into which sinks."""

    services: str = luigi.Parameter(
        default="yellow,green",
        description=f"services IngestMonth covers, comma-separated: {', '.join(SERVICES)}",
    )
    sinks: str = luigi.Parameter(
        default="duckdb",
        description="where each month is published, comma-separated: duckdb, postgres, "
                    "gcs, bigquery (bigquery loads from the bucket, so it implies gcs)",
    )
    convert_while_downloading: bool = luigi.BoolParameter(
        default=True, parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="convert a CSV month while DownloadMonth downloads it (the gzip is "
                    "inflated once) and commit the Parquet at the month's key; "
                    "ParquetizeMonth then takes it and writes the manifest",
    )


class source(luigi.Config):
    """``[source]``: where months are downloaded from, and how hard to try."""

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
    """``[lake]``: where the lake lives (a directory or a bucket) and where tasks stage files."""

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
    """``[duckdb]``: the embedded warehouse file and the bounds of a load into it."""

    path: str = luigi.Parameter(
        default="data/warehouse.duckdb", description="embedded warehouse file"
    )
    memory_limit: str = luigi.Parameter(
        default="300MB", description="DuckDB memory_limit while loading (bounds the worker's RSS)"
    )
    threads: int = luigi.IntParameter(default=2, description="DuckDB threads while loading")
    lock_timeout: float = luigi.FloatParameter(
        default=120.0,
        description="seconds to wait for another process that holds the file's write lock",
    )
    schema: str = luigi.Parameter(
        default="main",
        description="schema of the pipeline's tables in the file (trips, zones, "
                    "pipeline_loads), created when missing",
    )


class postgres(luigi.Config):
    """``[postgres]``: the PostgreSQL warehouse (sink ``postgres``)."""

    url: str = luigi.Parameter(
        default="",
        # Hidden from the visualiser: a url may carry a password.
        visibility=luigi.parameter.ParameterVisibility.PRIVATE,
        description="postgresql://user@host:port/db (password: PGPASSWORD or ~/.pgpass)",
    )
    connect_timeout: int = luigi.IntParameter(
        default=10, description="seconds to wait for a connection to the server"
    )
    schema: str = luigi.Parameter(
        default="public",
        description="schema of the pipeline's tables (trips, zones, pipeline_loads), "
                    "created when missing",
    )


class gcs(luigi.Config):
    """``[gcs]``: the bucket a local lake's months are copied to (sink ``gcs``)."""

    bucket: str = luigi.Parameter(default="", description=(
        "bucket a local lake's Parquet months are copied to (sink gcs, and the bigquery "
        "sink's source when the lake is local)"))
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
    """``[bigquery]``: the BigQuery dataset months are loaded into (sink ``bigquery``)."""

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
    log_max_mb: float = luigi.FloatParameter(
        default=20.0, description="luigi-server.log is rotated when it reaches this size (MB)")
    log_backups: int = luigi.IntParameter(
        default=5, description="rotated luigid logs kept (luigi-server.log.1 ...)")


def _share(default: float, rows: str) -> luigi.FloatParameter:
    """A ``[quality]`` threshold: the share of a month's ``rows`` above which a check fires."""
    return luigi.FloatParameter(default=default, description=f"share of {rows}")


class quality(luigi.Config):
    """``[quality]``: thresholds of the per-month data-quality checks, each a share of the
    month's rows (0.02 = 2 %). Above its threshold a check warns on one line; a check named
    in ``blocking`` fails the month instead, before anything is published."""

    negative_fare_or_total: float = _share(0.02, "rows with a negative fare or total")
    dropoff_before_pickup: float = _share(0.01, "rows whose dropoff comes before the pickup")
    pickup_outside_month: float = _share(0.01, "rows whose pickup lies outside the month")
    zone_id_invalid: float = _share(0.01, "rows with a zone id outside 1..265 or null")
    distance_over_1000_miles: float = _share(0.005, "rows with a trip over 1,000 miles")
    passenger_count_invalid: float = _share(0.05, "rows with a passenger count of 0 or over 9")
    null_id: float = _share(0.10, "rows with a null vendor id, base or licence")
    blocking: str = luigi.Parameter(
        default="", description="checks that fail the month above their threshold, "
                                "comma-separated, or 'all'; empty: every check only warns")

    def thresholds(self) -> dict[str, float]:
        """Check -> share of a month's rows; refuses a share outside 0..1."""
        shares = {name: getattr(self, name) for name, _ in self.get_params()
                  if name != "blocking"}
        bad = [f"{name} = {share}" for name, share in shares.items() if not 0 <= share <= 1]
        if bad:
            raise SettingsError(f"[quality] thresholds are shares of a month's rows, 0 to 1: "
                                f"{', '.join(bad)}")
        return shares

    def blocking_checks(self) -> frozenset[str]:
        """The checks that fail a month; refuses a name that is no check."""
        checks = self.thresholds()
        if self.blocking.strip() == "all":
            return frozenset(checks)
        if not self.blocking.strip():
            return frozenset()
        try:
            return frozenset(parse_names(self.blocking, checks, "[quality] blocking check"))
        except BadParameter as e:
            raise SettingsError(str(e)) from None


class notify(luigi.Config):
    """``[notify]``: where a batch job that ends with failures sends its one alert, besides
    the e-mail of luigi's ``[email]``/``[smtp]`` settings."""

    webhook_url: str = luigi.Parameter(
        default="",
        # Hidden from the visualiser: a Slack or Mattermost hook URL is itself the secret.
        visibility=luigi.parameter.ParameterVisibility.PRIVATE,
        description="URL the alert is POSTed to as JSON {\"text\": ...} (Slack, Mattermost "
                    "incoming webhooks); empty: no webhook",
    )
    webhook_timeout: float = luigi.FloatParameter(
        default=10.0, description="seconds to connect to the webhook, and to wait for its answer")
    stale_after_days: float = luigi.FloatParameter(
        default=0.0,
        description="catch-up alerts (and exits 1) when a month the source published more "
                    "than this many days ago is still not complete; 0: no freshness check")


OPENLINEAGE_TRANSPORTS = ("", "http", "file", "console")


class openlineage(luigi.Config):
    """``[openlineage]``: where each task's OpenLineage run events go (off when
    ``transport`` is empty)."""

    transport: str = luigi.ChoiceParameter(
        default="", choices=OPENLINEAGE_TRANSPORTS, var_type=str,
        description="http (POST to url), file (append to file, one JSON event a line), "
                    "console (log each event); empty: no events",
    )
    url: str = luigi.Parameter(
        default="", description="with transport http: the receiver's root, e.g. "
                                "http://marquez:5000 (events go to {url}/{endpoint})")
    endpoint: str = luigi.Parameter(
        default="api/v1/lineage", description="with transport http: path of the receiver's API")
    api_key: str = luigi.Parameter(
        default="",
        # Hidden from the visualiser; never logged.
        visibility=luigi.parameter.ParameterVisibility.PRIVATE,
        description="with transport http: sent as 'Authorization: Bearer <key>'; empty: none",
    )
    file: str = luigi.Parameter(
        default="", description="with transport file: the file events are appended to")
    namespace: str = luigi.Parameter(
        default="nyc-taxi-pipeline", description="namespace of the pipeline's jobs")
    timeout: float = luigi.FloatParameter(
        default=5.0,
        description="seconds to connect to the receiver and to wait for its answer; an "
                    "unreachable receiver costs one warning, and no more events are tried "
                    "for a minute")
