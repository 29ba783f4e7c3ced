"""The one launcher of throwaway PostgreSQL servers: the tests' (registered in conftest.py),
the services host's of the multi-host tests (``tests/fixtures_hosts.py``), and
``bench/bench_postgres.py``'s.

``initdb`` into a temporary directory, ``pg_ctl start`` on a free port of 127.0.0.1 (or a
given address and port, inside a given network namespace) with the unix socket in that
directory, ``fsync=off``; password (scram) authentication over TCP, so a wrong password is
really refused; the test process itself speaks to it as superuser over the unix socket.
As root the server runs as user ``postgres`` (it refuses to run as root). Each test gets
its own database, owned by a non-superuser role ``taxi`` as the pipeline's would be. The
binaries are Debian's (``/usr/lib/postgresql/*/bin``, installed by ``make system-deps`` when
missing); without them the tests that need a server are skipped, saying why.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ports import free_port

BIN_GLOB = "/usr/lib/postgresql/*/bin"
ROLE = "taxi"
SERVER_SETTINGS = ("-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off")


def find_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL binaries, else ``initdb`` on PATH, else None."""
    def version(directory: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", directory.parent.name))

    candidates = sorted((Path(p) for p in Path("/").glob(BIN_GLOB.lstrip("/"))),
                        key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


@dataclass
class Cluster:
    """A running throwaway server; ``stop()`` ends it and deletes its files."""

    bin_dir: Path
    directory: Path
    port: int
    password: str  # of the superuser ``postgres`` and of the role ``taxi``
    run_as: str | None
    address: str = "127.0.0.1"
    prefix: Sequence[str] = ()  # runs its programs so (``ip netns exec NAME``)
    fixed_port: bool = False

    @classmethod
    def start(cls, bin_dir: Path, *, address: str = "127.0.0.1", port: int | None = None,
              prefix: Sequence[str] = (), allow_from: str | None = None) -> Cluster:
        """A new server listening on ``address``: on ``port``, else a free one. ``prefix``
        runs its programs in another network namespace; ``allow_from`` (a CIDR) lets hosts
        of that network in with the password, as loopback is."""
        run_as = "postgres" if os.geteuid() == 0 else None
        # Not under pytest's tmp_path: its 0700 parents are closed to user postgres.
        directory = Path(tempfile.mkdtemp(prefix="taxi-pg-"))
        password = secrets.token_hex(12)
        (directory / "pwfile").write_text(password + "\n")
        if run_as:
            user = pwd.getpwnam(run_as)
            for path in (directory, directory / "pwfile"):
                os.chown(path, user.pw_uid, user.pw_gid)
        cluster = cls(bin_dir, directory, port or 0, password, run_as, address, tuple(prefix),
                      port is not None)
        try:
            cluster._run("initdb", "-D", str(cluster.data), "-U", "postgres", "--pwfile",
                         str(directory / "pwfile"), "--auth-local=trust",
                         "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
            if allow_from:
                with open(cluster.data / "pg_hba.conf", "a") as hba:
                    hba.write(f"host all all {allow_from} scram-sha-256\n")
            cluster._start()
            cluster.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'")
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, dbname: str = "postgres", user: str = "postgres",
            password: str | None = None) -> str:
        return (f"postgresql://{user}:{password or self.password}@{self.address}:{self.port}/"
                f"{dbname}")

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / program), *args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        command = [*self.prefix, *command]
        result = subprocess.run(command, cwd=self.directory, capture_output=True, text=True,
                                timeout=120, check=False)
        if result.returncode:
            raise RuntimeError(f"{program} failed ({result.returncode}): "
                               f"{result.stderr.strip() or result.stdout.strip()}")
        return result

    def _start(self) -> None:
        # A free port can be taken between finding and binding it: try a few.
        for attempt in itertools.count(1):
            if not self.fixed_port:
                self.port = free_port()
            try:
                self._pg_ctl_start()
                return
            except RuntimeError:
                if attempt == 3 or self.fixed_port:
                    raise RuntimeError("pg_ctl start failed: " + self.log()[-2000:]) from None

    def _pg_ctl_start(self) -> None:
        settings = SERVER_SETTINGS.replace("listen_addresses=127.0.0.1",
                                           f"listen_addresses={self.address}")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "log"), "-w",
                  "-t", "60", "-o", f"-p {self.port} -k {self.directory} {settings}", "start")

    def restart(self, mode: str = "fast") -> None:
        """Stop the server (``pg_ctl stop -m mode``: its clients are cut off) and start it
        again on the same port."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        self._pg_ctl_start()

    def log(self) -> str:
        path = self.directory / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def execute(self, sql: str, params: Sequence[Any] = (), dbname: str = "postgres"
                ) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser (over the unix socket: it is reached the same
        way from any network namespace); the rows it returns, if any."""
        import psycopg  # here, so the benchmark's parent process stays small

        with psycopg.connect(host=str(self.directory), port=self.port, dbname=dbname,
                             user="postgres", autocommit=True) as con:
            cur = con.execute(sql, params or None)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


@dataclass
class Database:
    """One test's database on the cluster, owned by the role ``taxi``."""

    cluster: Cluster
    name: str

    @property
    def url(self) -> str:
        """What ``[postgres] url`` says: the pipeline's role, password included."""
        return self.cluster.url(self.name, user=ROLE)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.cluster.execute(sql, params, dbname=self.name)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(f"no PostgreSQL server binaries (initdb, pg_ctl) under {BIN_GLOB} or on "
                    "PATH: `make system-deps` installs Debian's postgresql")
    cluster = Cluster.start(bin_dir)
    yield cluster
    cluster.stop()


_databases = itertools.count(1)


@pytest.fixture
def postgres_db(postgres_cluster: Cluster, request: pytest.FixtureRequest) -> Database:
    """A fresh database for this test (left to the cluster's end: dropping costs time)."""
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
    name = f"t{next(_databases)}_{stem}"
    postgres_cluster.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
    return Database(postgres_cluster, name)
