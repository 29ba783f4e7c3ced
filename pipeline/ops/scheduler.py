"""The scheduler's policy, shared by luigid and a job's local scheduler: retries whose delay
grows with each failure, and no e-mail per disabled task.

Three things luigi 3.8 does not do on its own, and why they are here:

- **Growing retry delay.** luigi retries a failed task after a fixed ``[scheduler]
  retry_delay``. ``BackoffScheduler`` doubles it after each failure of the same task (up to
  ``[retry_backoff] max_delay``), so a source that is down gets a short pause, then longer
  ones, within the ``retry_count`` attempts luigi allows.
- **No e-mail per disabled task.** luigi's scheduler e-mails ``[email] receiver`` each time
  it disables a task (unless it batches e-mails, which then come every hour). The batch
  jobs send one alert per run instead (``pipeline.ops.notify``), so ``BackoffScheduler``,
  in luigid as in a job's local scheduler, sends none.
- **Prunes spaced out.** With ``prune_on_get_work`` luigi prunes its task graph at every
  ``get_work``, visiting every task it holds (done ones stay 10 minutes): over a 17-year
  backfill that cost grew with the history. ``BackoffScheduler`` prunes at most once a
  second (a quarter of ``retry_delay`` when that is shorter).

Serving luigid (its history database, its web server) is ``pipeline.ops.luigid``: a batch
job imports this module, and not those (SQLAlchemy and the server: 0.4 s of its start).
"""

from __future__ import annotations

import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import luigi.interface
import luigi.retcodes
from luigi.scheduler import Scheduler, SimpleTaskState
from luigi.task_status import DISABLED, FAILED

from pipeline import config
from pipeline.core.text import redact


class _NoDisableEmail:
    """A scheduler config as the task state sees it: e-mails "batched", so the state sends
    none when it disables a task (nor does anything batch them: the scheduler's own
    ``batch_emails`` stays as configured, false by default)."""

    batch_emails = True

    def __init__(self, config: Any) -> None:
        self._config = config

    def __getattr__(self, name: str) -> Any:
        return getattr(self._config, name)


class _QuietTaskState(SimpleTaskState):
    def set_status(self, task: Any, new_status: str, config: Any = None) -> None:
        super().set_status(task, new_status, None if config is None else _NoDisableEmail(config))

    def update_metrics(self, task: Any, config: Any) -> None:
        # luigi's Prometheus collector times a failure from the task's start, and raises
        # (failing the worker's RPC) for a task that failed without running: one whose
        # completeness check or scheduling failed, or that was disabled at once for it
        # (pipeline.ops.failed_checks). Such a failure is counted, not timed.
        if task.status in (FAILED, DISABLED) and task.time_running is None:
            task.time_running = task.updated
        super().update_metrics(task, config)


PRUNE_EVERY_S = 1.0  # at most one prune a second (less with a retry_delay under 4 s)


class BackoffScheduler(Scheduler):
    """luigi's scheduler, with the retry delay doubling at each failure of a task, no
    e-mail of its own when it disables one, and prunes spaced out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        quiet = _QuietTaskState(self._config.state_path)
        quiet._metrics_collector = self._state._metrics_collector
        self._state = quiet
        self._pruned_at = -float("inf")
        self._prune_every = min(PRUNE_EVERY_S, max(0.0, self._config.retry_delay) / 4)

    def prune(self) -> None:
        """luigi's prune (workers gone, retries due, tasks to forget), at most once every
        ``_prune_every`` seconds. With ``prune_on_get_work`` (luigi.cfg) luigi prunes at every
        get_work and task_list, and a prune visits every task luigid holds, the done ones
        too (kept ``remove_delay``, 600 s, after their worker left): a long backfill's
        get_work cost grew with its history (2.3 ms at 3,000 tasks held, 0.015 ms without
        the prune). A due retry or a disabled dependency is still seen within a second (a
        quarter of ``retry_delay`` when that is shorter)."""
        now = time.monotonic()
        if now - self._pruned_at < self._prune_every:
            return
        self._pruned_at = now
        super().prune()

    def add_task(self, task_id: str | None = None, status: str = "PENDING",
                 **kwargs: Any) -> None:
        super().add_task(task_id=task_id, status=status, **kwargs)
        if status != FAILED:
            return
        task = self._state.get_task(task_id)
        if task is not None and task.status == FAILED:
            failures = max(1, task.num_failures())
            delay = min(self._config.retry_delay * 2 ** (failures - 1),
                        config.retry_backoff().max_delay)
            task.retry = time.time() + delay


def reenable_disabled(scheduler: Any, tasks: list[Any]) -> list[str]:
    """Re-enable, on ``scheduler``, the tasks among ``tasks`` it holds DISABLED after too
    many failures, so a job a person starts once the fault is fixed runs them at once
    instead of waiting out ``[scheduler] disable_window``. Returns their ids."""
    wanted = {task.task_id: task for task in tasks}
    disabled = scheduler.task_list(DISABLED, "")
    again = [task_id for task_id in disabled if task_id in wanted]
    for task_id in again:
        scheduler.re_enable_task(task_id)
    if again:
        names = ", ".join(str(wanted[task_id]) for task_id in again[:3])
        more = f" and {len(again) - 3} more" if len(again) > 3 else ""
        print(f"scheduler: {len(again)} task(s) disabled after failing earlier are "
              f"enabled again for this job: {names}{more}", file=sys.stderr, flush=True)
    return again


def scheduler_url() -> str:
    """The central scheduler's URL, as luigi's RemoteScheduler reaches it."""
    core = luigi.interface.core()
    return core.scheduler_url or f"http://{core.scheduler_host}:{core.scheduler_port}"


def scheduler_unreachable(timeout: float = 5.0) -> str | None:
    """Why the central scheduler cannot be reached (one line), or None when it answers.
    luigi's own client retries for a minute and logs a traceback per attempt."""
    url = scheduler_url()
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "localhost", port), timeout=timeout).close()
    except OSError as e:
        why = "no answer" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        return (f"the central scheduler at {redact(url)} is not reachable ({why.lower()}): "
                "start it (taxi-pipeline scheduler) or run the job with --local-scheduler")
    return None


def _probed_remote_scheduler(self: Any, url: str) -> Any:
    unreachable = scheduler_unreachable()
    if unreachable:
        # Out of luigi's own handling (which logs a traceback as an "uncaught exception"):
        # one line and [retcode] scheduling_error.
        print(f"error: {unreachable}", file=sys.stderr, flush=True)
        raise SystemExit(luigi.retcodes.retcode().scheduling_error or 1)
    return _original_remote_scheduler(self, url)


_original_remote_scheduler = luigi.interface._WorkerSchedulerFactory.create_remote_scheduler


def install() -> None:
    """``luigi --module pipeline ...`` asks the central scheduler once before it schedules:
    down, it ends on one line at once instead of a minute of retries and tracebacks."""
    luigi.interface._WorkerSchedulerFactory.create_remote_scheduler = (  # type: ignore[method-assign]
        _probed_remote_scheduler)
