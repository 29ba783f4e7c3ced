"""OpenLineage run events of every task, for a data platform (Marquez, DataHub,
OpenMetadata): what each task read and wrote.

When ``[openlineage] transport`` is set, each task's process sends, through the
``openlineage-python`` client, a START event when the task starts and a COMPLETE or FAIL
event when it ends, with the same ``runId``. The job is ``{task family}.{service}`` (just
the family for the zone lookup's tasks) in ``[openlineage] namespace``; the run carries
the month as its nominal time (its first instant to the next month's) and, as its parent,
the batch job that ran it (one run of ``taxi-pipeline ingest``, ``luigi --module pipeline
IngestMonth``..., or ``OPENLINEAGE_PARENT_ID=namespace/job/runId`` from an orchestrator).
Inputs and outputs are datasets named as OpenLineage's naming spec does: a source file by
its URL's ``scheme://host`` and path, a lake file by ``file://{host}`` and its absolute path
or ``gs://{bucket}`` and its key, a warehouse table by ``duckdb://{file}``,
``postgres://{host}:{port}`` or ``bigquery`` and ``{database}.{schema}.{table}``. Outputs
the registry describes carry its schema (``schema`` facet) and, at the end, their rows and
bytes (``outputStatistics``).

Lineage never costs a month: an event that cannot be sent (receiver down, refused, slow)
is logged once as a warning, with the receiver's address only (never the API key), and
this host tries no more events for ``RETRY_AFTER`` seconds, so a month waits at most one
``[openlineage] timeout`` for it. Wrapper tasks (IngestMonth, Backfill) send nothing.

Why one module of some 410 lines: the events, the names of their datasets and the
transport's back-off are one concept, what a task tells OpenLineage, and change together.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import luigi
import pyarrow as pa

from pipeline import config
from pipeline.core.datasets import ZONES
from pipeline.core.months import next_month
from pipeline.core.text import one_line, redact
from pipeline.core.version import __version__
from pipeline.lake.targets import LakeTarget
from pipeline.tasks.base import MonthTask
from pipeline.tasks.download import DownloadMonth, RefetchMonth
from pipeline.tasks.load import LoadBigQuery, MonthLoad, ZonesLoad
from pipeline.tasks.parquetize import ParquetizeMonth
from pipeline.tasks.upload import UploadMonth, bucket_parquet_url
from pipeline.tasks.zones import Zones
from pipeline.warehouses.base import SOURCE_MONTH, ZONES_TABLE, trips_table

log = logging.getLogger("pipeline.lineage")

# The spec asks for a URI naming the producer and its version; the project has no public
# URL of its own, so a URN (a URI, as the spec's schema requires) names the package.
PRODUCER = f"urn:python-package:nyc-taxi-pipeline:{__version__}"
# After an event could not be sent, none is tried on this host for this long.
RETRY_AFTER = 60.0
PARENT_ENV = "OPENLINEAGE_PARENT_ID"


@dataclass(frozen=True)
class Dataset:
    """One input or output of a task, as OpenLineage names it, with what is known of it."""

    namespace: str
    name: str
    columns: list[tuple[str, str]] | None = None
    rows: int | None = None
    size: int | None = None


@dataclass
class Datasets:
    inputs: list[Dataset] = field(default_factory=list)
    outputs: list[Dataset] = field(default_factory=list)


# --------------------------------------------------------------------------- naming


def url_dataset(url: str) -> Dataset:
    """A file on a web server: ``scheme://host[:port]`` and its path (no credentials, no
    query)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return Dataset(f"{parts.scheme}://{netloc}", parts.path or "/")


def lake_dataset(target: LakeTarget, columns: list[tuple[str, str]] | None = None,
                 rows: int | None = None, size: int | None = None) -> Dataset:
    """A lake file: ``gs://{bucket}`` and its key, or ``file://{host}`` and its path."""
    path = str(target.path)
    if path.startswith("gs://"):
        bucket, _, key = path[len("gs://"):].partition("/")
        return Dataset(f"gs://{bucket}", key, columns, rows, size)
    return Dataset(f"file://{socket.gethostname()}", os.path.abspath(path), columns, rows, size)


