"""Worker hosts that share nothing but luigid and the bucket (tests/fixtures_hosts.py): a
services host (luigid, fake-gcs-server, PostgreSQL, the release mirror) and three worker
hosts in their own network namespaces, each with its own empty scratch directory. All three
run the same 6-month x 2-service backfill into a bucket lake with the postgres sink; then a
host is SIGKILLed in the middle of a download and another host finishes it once luigid has
given the dead host up. Without namespaces (no root, no ``ip``) the same runs as plain
processes, and the test says so."""

from __future__ import annotations

import contextlib
import json
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from pipeline.core.datasets import SERVICES
from pipeline.core.months import month_key
from pipeline.lake.keys import manifest_key
from pipeline.tasks.download import DownloadMonth
from tests.fixtures_hosts import (
    HostsRelease,
    NamespaceHosts,
    Services,
    WorkerHost,
    lake_objects,
    months,
    shared_nothing,
    worker_hosts,
    worker_pid,
    write_hosts_release,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.kill_trial]

FIRST = date(2020, 1, 1)
ROWS = {"yellow": 30_000, "green": 6_000}
JOB_SECONDS = 600


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> HostsRelease:
    """Eight months of yellow and green: six for the backfill, two more for the kill."""
    return write_hosts_release(tmp_path_factory.mktemp("hosts-release"), months(FIRST, 8), ROWS)


def backfill(hosts: list[WorkerHost], end: date) -> None:
    for host in hosts:
        # --verbose: luigi's own log, whose "running" lines tell which host ran what.
        host.start("backfill", "--start", month_key(FIRST), "--end", month_key(end),
                   "--workers", "1", "--verbose")


def finish(hosts: list[WorkerHost]) -> dict[int, int]:
    return {host.n: host.wait(JOB_SECONDS) for host in hosts}


def ran(host: WorkerHost) -> list[str]:
    """The tasks this host's worker ran (its log's ``running`` lines)."""
    return re.findall(r" running\s+(\S.*?\))\s*$", host.log.read_text(errors="replace"), re.M)


def check_lake_and_warehouse(services: Services, months_done: list[date],
                             rows: dict[tuple[str, str], int]) -> None:
    """The bucket holds every month exactly (manifest rows = source rows, nothing else) and
    PostgreSQL holds exactly the source's rows, once."""
    assert set(services.objects("lake/")) == lake_objects(ROWS, months_done)
    assert services.objects("") == services.objects("lake/")  # nothing outside the lake
    assert services.postgres is not None
    for service in ROWS:
        for month in months_done:
            manifest = json.loads(services.read(f"lake/{manifest_key(SERVICES[service], month)}"))
            assert manifest["rows"] == rows[(service, month_key(month))]
        assert services.warehouse_rows(service) == {
            m: rows[(service, month_key(m))] for m in months_done}
        logged = services.postgres.execute(
            f"SELECT source_month, rows FROM pipeline_loads WHERE table_name = "
            f"'{service}_tripdata'", dbname="trips")
        assert sorted(logged) == sorted((m, rows[(service, month_key(m))]) for m in months_done)


def growing(host: WorkerHost) -> Callable[[], bool]:
    """A check that a file in the host's scratch directory has grown since the check's
    last look (and had bytes then): asked over and over, it says the download is under way."""
    seen: dict[Path, int] = {}

    def grew() -> bool:
        sizes = {}
        for path in host.staged():
            with contextlib.suppress(FileNotFoundError):  # renamed or removed meanwhile
                sizes[path] = path.stat().st_size
        answer = any(size > seen.get(path, size) > 0 for path, size in sizes.items())
        seen.update(sizes)
        return answer
    return grew


def test_three_hosts_share_one_backfill_and_survive_a_killed_host(
        tmp_path: Path, release: HostsRelease) -> None:
    root, rows = release
    with shared_nothing(tmp_path, root) as (hosts, services, why_plain):
        if why_plain:
            warnings.warn(f"no network namespaces ({why_plain}): the hosts run as plain "
                          "processes on 127.0.0.1, each with its own scratch", stacklevel=1)
        else:
            assert isinstance(hosts, NamespaceHosts)
            for n in range(1, 4):  # a worker host reaches the services host and nothing else
                assert "default" not in hosts.routes(n)
        workers = worker_hosts(hosts, services, tmp_path / "hosts")
        try:
            # -- 1. three hosts, one backfill ------------------------------------------------
            six = months(FIRST, 6)
            backfill(workers, six[-1])
            assert finish(workers) == {1: 0, 2: 0, 3: 0}, [w.log.read_text()[-3000:]
                                                          for w in workers]
            runs = services.history("RUNNING")
            # Months' tasks, zones + load, wrappers: the job runs a Backfill per service's
            # year (its chunks), of an IngestMonth per month of the service.
            assert len(runs) == 12 * 3 + 2 + 12 + 2
            assert set(runs.values()) == {1}, {t: n for t, n in runs.items() if n != 1}
            done_by = Counter(w.n for w in workers for _ in ran(w))
            assert sum(done_by.values()) == len(runs)  # each task ran once, on some host
            assert len(done_by) >= 2, done_by  # the work was shared
            check_lake_and_warehouse(services, six, rows)
            assert [w.staged() for w in workers] == [[], [], []]

            # -- 2. a host killed in the middle of a task --------------------------------------
            eight = months(FIRST, 8)
            victim_task = DownloadMonth(service="yellow", month=eight[-1])
            raw = root / "yellow" / f"yellow_tripdata_{month_key(eight[-1])}.csv.gz"
            services.start_mirror(f"{raw.name}={raw.stat().st_size // 15}")  # ~15 s download
            backfill(workers, eight[-1])
            worker = wait_until(lambda: services.running().get(victim_task.task_id), 180,
                                "the throttled download running")
            victim = next(w for w in workers if w.process and w.process.pid == worker_pid(worker))
            wait_until(growing(victim), 30, "its scratch file growing", interval=0.2)
            assert victim.process is not None and victim.process.poll() is None
            assert services.running().get(victim_task.task_id) == worker  # still that task
            killed_at = time.monotonic()
            victim.kill()
            assert victim.process.returncode == -9
            survivors = [w for w in workers if w is not victim]
            assert finish(survivors) == {w.n: 0 for w in survivors}, [
                w.log.read_text()[-3000:] for w in survivors]
            took = time.monotonic() - killed_at

            runs = services.history("RUNNING")
            assert runs.pop(victim_task.task_id) == 2  # killed, then run again elsewhere
            assert set(runs.values()) == {1}, {t: n for t, n in runs.items() if n != 1}
            assert services.history("DONE").get(victim_task.task_id) == 1
            reran = [w.n for w in survivors if "DownloadMonth(service=yellow, month="
                     f"{month_key(eight[-1])})" in ran(w)]
            assert len(reran) == 1, [ran(w) for w in survivors]
            assert took > 6  # not before luigid's worker timeout gave the dead host up
            check_lake_and_warehouse(services, eight, rows)
            assert [w.staged() for w in survivors] == [[], []]
            # The dead host could not clean up: its half download (and the conversion that
            # ran beside it) are still in its scratch.
            stem = raw.name.removesuffix(".csv.gz")
            assert raw.name in " ".join(p.name for p in victim.staged()) and all(
                stem in p.name for p in victim.staged())
        finally:
            for w in workers:
                w.close()
