"""Everything the pipeline changes outside its own code, installed in one place.

Importing a module of the package changes nothing in luigi, logging, SQLAlchemy or the
garbage collector. The entry points call :func:`install` instead:

- ``luigi --module pipeline ...``: ``pipeline/__init__.py`` (luigi's only hook is the import
  of the package itself);
- ``taxi-pipeline ...``: ``pipeline.ops.cli.main``;
- ``taxi-pipeline scheduler``: :func:`install_scheduler` before ``pipeline.ops.luigid.serve``.

Each change, why it is made, and the luigi version its target was read in (3.8.x: a new
luigi is checked against this list before the pin moves; each patch keeps luigi's own
function and calls it):

===================================================  ==========================================
``logging.getLogger("luigi-interface")`` filter       a failed task's traceback becomes one line
(``ops.logs.OneLineFailures``)                         unless ``--verbose`` (3.8.1)
``luigi.execution_summary._partition_tasks``,         a task another process completed counts
``_get_run_by_other_worker`` (``ops.done_elsewhere``)  as done in the summary and exit code (3.8.1)
``luigi.worker.Worker._add`` (``ops.failed_checks``)  a completeness check that raises fails its
                                                       task instead of leaving it UNKNOWN (3.8.1)
``luigi.scheduler.SimpleTaskState.update_metrics``     the Prometheus collector does not raise for
(``ops.failed_checks``)                                a task disabled before it ran (3.8.1)
``luigi.interface._WorkerSchedulerFactory.``           an unreachable central scheduler ends the
``create_remote_scheduler`` (``ops.scheduler``)        job on one line at once (3.8.1)
``luigi.Task`` event handlers (``tasks.lineage``)      OpenLineage run events while ``[openlineage]
                                                       transport`` is set (3.8.1)
``gc.freeze()``                                        the imported libraries' objects are left
                                                       out of every full collection (see below)
``luigi.db_task_history._upgrade_schema``              luigid only: luigi's upgrade uses an API
(``ops.luigid``)                                       SQLAlchemy 2 removed (luigi #3227, 3.8.1)
``sqlalchemy.Engine`` "connect" listener               luigid only: the SQLite task history in
(``ops.luigid``)                                       WAL mode, synced at checkpoints
``luigi.server.RecentRunHandler``,                     luigid only: ``/history`` shows a bounded
``ByNameHandler``, ``ByParamsHandler``                 page of tasks (``?limit=&offset=``) and a
(``ops.history_page``)                                 next link; luigi's showed every row of 24 h
                                                       (846 KB at 8k rows) (3.8.1)
===================================================  ==========================================

State kept per process (caches filled on first use, nothing installed): the lakes by
settings (``tasks.storage``), the GCS client and filesystems (``lake.gcs``), the listing
caches' forgetters (``lake.targets``), the BigQuery client (``warehouses.bigquery``), the
OpenLineage clients and run ids (``tasks.lineage``), the all-null columns
(``convert.month_writer``), the checked settings (``config_check``) and the stop hooks of a
job (``ops.stopping``, installed by ``cli.main``).
"""

from __future__ import annotations

import gc

_installed = False
_scheduler_installed = False


def install() -> None:
    """Install the changes above (all but luigid's); a second call changes nothing."""
    global _installed
    if _installed:
        return
    from pipeline.ops import done_elsewhere, failed_checks, logs, scheduler
    from pipeline.tasks import lineage

    logs.install()
    done_elsewhere.install()
    lineage.install()
    failed_checks.install()
    scheduler.install()
    # What the entry point imported (pyarrow, pandas, luigi: some 80 thousand objects the
    # garbage collector tracks) lives as long as the process. Frozen, it is left out of every
    # full collection: those at exit took a process that imported the package 0.18 s to end,
    # 0.03 s frozen, and a forked task process does not touch those pages to scan them.
    gc.freeze()
    _installed = True


def install_scheduler() -> None:
    """:func:`install` and luigid's own changes (history schema upgrade, SQLite pragmas,
    paged history pages)."""
    global _scheduler_installed
    install()
    if _scheduler_installed:
        return
    import luigi.db_task_history
    import sqlalchemy

    from pipeline.ops import history_page, luigid

    luigi.db_task_history._upgrade_schema = luigid.upgrade_history_schema
    sqlalchemy.event.listen(sqlalchemy.Engine, "connect", luigid.fast_sqlite_history)
    history_page.install()
    _scheduler_installed = True
