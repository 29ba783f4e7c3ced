"""The central scheduler: luigid with the project's settings, task history that works with
SQLAlchemy 2, and retries whose delay grows with each failure.

Two things luigi 3.8 does not do on its own, and why they are here:

- **History on SQLAlchemy 2.** luigid's schema upgrade for the history database uses an
  API SQLAlchemy 2 removed (luigi issue #3227: it crashes at start on SQLite). The upgrade
  below is the same migration written for SQLAlchemy 2; it is installed before the server
  creates its history.
- **Growing retry delay.** luigi retries a failed task after a fixed ``[scheduler]
  retry_delay``. ``BackoffScheduler`` doubles it after each failure of the same task (up to
  ``[retry_backoff] max_delay``), so a source that is down gets a short pause, then longer
  ones, within the ``retry_count`` attempts luigi allows.
- **No e-mail per disabled task.** luigi's scheduler e-mails ``[email] receiver`` each time
  it disables a task (unless it batches e-mails, which then come every hour). The batch
  jobs send one alert per run instead (``pipeline.ops.notify``), so ``BackoffScheduler``,
  in luigid as in a job's local scheduler, sends none.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import luigi
import luigi.db_task_history
import luigi.server
import sqlalchemy
from luigi.scheduler import Scheduler, SimpleTaskState
from luigi.task_status import FAILED

from pipeline import config

log = logging.getLogger("luigi.server")


def _upgrade_history_schema(engine: sqlalchemy.Engine) -> None:
    """luigi's history schema upgrade, written for SQLAlchemy 2 (text(), row mappings)."""
    inspector = sqlalchemy.inspect(engine)
    with engine.begin() as conn:
        if "task_id" not in [c["name"] for c in inspector.get_columns("tasks")]:
            log.warning("Upgrading DbTaskHistory schema: Adding tasks.task_id")
            conn.execute(sqlalchemy.text("ALTER TABLE tasks ADD COLUMN task_id VARCHAR(200)"))
            conn.execute(sqlalchemy.text("CREATE INDEX ix_task_id ON tasks (task_id)"))
        if engine.dialect.name == "postgresql":
            value = [c for c in inspector.get_columns("task_parameters") if c["name"] == "value"]
            if value and str(value[0]["type"]) != "TEXT":
                conn.execute(sqlalchemy.text(
                    "ALTER TABLE task_parameters ALTER COLUMN value TYPE TEXT"))


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
        # completeness check or scheduling failed. Such a failure is counted, not timed.
        if task.status == FAILED and task.time_running is None:
            task.time_running = task.updated
        super().update_metrics(task, config)


class BackoffScheduler(Scheduler):
    """luigi's scheduler, with the retry delay doubling at each failure of a task, and no
    e-mail of its own when it disables one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        quiet = _QuietTaskState(self._config.state_path)
        quiet._metrics_collector = self._state._metrics_collector
        self._state = quiet

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


def _fast_sqlite_history(connection: Any, _record: Any) -> None:
    """History in SQLite: write-ahead log, synced at checkpoints, not at each of the
    thousand commits a large backfill's scheduling makes (one per task)."""
    if isinstance(connection, sqlite3.Connection):
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")


def serve(port: int, address: str) -> None:
    """Run luigid in the foreground until SIGTERM or SIGINT (which save its state)."""
    luigi.db_task_history._upgrade_schema = _upgrade_history_schema
    sqlalchemy.event.listen(sqlalchemy.Engine, "connect", _fast_sqlite_history)
    settings = luigi.configuration.get_config()
    for path in (settings.get("scheduler", "state_path", ""),
                 _sqlite_file(settings.get("task_history", "db_connection", ""))):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    logdir = Path(config.luigid().logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, filename=logdir / "luigi-server.log",
        format="%(asctime)s %(name)s[%(process)s] %(levelname)s: %(message)s",
    )
    print(f"luigid on http://{address}:{port} (visualiser, /history); log in {logdir}",
          flush=True)
    luigi.server.run(api_port=port, address=address, scheduler=BackoffScheduler())


def _sqlite_file(url: str) -> str:
    prefix = "sqlite:///"
    return url[len(prefix):] if url.startswith(prefix) else ""
