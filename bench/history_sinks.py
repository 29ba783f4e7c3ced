"""The sinks of ``bench_history.py`` beyond DuckDB, started by the benchmark and stopped
whatever happens: a throwaway PostgreSQL (``tests/fixtures_postgres.py``'s ``Cluster``),
fake-gcs-server (``servers.FakeGCS``, filesystem backend) and bqemulator
(``tests/bqemulator_launcher.py``, reading ``gs://`` objects from fake-gcs-server's files),
as the tests start them. Each scale gets empty stores: its own database, bucket and dataset,
with the ``[postgres]``, ``[gcs]`` and ``[bigquery]`` settings the tests use.

A sink whose server cannot run on this machine is dropped with one line saying why
(BigQuery loads from the bucket, so it needs fake-gcs-server too), and the others run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from measure import PROJECT, PYTHON
from servers import FakeGCS, Settings, free_port, wait_for

SINKS = ("duckdb", "postgres", "gcs", "bigquery")
BQ_PROJECT = "test"
BQ_LOCATION = "US"
BQEMULATOR = PROJECT / "tests" / "bqemulator_launcher.py"


class SinkServers(contextlib.ExitStack):
    """The servers of ``sinks`` (a subset of SINKS), started on entering, stopped on exit.
    ``sinks`` afterwards lists those that run; ``dropped`` says why the others do not."""

    def __init__(self, sinks: list[str], work: Path) -> None:
        super().__init__()
        unknown = sorted(set(sinks) - set(SINKS))
        if unknown:
            raise SystemExit(f"--sinks: unknown {', '.join(unknown)} (known: {', '.join(SINKS)})")
        self.wanted, self.work = sinks, work
        self.sinks: list[str] = []
        self.dropped: list[str] = []
        self.cluster: Any = None
        self.gcs: FakeGCS | None = None
        self.bq_url = ""

    def __enter__(self) -> SinkServers:
        super().__enter__()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _drop(self, sink: str, why: str) -> None:
        line = f"{sink}: not run on this machine: {why}"
        self.dropped.append(line)
        print(line, flush=True)

    def _start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        if "postgres" in self.wanted:
            self._start_postgres()
        if "gcs" in self.wanted or "bigquery" in self.wanted:
            self._start_gcs()
        if "bigquery" in self.wanted:
            if self.gcs is None:
                self._drop("bigquery", "it loads from the bucket, and fake-gcs-server did not run")
            else:
                self._start_bigquery()
        self.sinks = [s for s in self.wanted
                      if s == "duckdb" or (s == "postgres" and self.cluster is not None)
                      or (s == "gcs" and self.gcs is not None) or (s == "bigquery" and self.bq_url)]

    def _start_postgres(self) -> None:
        from tests.fixtures_postgres import Cluster, find_bin_dir

        bin_dir = find_bin_dir()
        if bin_dir is None:
            self._drop("postgres", "no PostgreSQL server binaries (`make system-deps`)")
            return
        try:
            self.cluster = Cluster.start(bin_dir)
        except RuntimeError as e:
            self._drop("postgres", str(e).splitlines()[0])
            return
        self.callback(self.cluster.stop)

    def _start_gcs(self) -> None:
        try:
            self.gcs = FakeGCS(self.work / "gcs", self.work / "fake-gcs-server.log")
        except (ImportError, OSError, SystemExit) as e:
            self._drop("gcs", str(e).splitlines()[0] if str(e) else type(e).__name__)
            return
        self.callback(self.gcs.stop)
        # Every process the benchmark starts (luigid, the jobs) talks to the emulator.
        os.environ["STORAGE_EMULATOR_HOST"] = self.gcs.url
        self.callback(os.environ.pop, "STORAGE_EMULATOR_HOST", None)

    def _start_bigquery(self) -> None:
        assert self.gcs is not None
        port, log = free_port(), self.work / "bqemulator.log"
        environment = {**os.environ, "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
                       "BQEMU_GCS_LOCAL_ROOT": str(self.gcs.root), "BQEMU_LOG_LEVEL": "warning"}
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [PYTHON, str(BQEMULATOR), "start", "--rest-port", str(port), "--grpc-port",
                 str(free_port()), "--project", BQ_PROJECT],
                env=environment, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.callback(_kill, process)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(f"{url}/bigquery/v2/projects/{BQ_PROJECT}/datasets", process, log)
        except SystemExit as e:
            self._drop("bigquery", str(e).strip().splitlines()[-1])
            return
        self.bq_url = url

    def settings(self, name: str) -> Settings:
        """Fresh stores for one scale (``name``: letters and digits), and their settings."""
        out: Settings = {}
        if "postgres" in self.sinks:
            from tests.fixtures_postgres import ROLE

            self.cluster.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.cluster.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
            out["postgres"] = {"url": self.cluster.url(name, user=ROLE)}
        if self.gcs is not None and ("gcs" in self.sinks or "bigquery" in self.sinks):
            bucket = re.sub(r"[^a-z0-9-]", "-", name.lower())
            with contextlib.suppress(urllib.error.HTTPError):  # it exists: a re-run
                self.gcs.create_bucket(bucket)
            out["gcs"] = {"bucket": bucket, "prefix": "nyc-tlc"}
        if "bigquery" in self.sinks:
            self._bq("DELETE", f"/datasets/{name}?deleteContents=true", missing_ok=True)
            self._bq("POST", "/datasets", {"datasetReference": {
                "projectId": BQ_PROJECT, "datasetId": name}, "location": BQ_LOCATION})
            out["bigquery"] = {"project": BQ_PROJECT, "dataset": name,
                               "location": BQ_LOCATION, "endpoint": self.bq_url}
        return out

    def release(self, name: str) -> None:
        """Free a scale's BigQuery dataset (the emulator keeps every table in memory)."""
        if "bigquery" in self.sinks:
            self._bq("DELETE", f"/datasets/{name}?deleteContents=true", missing_ok=True)

    def _bq(self, method: str, path: str, body: object = None, missing_ok: bool = False) -> None:
        request = urllib.request.Request(
            f"{self.bq_url}/bigquery/v2/projects/{BQ_PROJECT}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except urllib.error.HTTPError as e:
            if not (missing_ok and e.code == 404):
                raise


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def sink_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()] or list(SINKS[:1])

