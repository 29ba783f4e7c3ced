"""luigid's own log is rotated by size (issue 27: a 17-year backfill wrote 1.6 MB a run into
one file that only grew): a real `taxi-pipeline scheduler` with a tiny limit rotates its
log, keeps the configured number of old files, and no file grows past the limit."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Env
from tests.fixtures_scheduler import Luigid

LIMIT_BYTES = 2_000


@pytest.fixture
def small_log(env: Env) -> Env:
    env.configure(luigid={"log_max_mb": str(LIMIT_BYTES / 1e6), "log_backups": "2"})
    return env


def test_luigids_log_is_rotated_by_size(small_log: Env, luigid: Luigid) -> None:
    logs = luigid.directory / "logs"
    deadline = time.monotonic() + 60
    while not (logs / "luigi-server.log.2").exists():
        # Each request is a line of luigid's log (tornado's access log).
        luigid.api("task_list", status="", upstream_status="")
        assert time.monotonic() < deadline, sorted(p.name for p in logs.iterdir())
    for _ in range(50):
        luigid.api("task_list", status="", upstream_status="")
    names = sorted(p.name for p in logs.iterdir())
    assert names == ["luigi-server.log", "luigi-server.log.1", "luigi-server.log.2"]
    for path in logs.iterdir():
        assert path.stat().st_size <= LIMIT_BYTES
    assert "GET /api/task_list" in (logs / "luigi-server.log.1").read_text()
