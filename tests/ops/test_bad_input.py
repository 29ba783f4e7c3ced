"""Bad input through the `luigi` command: a non-zero exit, one line naming the problem,
and nothing under a final name in the lake."""

from __future__ import annotations

import pytest

from tests.conftest import Env
from tests.mirror import Fault, ReleaseMirror

pytestmark = pytest.mark.fault_case

NAME = "yellow_tripdata_2021-01.csv.gz"


def ingest(env: Env, *args: str):
    return env.command("luigi", "--module", "pipeline", "IngestMonth", "--local-scheduler",
                       *args)


def one_line_naming(output: str, text: str) -> bool:
    """The problem is named on a line of its own (once per attempt), with no traceback."""
    return "Traceback" not in output and any(text in line for line in output.splitlines())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2021-13"], "invalid month '2021-13': expected YYYY-MM"),
        (["--month", "../../etc"], "invalid month '../../etc'"),
        (["--month", "2021-01", "--services", "yellow,purple"], "unknown services 'purple'"),
        (["--month", "2021-01", "--pipeline-sinks", "duckdb,snowflake"],
         "unknown sink 'snowflake'"),
    ],
)
def test_bad_parameters_exit_40_with_one_line(env: Env, args: list[str], message: str) -> None:
    run = ingest(env, *args)
    assert run.returncode == 40, run.stderr
    assert one_line_naming(run.stderr, message), run.stderr
    assert sum(message in line for line in run.stderr.splitlines()) == 1
    assert not env.lake.exists()


def test_unpublished_month_exits_30_naming_the_url(env: Env) -> None:
    run = ingest(env, "--month", "2030-01", "--services", "yellow")
    assert run.returncode == 30, run.stderr
    assert one_line_naming(run.stderr, "yellow 2030-01 is not published at http://127.0.0.1:"), \
        run.stderr
    assert "yellow_tripdata_2030-01.csv.gz (HTTP 404)" in run.stderr
    assert [f for f in env.lake_files() if "2030" in f] == []


@pytest.mark.parametrize(
    ("fault", "message"),
    [(Fault("html"), "the server answered an HTML page, not the data file"),
     (Fault("truncate", at=200_000), "truncated gzip stream")],
)
def test_bad_source_file_exits_30_and_publishes_nothing(env: Env, mirror: ReleaseMirror,
                                                        fault: Fault, message: str) -> None:
    env.configure(source={"retries": "1"})
    mirror.inject(NAME, *[fault] * 3)  # every attempt of the run (retry_count) gets it
    run = ingest(env, "--month", "2021-01", "--services", "yellow")
    assert run.returncode == 30, run.stderr
    assert one_line_naming(run.stderr, message), run.stderr
    assert [f for f in env.lake_files() if "yellow" in f] == []
    # The zones of the same run were fine and are kept; the month is not.
    assert "raw/zones/taxi_zone_lookup.csv" in env.lake_files()
