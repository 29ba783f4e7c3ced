"""luigid stopped and started again in the middle of a backfill, its state file kept: the
workers (two hosts, each with its own scratch, sharing only luigid and the bucket) reconnect,
the backfill completes, and no task runs twice — so never twice at once."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from pipeline.core.months import month_key
from pipeline.tasks.download import DownloadMonth
from tests.fixtures_hosts import (
    Hosts,
    HostsRelease,
    Services,
    lake_objects,
    months,
    worker_hosts,
    write_hosts_release,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.fault_case]

# Four months of two services, whose backfill is under way when luigid stops.
MONTHS = months(date(2020, 1, 1), 4)
ROWS = {"yellow": 20_000, "green": 5_000}
# What luigi's RPC client logs each time luigid does not answer, before it retries.
UNREACHABLE = "Failed connecting to remote scheduler"


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> HostsRelease:
    return write_hosts_release(tmp_path_factory.mktemp("restart-release"), MONTHS, ROWS)


def since(log: Path, offset: int) -> str:
    """What a host's job wrote to its log after ``offset`` bytes."""
    with open(log, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def test_a_backfill_survives_a_luigid_restart(tmp_path: Path, release: HostsRelease) -> None:
    root, rows = release
    hosts = Hosts(2)
    services = Services(hosts, tmp_path / "services", root)
    services.directory.mkdir()
    workers = []
    try:
        services.start_gcs()
        services.start_postgres()
        # Two downloads take ~10 s each, so the restart lands while they run.
        slow = [DownloadMonth(service="yellow", month=m) for m in MONTHS[1:3]]
        throttles = []
        for task in slow:
            raw = root / "yellow" / f"yellow_tripdata_{month_key(task.month)}.csv.gz"
            throttles.append(f"{raw.name}={raw.stat().st_size // 10}")
        services.start_mirror(*throttles)
        services.start_luigid()
        # RPCs to a luigid that is down are retried each second for half a minute.
        workers = worker_hosts(hosts, services, tmp_path / "hosts", rpc_retry_attempts=30)
        for host in workers:
            host.start("backfill", "--start", month_key(MONTHS[0]), "--end",
                       month_key(MONTHS[-1]), "--workers", "1", "--verbose")

        running = wait_until(lambda: {
            t.task_id: w for t in slow if (w := services.running().get(t.task_id))},
            120, "a throttled download running")
        assert services.luigid("task_list", status="DONE", upstream_status="")  # under way
        logged = {h.n: h.log.stat().st_size for h in workers}
        assert services.stop_luigid() == 0  # SIGTERM: the state is saved
        state = services.directory / "scheduler" / "state.pickle"
        assert state.exists()
        # The workers go on with their tasks meanwhile: each has found luigid gone (its
        # pings fail) and retries its calls.
        wait_until(lambda: all(UNREACHABLE in since(h.log, logged[h.n]) for h in workers),
                   60, "every worker retrying its calls to the stopped luigid")
        assert all(host.process and host.process.poll() is None for host in workers)
        services.start_luigid()
        # The restarted luigid knows the tasks it had handed out before it stopped.
        still = {t: w for t, w in services.running().items() if t in running}
        done = services.luigid("task_list", status="DONE", upstream_status="")
        assert all(running[t] == w for t, w in still.items())
        assert set(running) <= set(still) | set(done)

        assert {h.n: h.wait(600) for h in workers} == {1: 0, 2: 0}, [
            h.log.read_text()[-3000:] for h in workers]
        runs = services.history("RUNNING")
        assert runs and set(runs.values()) == {1}, {t: n for t, n in runs.items() if n != 1}
        logged = Counter(line for h in workers for line in re.findall(
            r" running\s+(\S.*?\))\s*$", h.log.read_text(errors="replace"), re.M))
        assert logged and set(logged.values()) == {1}, logged
        assert len(logged) == len(runs)

        assert set(services.objects("")) == lake_objects(ROWS, MONTHS)
        for service in ROWS:
            assert services.warehouse_rows(service) == {
                m: rows[(service, month_key(m))] for m in MONTHS}
        assert [h.staged() for h in workers] == [[], []]
    finally:
        for host in workers:
            host.close()
        services.close()
