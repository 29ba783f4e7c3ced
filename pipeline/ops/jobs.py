"""Running tasks as a batch job: on the central scheduler or a local one, with luigi.cfg's
exit codes, a closing list of every task that failed and why, and one alert about them
(``pipeline.ops.notify``) instead of luigi's e-mail per failed attempt.

A job succeeds when what it asked for is complete, whoever did the work: with several
processes on one luigid, a task run by another process counts as done once it is.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import luigi
import luigi.retcodes
import luigi.rpc
import luigi.worker
import requests
from luigi.execution_summary import LuigiStatusCode
from luigi.task_status import FAILED

from pipeline.core.text import one_line
from pipeline.ops import notify, stopping
from pipeline.ops.progress import JobProgress, closure
from pipeline.ops.scheduler import BackoffScheduler, reenable_disabled, scheduler_unreachable


class _Schedulers:
    """luigi.build's scheduler factory, keeping the scheduler to ask it about failures; the
    worker reaches it through the job's progress display."""

    def __init__(self, progress: JobProgress) -> None:
        self.scheduler: luigi.scheduler.Scheduler | luigi.rpc.RemoteScheduler | None = None
        self.progress = progress

    def create_local_scheduler(self) -> BackoffScheduler:
        self.scheduler = BackoffScheduler(prune_on_get_work=True, record_task_history=False)
        return self.scheduler

    def create_remote_scheduler(self, url: str) -> luigi.rpc.RemoteScheduler:
        self.scheduler = luigi.rpc.RemoteScheduler(url)
        # A person's job retries at once what failed before (unattended retries within a
        # job still stop at [scheduler] retry_count).
        reenable_disabled(self.scheduler, list(self.progress.tasks.values()))
        return self.scheduler

    def create_worker(self, scheduler: object, worker_processes: int,
                      assistant: bool = False) -> luigi.worker.Worker:
        # One alert at the end of the job replaces luigi's e-mail per failed attempt.
        worker = luigi.worker.Worker(scheduler=self.progress.observe(scheduler),
                                     worker_processes=worker_processes, assistant=assistant,
                                     send_failure_email=False)
        if isinstance(self.scheduler, luigi.rpc.RemoteScheduler):
            url = self.scheduler._url
            stopping.on_stop(lambda signal: release_running(worker, url, signal))
        return worker


def release_running(worker: luigi.worker.Worker, url: str, signal: str) -> None:
    """Tell luigid that the tasks this stopped job was running failed, so a job started
    next runs them at once instead of after luigid gives the silent worker up
    (``[scheduler] worker_disconnect_delay``, a minute). One short request each: a
    scheduler that does not answer does not hold the stop up."""
    for task_id in list(worker._running_tasks):
        data = {"worker": worker._id, "task_id": task_id, "status": FAILED,
                "runnable": False, "expl": json.dumps(f"the job was stopped by {signal}")}
        requests.post(f"{url}/api/add_task", data={"data": json.dumps(data)}, timeout=3)


@dataclass(frozen=True)
class Failure:
    task: str
    status: str
    why: str

    def line(self) -> str:
        return f"{self.status:8} {self.task}: {self.why}"


def run(tasks: list[luigi.Task], *, local_scheduler: bool, workers: int) -> int:
    """Build ``tasks``, showing progress; print the failures and send one alert about them;
    return the exit code (0 when all are complete)."""
    progress = JobProgress(tasks, label=", ".join(t.task_family for t in tasks))
    schedulers = _Schedulers(progress)
    where = "local (in this process)" if local_scheduler else _central_url()
    if not local_scheduler:
        unreachable = scheduler_unreachable()
        if unreachable:
            return _job_fault(tasks, unreachable, luigi.retcodes.retcode().scheduling_error or 1)
    print(f"scheduler: {where}", file=sys.stderr, flush=True)
    # On a terminal the live progress line replaces luigi's step-by-step log (warnings and
    # errors still show); elsewhere luigi logs as usual, its execution summary included.
    quiet = {"log_level": "WARNING"} if progress.live else {}
    with progress:
        result = luigi.build(tasks, worker_scheduler_factory=schedulers, detailed_summary=True,
                             local_scheduler=local_scheduler, workers=workers, **quiet)
    if progress.live:
        print(result.summary_text, file=sys.stderr)
    if _complete(tasks):
        return 0
    failures = failures_of(tasks, schedulers.scheduler)
    if failures:
        print(f"{len(failures)} task(s) failed:", file=sys.stderr)
        for failure in failures:
            print(failure.line(), file=sys.stderr)
    code = exit_code(result.status)
    notify.send(notify.failure_alert(job_name(tasks), [f.line() for f in failures], code))
    return code


def _complete(tasks: list[luigi.Task]) -> bool:
    """Whether what the job asked for is complete; a check that fails says no, on one line."""
    try:
        return all(task.complete() for task in tasks)
    except Exception as e:  # the same faults as while scheduling: a locked file, a full disk
        print(f"error: cannot tell whether the job is complete: {one_line(e)}", file=sys.stderr)
        return False


def _job_fault(tasks: list[luigi.Task], reason: str, code: int) -> int:
    """A fault that stops the job before any task: one line, its exit code, its alert."""
    print(f"error: {reason}", file=sys.stderr, flush=True)
    notify.send(notify.failure_alert(job_name(tasks), [reason], code))
    return code


def job_name(tasks: list[luigi.Task]) -> str:
    """``Backfill(start=2020-11, end=2021-01, services=yellow)``: what the job asked for."""
    return ", ".join(str(task) for task in tasks)


def _central_url() -> str:
    core = luigi.interface.core()
    return f"central luigid at http://{core.scheduler_host}:{core.scheduler_port}"


def exit_code(status: LuigiStatusCode) -> int:
    codes = luigi.retcodes.retcode()
    return {
        LuigiStatusCode.FAILED: codes.task_failed,
        LuigiStatusCode.FAILED_AND_SCHEDULING_FAILED: codes.task_failed,
        LuigiStatusCode.SCHEDULING_FAILED: codes.scheduling_error,
        LuigiStatusCode.MISSING_EXT: codes.missing_data,
    }.get(status, codes.not_run) or 1


def failures_of(roots: list[luigi.Task], scheduler: object) -> list[Failure]:
    """The failed or disabled tasks among ``roots`` and their dependencies, with the reason."""
    if scheduler is None:
        return []
    wanted = {t.task_id: t for t in closure(roots)}
    failures = []
    for status in ("FAILED", "DISABLED"):
        for task_id in scheduler.task_list(status, ""):  # type: ignore[attr-defined]
            if task_id in wanted:
                error = scheduler.fetch_error(task_id) or {}  # type: ignore[attr-defined]
                failures.append(Failure(str(wanted[task_id]), status, _why(error.get("error"))))
    return sorted(failures, key=lambda f: f.task)


def _why(explanation: str | None) -> str:
    """The last line of a task's failure explanation (luigi keeps it JSON-encoded)."""
    text = explanation or ""
    try:
        decoded = json.loads(text)
        text = decoded if isinstance(decoded, str) else text
    except ValueError:
        pass
    lines = text.strip().splitlines()
    return lines[-1] if lines else "?"
