"""A batch job's progress: months done out of the total, the running task, rows converted.

The job's worker tells its scheduler about every task it finds complete, starts and
finishes; ``JobProgress.observe`` wraps that scheduler (local or luigid) and listens in, so
progress costs no polling and no extra request. On a terminal it is one live line drawn by
``rich`` (luigi's own log then shows warnings and errors only, above the line); elsewhere
(cron, CI) it is a plain line each time a month is done, between luigi's usual log lines.

A month counts as done when every task of it the job asked for is done; rows are those of
the months' Parquet files (their manifests), whether converted now or found complete.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import defaultdict
from datetime import date
from typing import Any, TextIO

import luigi
from luigi.task import flatten
from luigi.task_status import DONE, FAILED
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from pipeline.core.months import month_key
from pipeline.tasks.lake_month import ParquetizeMonth


class JobProgress:
    """``with JobProgress(tasks) as progress: ... worker(progress.observe(scheduler))``."""

    def __init__(self, roots: list[luigi.Task], label: str, stream: TextIO | None = None,
                 live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.label = label
        self.tasks: dict[str, luigi.Task] = {}
        self.months_of: dict[str, date] = {}
        self.open: dict[date, set[str]] = defaultdict(set)
        for task in closure(roots):
            self.tasks[task.task_id] = task
            month = getattr(task, "month", None)
            if isinstance(month, date):
                self.months_of[task.task_id] = month
                self.open[month].add(task.task_id)
        self.total = len(self.open)
        self.done_months: set[date] = set()
        self.failed_months: set[date] = set()
        self.rows = 0
        self.running: dict[str, None] = {}  # in start order
        self._counted: set[str] = set()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._bar: Progress | None = None
        self._bar_task: Any = None

    # ------------------------------------------------------------------ what the worker says
    def observe(self, scheduler: Any) -> _ObservedScheduler:
        """``scheduler`` as the worker should see it: every call passes through unchanged."""
        return _ObservedScheduler(scheduler, self)

    def started(self, task_id: str) -> None:
        with self._lock:
            self.running[task_id] = None
        self._show(changed=False)

    def reported(self, task_id: str, status: str) -> None:
        if status not in (DONE, FAILED):
            return
        changed = False
        with self._lock:
            self.running.pop(task_id, None)
            month = self.months_of.get(task_id)
            if status == DONE and task_id not in self._counted:
                self._counted.add(task_id)
                self.rows += _rows(self.tasks.get(task_id))
            if month is not None and month not in self.done_months:
                if status == FAILED:
                    changed = month not in self.failed_months
                    self.failed_months.add(month)
                else:
                    self.open[month].discard(task_id)
                    if not self.open[month]:
                        changed = True
                        self.done_months.add(month)
                        self.failed_months.discard(month)
        self._show(changed)

    # ------------------------------------------------------------------------- what it shows
    def line(self) -> str:
        failed = f", {len(self.failed_months)} with a failed task" if self.failed_months else ""
        running = f", running {self._running()}" if self.running else ""
        return (f"progress: {len(self.done_months)}/{self.total} months done{failed}, "
                f"{self.rows:,} rows{running}")

    def _running(self) -> str:
        names = [_short(self.tasks.get(task_id), task_id) for task_id in self.running]
        return names[-1] + (f" (+{len(names) - 1} more)" if len(names) > 1 else "")

    def _show(self, changed: bool) -> None:
        if os.getpid() != self._pid:
            return  # a forked task process: the job's own process shows progress
        if self._bar is not None:
            self._bar.update(self._bar_task, completed=len(self.done_months),
                             rows=f"{self.rows:,}",
                             running=self._running() if self.running else "")
        elif changed:
            print(self.line(), file=self.stream, flush=True)

    def __enter__(self) -> JobProgress:
        if self.live:
            console = Console(file=self.stream, stderr=self.stream is sys.stderr)
            self._bar = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
                MofNCompleteColumn(), TextColumn("months"), TimeElapsedColumn(),
                TextColumn("{task.fields[rows]} rows"), TextColumn("{task.fields[running]}"),
                console=console, redirect_stderr=True, redirect_stdout=True,
                refresh_per_second=4)
            self._bar_task = self._bar.add_task(self.label, total=self.total, rows="0",
                                                running="scheduling…")
            self._bar.start()
        else:
            print(f"progress: 0/{self.total} months to check or ingest", file=self.stream,
                  flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._show(changed=True)
            self._bar.stop()
            self._bar = None
        print(self.line(), file=self.stream, flush=True)


class _ObservedScheduler:
    """A scheduler (local or remote) whose add_task and get_work a JobProgress hears."""

    def __init__(self, scheduler: Any, progress: JobProgress) -> None:
        self._scheduler, self._progress = scheduler, progress

    def add_task(self, *args: Any, **kwargs: Any) -> Any:
        result = self._scheduler.add_task(*args, **kwargs)
        task_id = kwargs.get("task_id")
        if task_id:
            self._progress.reported(task_id, kwargs.get("status", ""))
        return result

    def get_work(self, *args: Any, **kwargs: Any) -> Any:
        work = self._scheduler.get_work(*args, **kwargs)
        if isinstance(work, dict) and work.get("task_id"):
            self._progress.started(work["task_id"])
        return work

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scheduler, name)


def _rows(task: luigi.Task | None) -> int:
    """The rows of a ParquetizeMonth's file, from its manifest; 0 for other tasks."""
    if not isinstance(task, ParquetizeMonth):
        return 0
    manifest = task.output().read()
    return manifest.rows if manifest else 0


def _short(task: luigi.Task | None, task_id: str) -> str:
    """``ParquetizeMonth yellow 2021-01``."""
    if task is None:
        return task_id
    parts = [task.task_family, getattr(task, "service", None), getattr(task, "month", None)]
    return " ".join(month_key(p) if isinstance(p, date) else str(p) for p in parts if p)


def closure(roots: list[luigi.Task]) -> list[luigi.Task]:
    """``roots`` and every task they require, directly or not."""
    seen: dict[str, luigi.Task] = {}
    stack = list(roots)
    while stack:
        task = stack.pop()
        if task.task_id not in seen:
            seen[task.task_id] = task
            stack.extend(flatten(task.requires()))
    return list(seen.values())
