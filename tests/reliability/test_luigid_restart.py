"""luigid stopped and started again in the middle of a backfill, its state file kept: the
workers (two hosts, each with its own scratch, sharing only luigid and the bucket) reconnect,
the backfill completes, and no task runs twice — so never twice at once."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from pipeline.core.datasets import SERVICES
from pipeline.core.months import month_key
from pipeline.demo import samples
from pipeline.lake.keys import (
    manifest_key,
    parquet_key,
    raw_key,
    source_record_key,
    zones_key,
)
from pipeline.tasks.lake_month import DownloadMonth
from tests.fixtures_hosts import Hosts, Services, months, wait_until, worker_hosts

pytestmark = [pytest.mark.slow, pytest.mark.fault_case]

FIRST = date(2020, 1, 1)
ROWS = {"yellow": 20_000, "green": 5_000}
MONTHS = months(FIRST, 4)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[str, str], int]]:
    root = tmp_path_factory.mktemp("restart-release")
    facts = samples.write_release(root, {s: MONTHS for s in ROWS}, ROWS)
    return root, {(f.service, f.month): f.rows for f in facts}


def test_a_backfill_survives_a_luigid_restart(
        tmp_path: Path, release: tuple[Path, dict[tuple[str, str], int]]) -> None:
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

        running = wait_until("a throttled download running", lambda: {
            t.task_id: w for t in slow if (w := services.running().get(t.task_id))},
            timeout=120)
        assert services.luigid("task_list", status="DONE", upstream_status="")  # under way
        assert services.stop_luigid() == 0  # SIGTERM: the state is saved
        state = services.directory / "scheduler" / "state.pickle"
        assert state.exists()
        time.sleep(3)  # the workers go on with their tasks meanwhile, and retry their calls
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

        expected = {f"lake/{zones_key()}"} | {
            f"lake/{key(SERVICES[s], m)}" for s in ROWS for m in MONTHS
            for key in (raw_key, source_record_key, parquet_key, manifest_key)}
        assert set(services.objects("")) == expected
        assert services.postgres is not None
        for service in ROWS:
            counts = dict(services.postgres.execute(
                f"SELECT source_month, count(*) FROM {service}_tripdata GROUP BY 1", "trips"))
            assert counts == {m: rows[(service, month_key(m))] for m in MONTHS}
        assert [h.staged() for h in workers] == [[], []]
    finally:
        for host in workers:
            host.close()
        services.close()
