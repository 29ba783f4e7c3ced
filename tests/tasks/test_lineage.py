"""OpenLineage run events, received by a real local HTTP server: every event checked as the
OpenLineage spec defines it, the datasets and row counts a month's tasks read and wrote, a
failing month's FAIL event, the API key kept out of logs, and a receiver that is down or
never answers costing one warning, never the month."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline import DownloadMonth, IngestMonth, ParquetizeMonth
from pipeline.core.datasets import SERVICES
from pipeline.tasks import lineage
from tests.conftest import Env, Release
from tests.mirror import ReleaseMirror
from tests.ports import free_port

DEC19 = date(2019, 12, 1)
UNPUBLISHED = date(2030, 1, 1)
GREEN = SERVICES["green"]
API_KEY = "ol-key-6c1f0e9b7d"
NAMESPACE = "nyc-taxi-pipeline"
SPEC = "https://openlineage.io/spec/"
# The facet each key names, as the spec's facet schemas are called.
FACET_SCHEMAS = {
    "parent": "ParentRunFacet", "nominalTime": "NominalTimeRunFacet",
    "errorMessage": "ErrorMessageRunFacet", "jobType": "JobTypeJobFacet",
    "schema": "SchemaDatasetFacet", "outputStatistics": "OutputStatisticsOutputDatasetFacet",
    # Added by the client itself: its version.
    "tags": "TagsRunFacet",
}


@dataclass
class Receiver:
    """A lineage receiver: POSTed events and their Authorization headers, in order."""

    url: str = ""
    events: list[dict] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    received = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with received.lock:
                received.events.append(json.loads(body))
                received.authorizations.append(self.headers.get("Authorization"))
                received.paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    received.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received
    server.shutdown()
    server.server_close()


def check_facets(facets: dict, where: str) -> None:
    """Every facet names its producer and the schema it follows (the spec's two required
    fields of a facet)."""
    for key, facet in facets.items():
        assert facet["_producer"] == lineage.PRODUCER, where
        expected = FACET_SCHEMAS[key]
        assert re.fullmatch(rf"{re.escape(SPEC)}facets/\d+-\d+-\d+/{expected}\.json"
                            rf"#/\$defs/{expected}", facet["_schemaURL"]), (where, facet)


def check_event(event: dict) -> None:
    """One RunEvent as the spec requires it."""
    assert event["eventType"] in ("START", "COMPLETE", "FAIL")
    assert datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00")).tzinfo
    assert uuid.UUID(event["run"]["runId"]).version == 7
    assert event["job"]["namespace"] == NAMESPACE and event["job"]["name"]
    assert event["producer"] == lineage.PRODUCER
    assert re.fullmatch(rf"{re.escape(SPEC)}\d+-\d+-\d+/OpenLineage\.json#/\$defs/RunEvent",
                        event["schemaURL"]), event["schemaURL"]
    check_facets(event["run"]["facets"], "run")
    check_facets(event["job"]["facets"], "job")
    for dataset in event["inputs"] + event["outputs"]:
        assert dataset["namespace"] and dataset["name"]
        check_facets(dataset.get("facets", {}), dataset["name"])
        check_facets(dataset.get("outputFacets", {}), dataset["name"])


def runs(events: list[dict]) -> dict[str, list[dict]]:
    """Events by job name, each a START followed by its end, paired by runId."""
    by_job: dict[str, list[dict]] = {}
    for event in events:
        by_job.setdefault(event["job"]["name"], []).append(event)
    return by_job


def dataset(events: list[dict], job: str, side: str) -> dict:
    (end,) = [e for e in events if e["job"]["name"] == job and e["eventType"] != "START"]
    (found,) = end[side]
    return found


def test_a_month_and_a_failing_month_send_spec_events(
        env: Env, receiver: Receiver, release: Release, mirror: ReleaseMirror,
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)  # the client's own debug lines too: no key there either
    env.configure(pipeline={"services": "green", "sinks": "duckdb"},
                  scheduler={"retry_count": "1"},
                  openlineage={"transport": "http", "url": receiver.url, "api_key": API_KEY})
    assert env.build(IngestMonth(month=DEC19)).status == LuigiStatusCode.SUCCESS
    assert env.build(DownloadMonth(service="green", month=UNPUBLISHED)).status == \
        LuigiStatusCode.FAILED

    events = receiver.events
    for event in events:
        check_event(event)
    assert set(receiver.paths) == {"/api/v1/lineage"}
    assert set(receiver.authorizations) == {f"Bearer {API_KEY}"}
    by_job = runs(events)
    assert sorted(by_job) == ["DownloadMonth.green", "LoadDuckDB.green", "LoadDuckDBZones",
                              "ParquetizeMonth.green", "Zones"]
    for job, job_events in by_job.items():
        ends = ["FAIL"] if job == "DownloadMonth.green" else []
        states = [e["eventType"] for e in job_events]
        assert states == ["START", "COMPLETE", "START", *ends] or states == ["START", "COMPLETE"]
        for start, end in zip(job_events[::2], job_events[1::2], strict=False):
            assert start["run"]["runId"] == end["run"]["runId"], job
            assert start["eventTime"] <= end["eventTime"]
    run_ids = [e["run"]["runId"] for e in events if e["eventType"] == "START"]
    assert len(set(run_ids)) == len(run_ids) == 6

    # One batch job is every run's parent; a month's runs have the month as nominal time.
    parents = {json.dumps(e["run"]["facets"]["parent"]) for e in events}
    assert len(parents) == 1
    parent = events[0]["run"]["facets"]["parent"]
    assert parent["job"]["namespace"] == NAMESPACE and uuid.UUID(parent["run"]["runId"])
    assert parent["run"]["runId"] not in run_ids
    assert len(events) == 12
    for i, event in enumerate(events):
        nominal = event["run"]["facets"].get("nominalTime")
        if event["job"]["name"] in ("Zones", "LoadDuckDBZones"):
            assert nominal is None
        elif i >= 10:  # the failing month's
            assert nominal["nominalStartTime"] == "2030-01-01T00:00:00.000Z"
        else:
            assert nominal == {**nominal, "nominalStartTime": "2019-12-01T00:00:00.000Z",
                               "nominalEndTime": "2020-01-01T00:00:00.000Z"}

    # The datasets: source URL -> raw file -> Parquet -> table, each output the next input.
    rows = release.of("green", "2019-12").rows
    host = f"file://{socket.gethostname()}"
    source = dataset(events[:10], "DownloadMonth.green", "inputs")
    base = urlsplit(mirror.base_url)
    assert source["namespace"] == f"http://127.0.0.1:{base.port}"
    assert source["name"] == f"{base.path}/green/green_tripdata_2019-12.csv.gz"
    raw = dataset(events[:10], "DownloadMonth.green", "outputs")
    raw_path = DownloadMonth(service="green", month=DEC19).output().path
    assert (raw["namespace"], raw["name"]) == (host, os.path.abspath(raw_path))
    assert raw["outputFacets"]["outputStatistics"]["size"] == Path(raw_path).stat().st_size
    assert dataset(events, "ParquetizeMonth.green", "inputs")["name"] == raw["name"]
    parquet = dataset(events, "ParquetizeMonth.green", "outputs")
    parquet_path = ParquetizeMonth(service="green", month=DEC19).output().parquet.path
    assert (parquet["namespace"], parquet["name"]) == (host, os.path.abspath(parquet_path))
    assert parquet["outputFacets"]["outputStatistics"] == {
        **parquet["outputFacets"]["outputStatistics"],
        "rowCount": rows, "size": Path(parquet_path).stat().st_size}
    assert [f["name"] for f in parquet["facets"]["schema"]["fields"]] == GREEN.columns
    loaded_from = dataset(events, "LoadDuckDB.green", "inputs")
    assert (loaded_from["namespace"], loaded_from["name"]) == (host, parquet["name"])
    table = dataset(events, "LoadDuckDB.green", "outputs")
    assert table["namespace"] == f"duckdb://{env.duckdb_path.absolute()}"
    assert table["name"] == "warehouse.main.green_tripdata"
    assert table["outputFacets"]["outputStatistics"]["rowCount"] == rows
    fields = {f["name"]: f["type"] for f in table["facets"]["schema"]["fields"]}
    assert fields["VendorID"] == "BIGINT" and fields["source_month"] == "DATE"
    zones = dataset(events, "LoadDuckDBZones", "outputs")
    assert zones["name"] == "warehouse.main.zones"
    assert zones["outputFacets"]["outputStatistics"]["rowCount"] == 265
    assert dataset(events, "Zones", "inputs")["name"].endswith("taxi_zone_lookup.csv")
    # A START names what will be written, not figures it cannot know yet.
    assert all(not d.get("outputFacets") for e in events if e["eventType"] == "START"
               for d in e["outputs"])

    # The failing month: its FAIL says why on one line.
    fail = events[-1]
    assert fail["eventType"] == "FAIL" and fail["job"]["name"] == "DownloadMonth.green"
    error = fail["run"]["facets"]["errorMessage"]
    assert error["programmingLanguage"] == "python"
    assert "2030-01" in error["message"] and "\n" not in error["message"]
    assert fail["outputs"][0]["name"].endswith("green_tripdata_2030-01.csv.gz")
    assert not fail["outputs"][0].get("outputFacets")

    assert API_KEY not in caplog.text
    out, err = capfd.readouterr()
    assert API_KEY not in out + err
    assert _lineage_warnings(caplog) == []


def _lineage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "pipeline.lineage" and r.levelno >= logging.WARNING]


def test_a_receiver_that_is_down_costs_one_warning_and_never_the_month(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://taxi:{API_KEY}@127.0.0.1:{free_port()}"  # nothing listens there
    env.configure(pipeline={"services": "green", "sinks": "duckdb"},
                  openlineage={"transport": "http", "url": url, "api_key": API_KEY})
    try:
        assert env.build(IngestMonth(month=DEC19)).status == LuigiStatusCode.SUCCESS
        (warning,) = _lineage_warnings(caplog)
        assert warning.startswith("OpenLineage events to http://127.0.0.1:")
        assert "none is tried for 60 s" in warning
        assert API_KEY not in caplog.text
    finally:
        _clear_down_marker()


def test_a_receiver_that_never_answers_costs_one_timeout(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """It takes the request and says nothing: the first event waits out the timeout, and
    no other event of the month is tried."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env.configure(pipeline={"services": "green", "sinks": "duckdb"},
                  openlineage={"transport": "http", "url": url, "timeout": "0.5"})
    try:
        assert env.build(IngestMonth(month=DEC19)).status == LuigiStatusCode.SUCCESS
        (warning,) = _lineage_warnings(caplog)
        assert "timed out" in warning.lower()
        assert len(accepted) == 1  # one event tried, the month's others skipped
    finally:
        listener.close()
        for connection in accepted:
            connection.close()
        _clear_down_marker()


