"""Importing a module of the package changes nothing outside it; the entry points install
the pipeline's changes to luigi, logging and the GC (``pipeline/ops/hooks.py``), once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT

# Prints what the package may change, after running the statements in argv[1].
PROBE = """
import gc, json, logging, sys
import luigi, luigi.db_task_history, luigi.execution_summary, luigi.interface
import luigi.scheduler, luigi.worker

def state():
    return {
        "Worker._add": luigi.worker.Worker._add.__module__,
        "update_metrics": luigi.scheduler.SimpleTaskState.update_metrics.__module__,
        "_partition_tasks": luigi.execution_summary._partition_tasks.__module__,
        "create_remote_scheduler":
            luigi.interface._WorkerSchedulerFactory.create_remote_scheduler.__module__,
        "log filters": [type(f).__name__ for f in logging.getLogger("luigi-interface").filters],
        "task event handlers": sorted(
            f"{event}:{handler.__module__}"
            for event, handlers in luigi.Task._event_callbacks.get(luigi.Task, {}).items()
            for handler in handlers),
        "gc frozen": gc.get_freeze_count() > 0,
        "history schema upgrade": luigi.db_task_history._upgrade_schema.__module__,
    }

before = state()
exec(sys.argv[1])
print(json.dumps({"before": before, "after": state()}))
"""


def probe(statements: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, statements], cwd=PROJECT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_submodules_changes_nothing() -> None:
    seen = probe("import pipeline.core, pipeline.core.manifest, pipeline.lake.local, "
                 "pipeline.warehouses.duckdb, pipeline.tasks.flows, pipeline.ops.status, "
                 "pipeline.demo.offline\n"
                 "from pipeline.ops import cli, luigid")
    assert seen["after"] == seen["before"]
    assert seen["before"]["Worker._add"] == "luigi.worker"
    assert seen["before"]["log filters"] == []
    assert seen["before"]["task event handlers"] == []
    assert seen["before"]["gc frozen"] is False


@pytest.mark.parametrize("entry", [
    "import pipeline",
    # `luigi --module pipeline IngestMonth ...`: luigi's command line imports the package.
    "import luigi.cmdline_parser\n"
    "luigi.cmdline_parser.CmdlineParser(['--module', 'pipeline', 'IngestMonth', '--month', "
    "'2021-01'])",
])
def test_importing_the_package_installs_every_change_once(entry: str) -> None:
    seen = probe(entry + "\nfrom pipeline.ops import hooks\n"
                 "hooks.install()")  # a second install (an entry point calling it) adds nothing
    after = seen["after"]
    assert after["Worker._add"] == "pipeline.ops.failed_checks"
    assert after["update_metrics"] == "pipeline.ops.failed_checks"
    assert after["_partition_tasks"] == "pipeline.ops.done_elsewhere"
    assert after["create_remote_scheduler"] == "pipeline.ops.scheduler"
    assert after["log filters"] == ["OneLineFailures"]
    assert after["task event handlers"] == [
        f"{event}:pipeline.tasks.lineage" for event in ("event.core.failure",
                                                         "event.core.start",
                                                         "event.core.success")]
    assert after["gc frozen"] is True


def test_the_console_script_and_luigid_install_them() -> None:
    seen = probe("from pipeline.ops import cli\n"
                 "try:\n"
                 "    cli.main(['--help'])\n"
                 "except SystemExit:\n"
                 "    pass")
    assert seen["after"]["Worker._add"] == "pipeline.ops.failed_checks"
    assert seen["after"]["log filters"] == ["OneLineFailures"]
    assert seen["after"]["history schema upgrade"] == "luigi.db_task_history"  # luigid's only
    seen = probe("import sqlalchemy\n"
                 "from pipeline.ops import hooks, luigid\n"
                 "hooks.install_scheduler(); hooks.install_scheduler()\n"
                 "assert sqlalchemy.event.contains(sqlalchemy.Engine, 'connect',\n"
                 "                                 luigid.fast_sqlite_history)")
    assert seen["after"]["history schema upgrade"] == "pipeline.ops.luigid"
    assert seen["after"]["Worker._add"] == "pipeline.ops.failed_checks"
