"""luigi.cfg and the job's flags are checked before anything runs: an unknown section or
key, a value of the wrong type or out of range, a bad flag: exit 40, one line naming it (and
the nearest known name), nothing written, and never a secret's value."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from tests.conftest import Env

pytestmark = pytest.mark.fault_case

SECRET = "hunter2-not-for-logs"


def lines_of(run: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]


def assert_refused(run: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 40, no traceback, the message on exactly one line."""
    output = run.stdout + run.stderr
    assert run.returncode == 40, output
    assert "Traceback" not in output, output
    assert sum(message in line for line in lines_of(run)) == 1, output


def ingest(env: Env) -> subprocess.CompletedProcess[str]:
    return env.command("taxi-pipeline", "ingest", "--month", "2021-01", "--services", "yellow",
                       "--local-scheduler")


def luigi_ingest(env: Env) -> subprocess.CompletedProcess[str]:
    return env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2021-01",
                       "--services", "yellow", "--local-scheduler")


# Two cases go through both commands: an unknown section (the check of names) and a value
# out of range (the check of values). Each other case goes through one of them, taking
# turns, so that each command sees names, types and ranges refused (a process
# start costs 2-3 s: twenty of them made this the suite's slowest test).
Job = Callable[[Env], subprocess.CompletedProcess[str]]
BOTH: tuple[Job, ...] = (ingest, luigi_ingest)


@pytest.mark.parametrize(
    ("settings", "message", "jobs"),
    [
        pytest.param({"duckbd": {"path": "elsewhere.duckdb"}},
                     "luigi.cfg: unknown section [duckbd] (did you mean [duckdb]?)", BOTH,
                     id="section-typo"),
        pytest.param({"lake": {"rot": "data/lake"}},
                     "luigi.cfg: unknown key 'rot' in [lake] (did you mean root?)",
                     (ingest,), id="key-typo"),
        pytest.param({"source": {"kind": "cvs"}},
                     "[source] kind = 'cvs' is not one of auto, csv, parquet", (luigi_ingest,),
                     id="kind"),
        pytest.param({"source": {"retries": "abc"}},
                     "[source] retries = 'abc' is not a whole number", (ingest,),
                     id="retries-type"),
        pytest.param({"source": {"retries": "0"}}, "[source] retries = 0 must be at least 1",
                     BOTH, id="retries-range"),
        pytest.param({"source": {"csv_last_month": "2021-13"}},
                     "[source] csv_last_month = '2021-13' is not a month", (luigi_ingest,),
                     id="month"),
        pytest.param({"duckdb": {"threads": "0"}}, "[duckdb] threads = 0 must be at least 1",
                     (ingest,), id="threads"),
        pytest.param({"duckdb": {"memory_limit": "lots"}},
                     "[duckdb] memory_limit = 'lots' is not a size", (luigi_ingest,),
                     id="memory"),
        pytest.param({"pipeline": {"convert_while_downloading": "maybe"}},
                     "[pipeline] convert_while_downloading = 'maybe' is not true or false",
                     (ingest,), id="bool"),
        pytest.param({"scheduler": {"retry_count": "three"}},
                     "[scheduler] retry_count = 'three' is not a whole number", (luigi_ingest,),
                     id="luigi-scheduler"),
    ],
)
def test_a_bad_setting_is_refused_before_anything_runs(
        env: Env, settings: dict[str, dict[str, str]], message: str,
        jobs: tuple[Job, ...]) -> None:
    env.configure(**settings)
    for job in jobs:
        assert_refused(job(env), message)
    assert not env.lake.exists()
    assert not env.duckdb_path.exists()


def test_an_unknown_key_that_may_hold_a_secret_is_named_never_shown(env: Env) -> None:
    env.configure(pipeline={"sinks": "duckdb,postgres"},
                  postgres={"url": "postgresql://taxi@127.0.0.1:1/taxi", "password": SECRET},
                  core={"token": SECRET})
    for run in (ingest(env), luigi_ingest(env),
                env.command("taxi-pipeline", "status", "--no-source-check")):
        assert run.returncode == 40, run.stderr
        assert SECRET not in run.stdout + run.stderr
        assert "unknown key 'password' in [postgres]" in run.stderr or \
            "unknown key 'token' in [core]" in run.stderr, run.stderr