def arrow_columns(schema: pa.Schema) -> list[tuple[str, str]]:
    return [(f.name, str(f.type)) for f in schema]


# --------------------------------------------------------------------------- datasets


def _manifest_figures(task: MonthTask) -> tuple[int | None, int | None]:
    manifest = ParquetizeMonth(service=task.service, month=task.month).output().read()
    return (manifest.rows, manifest.parquet_bytes) if manifest else (None, None)


def _parquet(task: MonthTask, ended: bool) -> Dataset:
    rows, size = _manifest_figures(task) if ended else (None, None)
    parquet = ParquetizeMonth(service=task.service, month=task.month).output().parquet
    return lake_dataset(parquet, arrow_columns(task.dataset.schema), rows, size)


def _raw(task: MonthTask, ended: bool) -> Dataset:
    raw = DownloadMonth(service=task.service, month=task.month).output()
    return lake_dataset(raw, size=raw.size() if ended else None)


def datasets_of(task: luigi.Task, ended: bool) -> Datasets | None:
    """What the task reads and writes; None for a task that sends no events. ``ended``:
    the task succeeded, so its outputs' figures can be read."""
    if isinstance(task, DownloadMonth):
        return Datasets([url_dataset(task.url)], [_raw(task, ended)])
    if isinstance(task, RefetchMonth):  # refresh: the re-published file replaces the raw one
        return Datasets([url_dataset(task.download_month().url)], [_raw(task, ended)])
    if isinstance(task, ParquetizeMonth):
        return Datasets([_raw(task, False)], [_parquet(task, ended)])
    if isinstance(task, UploadMonth):
        rows, size = _manifest_figures(task) if ended else (None, None)
        copy = lake_dataset(task.targets(listed=False)[0], arrow_columns(task.dataset.schema),
                            rows, size)
        return Datasets([_parquet(task, False)], [copy])
    if isinstance(task, Zones):
        target = task.output()
        return Datasets([url_dataset(config.source().zones_url)],
                        [lake_dataset(target, arrow_columns(ZONES.schema),
                                      size=target.size() if ended else None)])
    if isinstance(task, MonthLoad):
        rows = _manifest_figures(task)[0] if ended else None
        trips = task.dataset.schema.append(pa.field(SOURCE_MONTH, pa.date32()))
        table = Dataset(*task.table_dataset(trips_table(task.dataset)),
                        task.table_columns(trips), rows)
        if isinstance(task, LoadBigQuery):  # loaded from the month's object in a bucket
            bucket, _, key = bucket_parquet_url(task.service, task.month)[5:].partition("/")
            return Datasets([Dataset(f"gs://{bucket}", key)], [table])
        return Datasets([_parquet(task, False)], [table])
    if isinstance(task, ZonesLoad):
        rows = None
        if ended:
            with contextlib.suppress(Exception):
                rows = task.engine().loaded(ZONES_TABLE, None, task.warehouse_settings())[0]
        table = task.table_dataset(ZONES_TABLE)
        return Datasets([lake_dataset(Zones().output())],
                        [Dataset(*table, task.table_columns(ZONES.schema), rows)])
    return None


def job_name(task: luigi.Task) -> str:
    service = getattr(task, "service", None)
    return f"{task.get_task_family()}.{service}" if isinstance(service, str) else \
        task.get_task_family()


# --------------------------------------------------------------------------- events


def _parent() -> tuple[str, str, str]:
    """(namespace, job, runId) of the batch job: an orchestrator's, from
    ``OPENLINEAGE_PARENT_ID``, else this process tree's own run (made once, at import, in
    the process that forks the task processes)."""
    given = os.environ.get(PARENT_ENV, "").strip()
    if given.count("/") >= 2:
        namespace, rest = given.split("/", 1)
        job, run_id = rest.rsplit("/", 1)
        return namespace, job, run_id
    return config.openlineage().namespace, _BATCH_JOB, _BATCH_RUN


