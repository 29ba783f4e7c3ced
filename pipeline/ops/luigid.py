"""Serving luigid (``taxi-pipeline scheduler``): the project's scheduler with luigi.cfg's
state file, log directory and task history, on SQLAlchemy 2.

luigid's schema upgrade for the history database uses an API SQLAlchemy 2 removed (luigi
issue #3227: it crashes at start on SQLite). The upgrade below is the same migration written
for SQLAlchemy 2; it is installed (``ops.hooks.install_scheduler``) before the server
creates its history.
"""

from __future__ import annotations

import logging
import logging.handlers
import sqlite3
from pathlib import Path
from typing import Any

import luigi
import luigi.configuration
import luigi.server
import sqlalchemy

from pipeline import config
from pipeline.ops.scheduler import BackoffScheduler

log = logging.getLogger("luigi.server")


def upgrade_history_schema(engine: sqlalchemy.Engine) -> None:
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


def fast_sqlite_history(connection: Any, _record: Any) -> None:
    """History in SQLite: write-ahead log, synced at checkpoints, not at each of the
    thousand commits a large backfill's scheduling makes (one per task)."""
    if isinstance(connection, sqlite3.Connection):
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")


def serve(port: int, address: str) -> None:
    """Run luigid in the foreground until SIGTERM or SIGINT (which save its state), with
    luigid's changes installed first (``ops.hooks.install_scheduler``)."""
    settings = luigi.configuration.get_config()
    for path in (settings.get("scheduler", "state_path", ""),
                 _sqlite_file(settings.get("task_history", "db_connection", ""))):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    logdir = Path(config.luigid().logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, handlers=[rotating_log(logdir / "luigi-server.log")],
        format="%(asctime)s %(name)s[%(process)s] %(levelname)s: %(message)s",
    )
    print(f"luigid on http://{address}:{port} (visualiser, /history); log in {logdir}",
          flush=True)
    luigi.server.run(api_port=port, address=address, scheduler=BackoffScheduler())


def rotating_log(path: Path) -> logging.Handler:
    """luigid's log file, rotated by size (``[luigid] log_max_mb``, ``log_backups``)."""
    settings = config.luigid()
    return logging.handlers.RotatingFileHandler(
        path, maxBytes=int(settings.log_max_mb * 1_000_000), backupCount=settings.log_backups,
        encoding="utf-8")


def _sqlite_file(url: str) -> str:
    prefix = "sqlite:///"
    return url[len(prefix):] if url.startswith(prefix) else ""
