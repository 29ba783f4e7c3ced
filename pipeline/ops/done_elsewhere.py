"""Work done by another process counts as done, in luigi's run summary and exit code.

With several ``luigi ... --no-lock`` processes on one luigid, the scheduler hands each task
to one worker; the others keep it PENDING in their own records and, at the end, report it
as "not granted run permission" (exit code ``[retcode] not_run``) although it is complete.
Setting that code to 0 would hide real failures of the other process. Instead, the summary
re-checks, at the end of the run, each task still pending in this process or running in
another: a task that is complete now counts as already done; one that is not keeps its
status and its exit code (``not_run``, ``already_running``).
"""

from __future__ import annotations

from typing import Any

import luigi
import luigi.execution_summary as summary

from pipeline.lake.targets import forget_cached_listings

_PENDING = ("still_pending_ext", "still_pending_not_ext")
_original = summary._partition_tasks
_original_run_by_other_worker = summary._get_run_by_other_worker


def _partition_tasks(worker: Any) -> dict[str, set]:
    sets = _original(worker)
    _forget_cached_listings()
    done = {task for key in _PENDING for task in sets[key] if _complete(task)}
    for key in _PENDING:
        sets[key] -= done
    sets["already_done"] |= done
    return sets


def _get_run_by_other_worker(worker: Any) -> set:
    # A task another process was still running when this one stopped may be done now.
    return {task for task in _original_run_by_other_worker(worker) if not _complete(task)}


def _forget_cached_listings() -> None:
    """What other processes wrote is not in this process's cached listings."""
    forget_cached_listings()


def _complete(task: luigi.Task) -> bool:
    try:
        return bool(task.complete())
    except Exception:  # a task whose check fails is simply not done
        return False


def install() -> None:
    summary._partition_tasks = _partition_tasks
    summary._get_run_by_other_worker = _get_run_by_other_worker