def _clear_down_marker() -> None:
    import pipeline.config

    lineage._down_marker(pipeline.config.openlineage()).unlink(missing_ok=True)


def test_luigi_command_writes_events_to_a_file_from_each_task_process(env: Env) -> None:
    """``luigi --module pipeline``, every task in a forked process: each process's events
    land in the file, one JSON a line, under one batch run."""
    events_file = env.tmp / "lineage" / "events.jsonl"
    env.configure(pipeline={"services": "green", "sinks": "duckdb"},
                  worker={"force_multiprocessing": "true"},
                  openlineage={"transport": "file", "file": str(events_file)})
    result = env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2019-12",
                         "--local-scheduler")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    for event in events:
        check_event(event)
    assert [e["eventType"] for e in events].count("COMPLETE") == 5
    parents = {e["run"]["facets"]["parent"]["run"]["runId"] for e in events}
    assert len(parents) == 1
    assert {e["run"]["facets"]["parent"]["job"]["name"] for e in events} == {
        "luigi.IngestMonth"}
    for job, job_events in runs(events).items():
        assert [e["eventType"] for e in job_events] == ["START", "COMPLETE"], job
        assert job_events[0]["run"]["runId"] == job_events[1]["run"]["runId"]


def test_taxi_pipeline_job_prints_events_on_the_console(env: Env) -> None:
    """``taxi-pipeline ingest`` with ``transport = console``: each event one JSON line on
    stderr, under the job's own batch run."""
    env.configure(openlineage={"transport": "console"})
    run = env.command("taxi-pipeline", "ingest", "--month", "2019-12", "--services", "green",
                      "--local-scheduler")
    assert run.returncode == 0, run.stderr[-2000:]
    events = [json.loads(line) for line in run.stderr.splitlines()
              if line.startswith('{"eventTime"')]
    for event in events:
        check_event(event)
    assert sorted(e["job"]["name"] for e in events if e["eventType"] == "COMPLETE") == [
        "DownloadMonth.green", "LoadDuckDB.green", "LoadDuckDBZones", "ParquetizeMonth.green",
        "Zones"]
    assert {e["run"]["facets"]["parent"]["job"]["name"] for e in events} == {
        "taxi-pipeline.ingest"}