def test_what_luigi_reads_stays_accepted(env: Env) -> None:
    # luigi's own sections and keys, its deprecated aliases, and a task family's section
    # that sets a task parameter: a run goes ahead (2030-01 is not published: exit 30).
    env.configure(
        core={"rpc-retry-attempts": "2", "no_configure_logging": "false"},
        worker={"timeout": "0"}, execution_summary={"summary_length": "5"},
        resources={"anything": "3"}, DownloadMonth={"service": "yellow"},
        logging={"version": "1"}, retcode={"missing_data": "20"},
    )
    run = env.command("taxi-pipeline", "ingest", "--month", "2030-01", "--services", "yellow",
                      "--local-scheduler")
    assert run.returncode == 30, run.stderr
    assert "luigi.cfg" not in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "--month", "2021-01", "--workers", "0"], "invalid --workers 0: at least 1"),
        (["ingest", "--month", "2021-01", "--workers", "two"], "invalid --workers 'two'"),
        (["ingest"], "the following arguments are required: --month"),
        (["ingest", "--month", "2021-1x"], "invalid month '2021-1x'"),
        (["backfill", "--start", "2021-01"], "the following arguments are required: --end"),
        (["ingest", "--month", "2021-01", "--colour", "red"],
         "unrecognized arguments: --colour red"),
        (["inject"], "invalid choice: 'inject'"),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_40(env: Env, args: list[str], message: str) -> None:
    run = env.command("taxi-pipeline", *args)
    assert_refused(run, message)
    assert len(lines_of(run)) == 1, run.stderr  # no usage block
    assert not env.lake.exists()


def test_luigi_workers_0_is_refused_instead_of_waiting(env: Env) -> None:
    run = env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2021-01",
                      "--services", "yellow", "--local-scheduler", "--workers", "0", timeout=60)
    assert_refused(run, "--workers 0: a job needs at least 1 worker process")


@pytest.mark.parametrize("job", [
    ["backfill", "--start", "2021-01", "--end", "2021-01"],
    ["backfill", "--start", "2021-01", "--end", "latest"],
    ["catch-up", "--start", "2021-01"],
    ["refresh", "--start", "2021-01", "--end", "2021-01"],
])
def test_an_unknown_sink_is_refused_by_every_job(env: Env, job: list[str]) -> None:
    env.configure(pipeline={"sinks": "duckdb,snowflake"})
    run = env.command("taxi-pipeline", *job, "--services", "yellow", "--local-scheduler")
    assert_refused(run, "unknown sink 'snowflake'")
    assert not env.lake.exists()


def test_a_lake_root_that_is_a_file_is_refused(env: Env) -> None:
    env.lake.parent.mkdir(parents=True, exist_ok=True)
    env.lake.write_text("not a directory")
    assert_refused(ingest(env), f"[lake] root {env.lake} is a file, not a directory")
    assert env.lake.read_text() == "not a directory"


def test_a_duckdb_path_that_is_a_directory_is_refused(env: Env) -> None:
    env.duckdb_path.mkdir(parents=True)
    assert_refused(ingest(env), f"[duckdb] path {env.duckdb_path} is a directory")
    assert not env.lake.exists()


def test_verbose_shows_the_traceback(env: Env) -> None:
    env.configure(source={"retries": "abc"})
    run = env.command("taxi-pipeline", "ingest", "--month", "2021-01", "--verbose",
                      "--local-scheduler")
    assert run.returncode != 0
    assert "Traceback" in run.stderr


def test_a_scratch_that_is_a_file_is_refused(env: Env) -> None:
    scratch = env.tmp / "scratch"
    scratch.write_text("not a directory")
    env.configure(lake={"scratch": str(scratch)})
    assert_refused(ingest(env), f"[lake] scratch {scratch} is a file, not a directory")


def test_a_duckdb_path_under_a_file_is_refused(env: Env) -> None:
    parent = env.tmp / "not-a-folder"
    parent.write_text("a file")
    env.configure(duckdb={"path": str(parent / "warehouse.duckdb")})
    assert_refused(ingest(env), f"[duckdb] path {parent}: {parent} is a file, not a directory")
    assert not env.lake.exists()