def _batch_job() -> str:
    """The batch job's name: the command and its first argument (``taxi-pipeline.ingest``,
    ``luigi.IngestMonth``)."""
    command = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    first = next((a for a in sys.argv[1:] if not a.startswith("-") and a != "pipeline"), None)
    return f"{command}.{first}" if first else command


def _new_run_id() -> str:
    """A UUIDv7 (time-ordered, as OpenLineage recommends for run ids), from the standard
    library alone: the batch run's is made at import, when lineage may be off."""
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76
    value |= int.from_bytes(os.urandom(10), "big") & ((1 << 76) - 1)
    value = value & ~(0b11 << 62) | 0b10 << 62  # RFC 9562 variant
    return str(uuid.UUID(int=value))


_BATCH_JOB = _batch_job()
# Made where the package is imported: the process that forks the task processes.
_BATCH_RUN = _new_run_id()
_RUNS: dict[str, str] = {}  # task id -> the runId of its START, in the task's process


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _month_start(month: date) -> str:
    return f"{month:%Y-%m}-01T00:00:00.000Z"


def build_event(task: luigi.Task, state: str, found: Datasets,
                error: BaseException | None = None) -> object:
    """The RunEvent of ``task`` in ``state`` (START, COMPLETE, FAIL)."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
        set_producer,
    )
    from openlineage.client.facet_v2 import (
        error_message_run,
        job_type_job,
        nominal_time_run,
        output_statistics_output_dataset,
        parent_run,
        schema_dataset,
    )

    set_producer(PRODUCER)  # every facet's _producer
    settings = config.openlineage()
    run_id = _RUNS.pop(task.task_id, None) if state != "START" else None
    if run_id is None:
        run_id = _new_run_id()
    if state == "START":
        _RUNS[task.task_id] = run_id

    parent_namespace, parent_job, parent_run_id = _parent()
    run_facets: dict[str, object] = {"parent": parent_run.ParentRunFacet(
        run=parent_run.Run(runId=parent_run_id),
        job=parent_run.Job(namespace=parent_namespace, name=parent_job),
        root=parent_run.Root(run=parent_run.RootRun(runId=parent_run_id),
                             job=parent_run.RootJob(namespace=parent_namespace,
                                                    name=parent_job)))}
    month = getattr(task, "month", None)
    if isinstance(month, date):
        run_facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=_month_start(month), nominalEndTime=_month_start(next_month(month)))
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=one_line(error), programmingLanguage="python")

    def dataset_facets(d: Dataset) -> dict[str, object]:
        if d.columns is None:
            return {}
        return {"schema": schema_dataset.SchemaDatasetFacet(fields=[
            schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in d.columns])}

    def output_facets(d: Dataset) -> dict[str, object]:
        if state != "COMPLETE" or (d.rows is None and d.size is None):
            return {}
        return {"outputStatistics": output_statistics_output_dataset
                .OutputStatisticsOutputDatasetFacet(rowCount=d.rows, size=d.size)}

    return RunEvent(
        eventType=getattr(RunState, state),
        eventTime=_iso(datetime.now(UTC)),
        run=Run(runId=run_id, facets=run_facets),
        job=Job(namespace=settings.namespace, name=job_name(task), facets={
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration="LUIGI", jobType="TASK")}),
        inputs=[InputDataset(namespace=d.namespace, name=d.name, facets=dataset_facets(d))
                for d in found.inputs],
        outputs=[OutputDataset(namespace=d.namespace, name=d.name, facets=dataset_facets(d),
                               outputFacets=output_facets(d)) for d in found.outputs],
        producer=PRODUCER,
    )


# --------------------------------------------------------------------------- sending


def _receiver(settings: config.openlineage) -> str:
    """Where events go, as messages may name it (no credentials, no key)."""
    if settings.transport == "http":
        parts = urlsplit(settings.url.strip())
        host = parts.hostname or settings.url
        return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"
    return settings.file if settings.transport == "file" else "the console"


def _client(settings: config.openlineage) -> object:
    """An OpenLineage client for the configured transport."""
    from openlineage.client import OpenLineageClient

    if settings.transport == "http":
        from openlineage.client.transport.http import (
            ApiKeyTokenProvider,
            HttpConfig,
            HttpTransport,
            TokenProvider,
        )

        auth = (ApiKeyTokenProvider({"apiKey": settings.api_key}) if settings.api_key
                else TokenProvider({}))
        # No retries: a receiver that does not answer within the timeout is given up on.
        transport: object = HttpTransport(HttpConfig(
            url=settings.url.strip(), endpoint=settings.endpoint, timeout=settings.timeout,
            auth=auth, retry={"total": 0, "connect": 0, "read": 0, "status": 0,
                              "allowed_methods": ["POST"], "status_forcelist": []}))
    elif settings.transport == "file":
        from openlineage.client.transport.file import FileConfig, FileTransport

        Path(settings.file).parent.mkdir(parents=True, exist_ok=True)
        transport = FileTransport(FileConfig(log_file_path=settings.file, append=True))
    else:
        from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport

        # The client logs each event at INFO on its own logger, which luigi's logging
        # leaves unconfigured: shown on stderr, one JSON event a line.
        console = logging.getLogger("openlineage.client.transport.console")
        console.setLevel(logging.INFO)
        if not console.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            console.addHandler(handler)
            console.propagate = False
        transport = ConsoleTransport(ConsoleConfig())
    return OpenLineageClient(transport=transport)  # type: ignore[arg-type]


def _down_marker(settings: config.openlineage) -> Path:
    """A file whose recent mtime says the receiver failed: every task process on the host
    sees it (each runs in a fork of its own)."""
    key = hashlib.sha256(f"{settings.transport} {_receiver(settings)}".encode()).hexdigest()
    return Path(tempfile.gettempdir()) / f"taxi-pipeline-openlineage-down-{key[:16]}"


def _recently_down(marker: Path) -> bool:
    try:
        return time.time() - marker.stat().st_mtime < RETRY_AFTER
    except OSError:
        return False


_CLIENTS: dict[tuple[str, ...], object] = {}
_BAD_SETTINGS: list[str] = []


def send(task: luigi.Task, state: str, error: BaseException | None = None) -> None:
    """Build and send the task's event; never raises (see the module docstring)."""
    try:
        settings = config.openlineage()
    except Exception as e:  # a bad value in luigi.cfg: said once, never fails the task
        if not _BAD_SETTINGS:
            _BAD_SETTINGS.append(one_line(e))
            log.warning("[openlineage] settings unusable (%s): no lineage events", one_line(e))
        return
    if not settings.transport or isinstance(task, luigi.WrapperTask):
        return
    marker = _down_marker(settings)
    try:
        found = datasets_of(task, ended=state == "COMPLETE")
        if found is None:
            return
        event = build_event(task, state, found, error)
        if _recently_down(marker):
            log.debug("OpenLineage %s event of %s not sent: the receiver failed recently",
                      state, task.task_id)
            return
        key = (settings.transport, settings.url, settings.endpoint, settings.api_key,
               settings.file, str(settings.timeout))
        client = _CLIENTS.get(key) or _CLIENTS.setdefault(key, _client(settings))
        client.emit(event)  # type: ignore[attr-defined]
    except Exception as e:
        with contextlib.suppress(OSError):
            marker.touch()
        reason = redact(one_line(e), settings.api_key or None)
        log.warning("OpenLineage events to %s not sent (%s); none is tried for %d s",
                    _receiver(settings), reason, RETRY_AFTER)


def _on_start(task: luigi.Task) -> None:
    send(task, "START")


def _on_success(task: luigi.Task) -> None:
    send(task, "COMPLETE")


def _on_failure(task: luigi.Task, error: BaseException) -> None:
    send(task, "FAIL", error)


_HANDLERS: list[tuple[str, Callable[..., None]]] = [
    (luigi.Event.START, _on_start), (luigi.Event.SUCCESS, _on_success),
    (luigi.Event.FAILURE, _on_failure)]


def install() -> None:
    """Send every task's run events while ``[openlineage] transport`` is set (read at each
    event, so a process that never sets it pays one settings lookup per task). Installing
    twice installs once (luigi keeps handlers in a set)."""
    for event, handler in _HANDLERS:
        luigi.Task.event_handler(event)(handler)