def test_off_by_default(env: Env, receiver: Receiver) -> None:
    """A url alone sends nothing: lineage is on only with a transport."""
    env.configure(pipeline={"services": "green", "sinks": "duckdb"},
                  openlineage={"url": receiver.url})
    assert env.build(IngestMonth(month=DEC19)).status == LuigiStatusCode.SUCCESS
    assert receiver.events == []


def test_unusable_settings_cost_one_warning_not_the_month(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """transport http without a url: the client refuses it; the month is loaded."""
    env.configure(pipeline={"services": "green", "sinks": "duckdb"},
                  openlineage={"transport": "http", "url": ""})
    try:
        assert env.build(IngestMonth(month=DEC19)).status == LuigiStatusCode.SUCCESS
        (warning,) = _lineage_warnings(caplog)
        assert warning.startswith("OpenLineage events to") and "url" in warning.lower()
    finally:
        _clear_down_marker()


def test_a_refetch_of_a_republished_month_sends_its_events(
        env: Env, receiver: Receiver, tmp_path: Path) -> None:
    """``refresh``'s RefetchMonth is a run of its own: START, then COMPLETE, reading the
    source URL and writing the lake's raw file, like the DownloadMonth it replaces."""
    from pipeline.demo import samples
    from pipeline.lake.month_targets import source_version
    from pipeline.tasks.download import RefetchMonth
    from tests import tlc_samples

    era = next(e for e in tlc_samples.ERAS if e.key == "green-2026-06")
    june = date(2026, 6, 1)
    release, root = tmp_path / "release", tmp_path / "tlc"
    samples.write_zones(release / "misc" / "taxi_zone_lookup.csv")
    file = root / "green_tripdata_2026-06.parquet"
    tlc_samples.write_era_month(file, era, 500, seed=6)
    with ReleaseMirror(release, tlc_root=root) as server:
        env.configure(source={"kind": "parquet", "parquet_base_url": server.parquet_base_url,
                              "zones_url": server.zones_url},
                      pipeline={"services": "green", "sinks": "duckdb"},
                      openlineage={"transport": "http", "url": receiver.url})
        download = DownloadMonth(service="green", month=june)
        assert env.build(download).status == LuigiStatusCode.SUCCESS
        fresh = tmp_path / "new.parquet"
        tlc_samples.write_era_month(fresh, era, 700, seed=7)
        server.republish(file, fresh.read_bytes())
        version = source_version(download.published())
        assert env.build(RefetchMonth(service="green", month=june, version=version)).status \
            == LuigiStatusCode.SUCCESS
        assert RefetchMonth(service="green", month=june, version=version).complete()
    assert Path(download.output().path).read_bytes() == fresh.read_bytes()
    refetch = [e for e in receiver.events if e["job"]["name"] == "RefetchMonth.green"]
    for event in refetch:
        check_event(event)
    assert [e["eventType"] for e in refetch] == ["START", "COMPLETE"]
    assert refetch[0]["run"]["runId"] == refetch[1]["run"]["runId"]
    (source,) = refetch[1]["inputs"]
    assert f"{source['namespace']}/{source['name']}".endswith("green_tripdata_2026-06.parquet")
    (written,) = refetch[1]["outputs"]
    assert written["name"].endswith("raw/green/green_tripdata_2026-06.parquet")
