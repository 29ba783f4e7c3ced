"""The scheduler's growing retry delay and the batch jobs' exit codes, without a run: the
retry of a failing task is pushed back by a doubling delay, capped; each Luigi run status
maps to luigi.cfg's ``[retcode]`` code, never 0 for a run that did not finish."""

from __future__ import annotations

import time

import pytest
from luigi.execution_summary import LuigiStatusCode
from luigi.task_status import FAILED, PENDING

from pipeline.ops.jobs import exit_code
from pipeline.ops.scheduler import BackoffScheduler
from tests.conftest import Env


def failing(scheduler: BackoffScheduler, task_id: str, times: int) -> list[float]:
    """The retry delay the scheduler sets after each of ``times`` failures."""
    delays = []
    for _ in range(times):
        scheduler.add_task(task_id=task_id, status=PENDING, worker="w")
        before = time.time()
        scheduler.add_task(task_id=task_id, status=FAILED, worker="w")
        task = scheduler._state.get_task(task_id)
        delays.append(task.retry - before)
    return delays


def test_the_retry_delay_doubles_with_each_failure_up_to_the_cap(env: Env) -> None:
    env.configure(retry_backoff={"max_delay": "50"})
    scheduler = BackoffScheduler(retry_delay=5, retry_count=10, disable_window=3600,
                                 record_task_history=False)
    delays = failing(scheduler, "DownloadMonth_yellow_2021_01", 6)
    expected = [5, 10, 20, 40, 50, 50]
    assert [round(d) for d in delays] == expected
    # Each task keeps its own count: another task starts again at the first delay.
    assert round(failing(scheduler, "DownloadMonth_green_2021_01", 1)[0]) == 5


@pytest.mark.parametrize(("status", "code"), [
    (LuigiStatusCode.SUCCESS, 25),  # exit_code is only asked about runs that did not finish
    (LuigiStatusCode.FAILED, 30),
    (LuigiStatusCode.FAILED_AND_SCHEDULING_FAILED, 30),
    (LuigiStatusCode.SCHEDULING_FAILED, 35),
    (LuigiStatusCode.MISSING_EXT, 20),
    (LuigiStatusCode.NOT_RUN, 25),
])
def test_each_run_status_has_its_retcode(env: Env, status: LuigiStatusCode, code: int) -> None:
    assert exit_code(status) == code


def test_a_zero_retcode_in_luigi_cfg_still_exits_non_zero(env: Env) -> None:
    env.configure(retcode={"task_failed": "0"})
    assert exit_code(LuigiStatusCode.FAILED) == 1
