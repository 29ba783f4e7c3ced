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
from pipeline.ops.progress import JobProgress, closure, failure_reason
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


def run(tasks: list[luigi.Task], *, local_scheduler: bool, workers: int,
        verbose: bool = False) -> int:
    """Build ``tasks``, showing progress; print the failures and send one alert about them;
    return the exit code (0 when all are complete)."""
    return run_in_chunks([tasks], local_scheduler=local_scheduler, workers=workers,
                         verbose=verbose)


def run_in_chunks(chunks: list[list[luigi.Task]], *, local_scheduler: bool, workers: int,
                  verbose: bool = False, label: str | None = None,
                  months: int | None = None) -> int:
    """Build each chunk of tasks in turn (one job: one progress display, one list of
    failures, one alert), so that the scheduler holds only one chunk's pending tasks at a
    time: luigid's get_work scans every pending task, so a 17-year range submitted at once
    costs it time that grows with the square of the tasks. The tasks keep their ids, so
    another process or host asking for the same months still shares the work.

    ``months``: how many months of services the chunks hold, when the caller knows; the
    tasks of each chunk are then looked at only when its turn comes (the whole history's
    2,500 tasks take 1.4 s to list, before the first could start)."""
    tasks = [task for chunk in chunks for task in chunk]
    progress = JobProgress(chunks[0] if months is not None else tasks,
                           label=label or _label(tasks), total=months)
    schedulers = _Schedulers(progress)
    where = "local (in this process)" if local_scheduler else _central_url()
    if not local_scheduler:
        unreachable = scheduler_unreachable()
        if unreachable:
            return _job_fault(tasks, unreachable, luigi.retcodes.retcode().scheduling_error or 1)
    print(f"scheduler: {where}", file=sys.stderr, flush=True)
    # Off --verbose, luigi logs warnings and errors only (full tracebacks of unexpected
    # errors included): the progress lines say what finished or failed, about one a month.
    quiet = {} if verbose else {"log_level": "WARNING"}
    failures: list[Failure] = []
    statuses = []
    with progress:
        for chunk in chunks:
            progress.extend(chunk)
            result = luigi.build(chunk, worker_scheduler_factory=schedulers,
                                 detailed_summary=True, local_scheduler=local_scheduler,
                                 workers=workers, **quiet)
            if progress.live and not verbose and len(chunks) == 1:
                print(result.summary_text, file=sys.stderr)
            if not _complete(chunk):
                statuses.append(result.status)
                failures += failures_of(chunk, schedulers.scheduler)
    if not statuses:
        return 0
    if failures:
        print(f"{len(failures)} task(s) failed:", file=sys.stderr)
        for failure in failures:
            print(failure.line(), file=sys.stderr)
    code = max(exit_code(status) for status in statuses)
    notify.send(notify.failure_alert(label or job_name(tasks), [f.line() for f in failures],
                                     code))
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


def _label(tasks: list[luigi.Task]) -> str:
    families = list(dict.fromkeys(task.task_family for task in tasks))
    return ", ".join(families)


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
    return failure_reason(explanation)
