"""A completeness check that raises while luigi schedules is a failure of its task.

luigi 3.8 marks such a task UNKNOWN: no worker may run it, nothing fails, and a worker
kept alive (``[worker] keep_alive``) waits forever for the tasks that depend on it (the
DuckDB file locked by another process past ``[duckdb] lock_timeout`` did that). Here the
task counts as failed in the job's summary (exit code ``[retcode] task_failed``), and the
scheduler holds it DISABLED with the check's one-line reason: its month fails with the
reason, the others go on, and the job ends. The worker, not the scheduler, disabled it, so
the next job that asks for it checks it again at once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import luigi
import luigi.scheduler
import luigi.worker
from luigi.scheduler import DISABLED, FAILED
from luigi.worker import TracebackWrapper

log = logging.getLogger("luigi-interface")
_original_add = luigi.worker.Worker._add
# ``pipeline.warehouses.base.WarehouseError: ...`` -> ``WarehouseError: ...``
_QUALIFIED = re.compile(r"^(?:\w+\.)+(?=\w+: )")


def reason_of(trace: str) -> str:
    """The last line of a traceback, its exception class without the module path."""
    lines = [line for line in trace.strip().splitlines() if line.strip()]
    return _QUALIFIED.sub("", lines[-1].strip()) if lines else "the check failed"


def _add(self: luigi.worker.Worker, task: luigi.Task, is_complete: Any) -> Iterator[luigi.Task]:
    if not isinstance(is_complete, TracebackWrapper):
        yield from _original_add(self, task, is_complete)
        return
    if isinstance(task, luigi.WrapperTask):
        # Its check is its requirements' checks: each of those then fails on its own,
        # naming its step (LoadDuckDB of a month), and the others go on.
        yield from _original_add(self, task, False)
        return
    why = f"its completeness check failed: {reason_of(is_complete.trace)}"
    log.error("%s failed: %s", task, why)
    self._scheduled_tasks[task.task_id] = task
    # A failure in this job's summary; DISABLED for the scheduler, which would otherwise
    # hand it out again after retry_delay to a worker that cannot run what it never checked.
    self._add_task_history.append((task, FAILED, False))
    self._scheduler.add_task(
        worker=self._id, task_id=task.task_id, status=DISABLED, deps=None, runnable=False,
        expl=json.dumps(why), priority=task.priority, resources=task.process_resources(),
        params=task.to_str_params(), param_visibilities=task._get_param_visibilities(),
        family=task.task_family, module=task.task_module, batchable=task.batchable,
        accepts_messages=task.accepts_messages, owners=task._owner_list(),
    )


_original_update_metrics = luigi.scheduler.SimpleTaskState.update_metrics


def _update_metrics(self: luigi.scheduler.SimpleTaskState, task: Any, config: Any) -> None:
    # luigi's Prometheus collector times a failed or disabled task from its start and
    # raises for one that never ran, as a task disabled here never does: it is counted, not
    # timed (luigi's local scheduler of `luigi --module pipeline`; luigid has it too).
    if task.status in (FAILED, DISABLED) and task.time_running is None:
        task.time_running = task.updated
    _original_update_metrics(self, task, config)


def install() -> None:
    luigi.worker.Worker._add = _add  # type: ignore[method-assign]
    luigi.scheduler.SimpleTaskState.update_metrics = _update_metrics  # type: ignore[method-assign]
