"""A batch job's progress: months done out of the total, the running task, rows converted.

The job's worker tells its scheduler about every task it finds complete, starts and
finishes; ``JobProgress.observe`` wraps that scheduler (local or luigid) and listens in, so
progress costs no polling and no extra request. On a terminal it is one live line drawn by
``rich``; elsewhere (cron, CI) it is a plain line each time a month of a service is done
by this job: about one line per month, however long the range (luigi's own log shows
warnings and errors only, a failure on one line, unless the job runs --verbose).
Months found complete are not listed: the closing line counts them.

A month of a service counts as done when every task of it the job asked for is done; rows
are those of the months' Parquet files (their manifests), whether converted now or found
complete.
"""

from __future__ import annotations

import json
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
from pipeline.ops.facts import manifest_of
from pipeline.tasks.parquetize import ParquetizeMonth


class JobProgress:
    """``with JobProgress(tasks) as progress: ... worker(progress.observe(scheduler))``."""

    def __init__(self, roots: list[luigi.Task], label: str, stream: TextIO | None = None,
                 live: bool | None = None, total: int | None = None) -> None:
        """``total``: the months of the whole job when ``roots`` is only its first chunk
        (``extend`` adds the others' tasks as their turn comes)."""
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.label = label
        self.tasks: dict[str, luigi.Task] = {}
        # A month of a service: (service, month), of the tasks that have both.
        self.months_of: dict[str, tuple[str, date]] = {}
        self.open: dict[tuple[str, date], set[str]] = defaultdict(set)
        self.extend(roots)
        self.total = len(self.open) if total is None else total
        self.done_months: set[tuple[str, date]] = set()
        self.failed_months: set[tuple[str, date]] = set()
        # Months with a task this job ran (the others were found complete).
        self.worked: set[tuple[str, date]] = set()
        self.rows = 0
        self.running: dict[str, None] = {}  # in start order
        self._counted: set[str] = set()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._bar: Progress | None = None
        self._bar_task: Any = None

    def extend(self, roots: list[luigi.Task]) -> None:
        """Follow the tasks of ``roots`` too (the next chunk of the job)."""
        for task in closure(roots):
            if task.task_id in self.tasks:
                continue
            self.tasks[task.task_id] = task
            month, service = getattr(task, "month", None), getattr(task, "service", None)
            if isinstance(month, date) and isinstance(service, str):
                self.months_of[task.task_id] = (service, month)
                self.open[(service, month)].add(task.task_id)

    # ------------------------------------------------------------------ what the worker says
    def observe(self, scheduler: Any) -> _ObservedScheduler:
        """``scheduler`` as the worker should see it: every call passes through unchanged."""
        return _ObservedScheduler(scheduler, self)

    def started(self, task_id: str) -> None:
        with self._lock:
            self.running[task_id] = None
            if task_id in self.months_of:
                self.worked.add(self.months_of[task_id])
        self._show(None)

    def reported(self, task_id: str, status: str) -> None:
        if status not in (DONE, FAILED):
            return
        news = None
        with self._lock:
            self.running.pop(task_id, None)
            month = self.months_of.get(task_id)
            if status == DONE and task_id not in self._counted:
                self._counted.add(task_id)
                self.rows += _rows(self.tasks.get(task_id))
            if status == FAILED:
                # luigi's own log says it on one line (ERROR: ... failed ...: why): the
                # failure is counted here, not repeated.
                if month is not None and month not in self.done_months:
                    self.failed_months.add(month)
            elif month is not None and month not in self.done_months:
                self.open[month].discard(task_id)
                if not self.open[month]:
                    self.done_months.add(month)
                    self.failed_months.discard(month)
                    if month in self.worked:
                        news = f"{month[0]} {month_key(month[1])} done"
        self._show(news)

    # ------------------------------------------------------------------------- what it shows
    def line(self) -> str:
        failed = f", {len(self.failed_months)} with a failed task" if self.failed_months else ""
        running = f", running {self._running()}" if self.running else ""
        return (f"progress: {len(self.done_months)}/{self.total} months done{failed}, "
                f"{self.rows:,} rows{running}")

    def closing_line(self) -> str:
        found = len(self.done_months - self.worked)
        complete = f", {found} found complete" if found else ""
        failed = f", {len(self.failed_months)} with a failed task" if self.failed_months else ""
        return (f"progress: {len(self.done_months)}/{self.total} months done{complete}"
                f"{failed}, {self.rows:,} rows")

    def _running(self) -> str:
        names = [_short(self.tasks.get(task_id), task_id) for task_id in self.running]
        return names[-1] + (f" (+{len(names) - 1} more)" if len(names) > 1 else "")

    def _show(self, news: str | None) -> None:
        if os.getpid() != self._pid:
            return  # a forked task process: the job's own process shows progress
        if self._bar is not None:
            self._bar.update(self._bar_task, completed=len(self.done_months),
                             rows=f"{self.rows:,}",
                             running=self._running() if self.running else "")
        elif news:
            print(f"progress: {len(self.done_months)}/{self.total} months done, "
                  f"{self.rows:,} rows: {news}", file=self.stream, flush=True)

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
            self._show(None)
            self._bar.stop()
            self._bar = None
        print(self.closing_line(), file=self.stream, flush=True)


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
    manifest = manifest_of(task.service, task.month)  # the lake's facts, as status reads them
    return manifest.rows if manifest else 0


def failure_reason(explanation: str | None) -> str:
    """The last line of a failure's explanation (luigi sends it JSON-encoded)."""
    text = explanation or ""
    try:
        decoded = json.loads(text)
        text = decoded if isinstance(decoded, str) else text
    except ValueError:
        pass
    lines = text.strip().splitlines()
    return lines[-1] if lines else "?"


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
